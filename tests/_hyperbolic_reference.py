"""Independent references for the HyperVQ math, used by test_core_math.py and test_quantizer.py.

Written from the definitions, sharing no code with ``hypervq_fairseq.core``:

- float64 torch: Möbius addition and Ganea et al.'s signed point-to-hyperplane distance,
  ``ℓ = (λ_p‖a‖/√c)·asinh(2√c⟨−p ⊕ x, a⟩ / ((1 − c‖−p ⊕ x‖²)‖a‖))`` with the HNN++
  parameterisation ``p = exp_0(r ẑ)``, ``a = (1 − c‖p‖²) z``. It goes through ball points, so
  it is only accurate while ``1 − c‖x‖² ≈ 4e^{−2s}`` is well above float64's resolution
  (``s = √c‖v‖ ≲ 9``). torch.asinh is used on purpose: geoopt's ``arsinh`` is computed as
  ``log(x + √(1 + x²))``, which cancels for negative arguments far from the plane.
- mpmath: the same Möbius/Ganea route at high precision (any ``s`` up to ~``dps``), and the
  HNN++ closed form in the tangent space, ``(2‖z‖/√c)·asinh(sinh(2s)cos∠·cosh(2√c r) −
  cosh(2s)·sinh(2√c r))``, for norms where no ball point is representable (1e4, 1e6).
"""
from __future__ import annotations

import mpmath
import torch


# -- float64 torch --------------------------------------------------------------------------

def mobius_add_ref(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return num / (1 + 2 * c * xy + c * c * x2 * y2)


def expmap0_ref(v: torch.Tensor, c: float) -> torch.Tensor:
    n = v.norm(dim=-1, keepdim=True)
    sc = c ** 0.5
    scale = torch.where(n > 0, torch.tanh(sc * n) / (sc * n).clamp_min(1e-300), torch.ones_like(n))
    return scale * v


def ganea_logits_ref(v: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: float) -> torch.Tensor:
    """float64 logits ``(N, K)`` for tangent vectors ``v (N, d)``, normals ``z (K, d)``, offsets ``r (K,)``."""
    v, z, r = v.double(), z.double(), r.double()
    sc = c ** 0.5
    x = expmap0_ref(v, c)[:, None, :]                               # (N, 1, d)
    z_unit = z / z.norm(dim=-1, keepdim=True)
    p = expmap0_ref(r[:, None] * z_unit, c)[None]                   # (1, K, d)
    a = (1 - c * (p * p).sum(-1, keepdim=True)) * z[None]           # (1, K, d)
    w = mobius_add_ref(-p, x, c)                                    # (N, K, d)
    lam_p = 2 / (1 - c * (p * p).sum(-1))
    a_norm = a.norm(dim=-1)
    inner = 2 * sc * (w * a).sum(-1) / ((1 - c * (w * w).sum(-1)) * a_norm)
    return lam_p * a_norm / sc * torch.asinh(inner)


# -- mpmath ---------------------------------------------------------------------------------

def _mp_vec(t):
    return [mpmath.mpf(float(e)) for e in t]


def _dot(a, b):
    return mpmath.fsum(x * y for x, y in zip(a, b))


def _mp_expmap0(v, c):
    n = mpmath.sqrt(_dot(v, v))
    if n == 0:
        return list(v)
    sc = mpmath.sqrt(c)
    return [mpmath.tanh(sc * n) / (sc * n) * e for e in v]


def _mp_mobius_add(x, y, c):
    xy, x2, y2 = _dot(x, y), _dot(x, x), _dot(y, y)
    den = 1 + 2 * c * xy + c * c * x2 * y2
    return [((1 + 2 * c * xy + c * y2) * a + (1 - c * x2) * b) / den for a, b in zip(x, y)]


def mp_ganea_logits(v: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: float, dps: int = 100) -> torch.Tensor:
    """Möbius/Ganea logits ``(N, K)`` at ``dps`` decimal digits, rounded to float64."""
    with mpmath.workdps(dps):
        cm = mpmath.mpf(c)
        sc = mpmath.sqrt(cm)
        out = torch.empty(v.shape[0], z.shape[0], dtype=torch.float64)
        planes = []
        for zk, rk in zip(z.tolist(), r.tolist()):
            zk = _mp_vec(zk)
            zn = mpmath.sqrt(_dot(zk, zk))
            p = _mp_expmap0([mpmath.mpf(rk) * e / zn for e in zk], cm)
            shrink = 1 - cm * _dot(p, p)
            planes.append(([-e for e in p], [shrink * e for e in zk], 2 / shrink))
        for i, vi in enumerate(v.tolist()):
            x = _mp_expmap0(_mp_vec(vi), cm)
            for k, (neg_p, a, lam_p) in enumerate(planes):
                w = _mp_mobius_add(neg_p, x, cm)
                a_norm = mpmath.sqrt(_dot(a, a))
                inner = 2 * sc * _dot(w, a) / ((1 - cm * _dot(w, w)) * a_norm)
                out[i, k] = float(lam_p * a_norm / sc * mpmath.asinh(inner))
    return out


def mp_closed_form_logits(v: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: float, dps: int = 50) -> torch.Tensor:
    """HNN++ tangent-space closed form ``(N, K)`` at ``dps`` digits (mpmath's exponent range is unbounded)."""
    with mpmath.workdps(dps):
        cm = mpmath.mpf(c)
        sc = mpmath.sqrt(cm)
        out = torch.empty(v.shape[0], z.shape[0], dtype=torch.float64)
        zs = [_mp_vec(zk) for zk in z.tolist()]
        for i, vi in enumerate(v.tolist()):
            vi = _mp_vec(vi)
            vn = mpmath.sqrt(_dot(vi, vi))
            two_s = 2 * sc * vn
            for k, (zk, rk) in enumerate(zip(zs, r.tolist())):
                zn = mpmath.sqrt(_dot(zk, zk))
                b = 2 * sc * mpmath.mpf(rk)
                cos = _dot(vi, zk) / (vn * zn) if vn > 0 else mpmath.mpf(0)
                arg = mpmath.sinh(two_s) * cos * mpmath.cosh(b) - mpmath.cosh(two_s) * mpmath.sinh(b)
                out[i, k] = float(2 * zn / sc * mpmath.asinh(arg))
    return out
