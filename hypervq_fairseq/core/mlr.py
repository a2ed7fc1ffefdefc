"""Unidirectional hyperbolic MLR logits (Shimizu et al., HNN++), evaluated from the tangent space.

Code ``k`` owns a tangent normal ``z_k`` and a scalar offset ``r_k``; its hyperplane passes
through ``q_k = exp_0(r_k ẑ_k)``. For a ball point ``x = exp_0(v)`` the logit is

    ℓ_k = (2‖z_k‖/√c) · asinh( λ_x √c⟨x, ẑ_k⟩ cosh(2√c r_k) − (λ_x − 1) sinh(2√c r_k) )

which is Ganea et al.'s MLR with offset ``q_k`` and normal ``a_k = (1 − c‖q_k‖²) z_k``
(``λ_{q_k}‖a_k‖ = 2‖z_k‖``). With ``s = √c‖v‖`` one has ``λ_x = 2cosh²s``,
``λ_x tanh s = sinh 2s`` and ``λ_x − 1 = cosh 2s``, so

    ℓ_k = (2‖z_k‖/√c) · asinh( sinh(2s)·cos∠(v, z_k)·cosh(2√c r_k) − cosh(2s)·sinh(2√c r_k) ).

Why this form instead of geoopt's ``dist2plane`` on ``exp_0(v)``: nothing of the form
``1 − c‖x‖²`` appears, so points near the boundary lose no precision (in float32 the ball
point itself is exactly on the boundary once ``s > 9``); and it costs one ``(N×d)·(d×K)``
matrix product, whereas the Möbius route materialises an ``N×K×d`` tensor.

The only hazard left is overflow of ``sinh/cosh(2s)``. Up to ``2s = DIRECT_EVAL_MAX`` the
formula is evaluated directly; beyond, the same quantity is evaluated in the log domain,
``asinh(A) = sign(A)·(log|A| + log(1 + √(1 + A⁻²)))`` with
``A = ½e^{2s}·[(1 − e^{−4s})·C − (1 + e^{−4s})·S]``, which is exact and cannot overflow.
Inputs of any finite norm therefore give finite logits and gradients, without clipping.

Shapes: ``v (..., d)``, ``z (K, d)``, ``r (K,)`` → ``(..., K)``; or, for ``G`` independent
groups, ``v (..., G, d)``, ``z (G, K, d)``, ``r (G, K)`` → ``(..., G, K)``.
"""
from __future__ import annotations

import math

import torch

from .guards import DIRECT_EVAL_MAX, LOG_DOMAIN_TINY, clamped_norm, compute_dtype, sinh_over_x
from .poincare import Curvature


def _asinh_direct(two_s, dot, sqrt_c, cosh_b, sinh_b):
    """asinh(sinh(2s)cos∠·cosh b − cosh(2s)·sinh b) for 2s ≤ DIRECT_EVAL_MAX.

    sinh(2s)·cos∠(v, z) = 2√c·⟨v, ẑ⟩·sinh(2s)/(2s), which is smooth at v = 0.
    """
    return torch.asinh(2 * sqrt_c * dot * sinh_over_x(two_s) * cosh_b - torch.cosh(two_s) * sinh_b)


def _asinh_log_domain(two_s, dot_over_norm, cosh_b, sinh_b):
    """The same quantity for large 2s, with A kept as (sign, log|A|)."""
    decay = torch.exp(-2 * two_s)
    inner = -torch.expm1(-2 * two_s) * dot_over_norm * cosh_b - (1 + decay) * sinh_b
    log_abs = two_s - math.log(2.0) + torch.log(inner.abs().clamp_min(LOG_DOMAIN_TINY))
    asinh_abs = log_abs + torch.log1p(torch.sqrt(1 + torch.exp(-2 * log_abs)))
    return torch.sign(inner) * asinh_abs


def unidirectional_mlr_logits(v: torch.Tensor, z: torch.Tensor, r: torch.Tensor, *, c: Curvature = 1.0) -> torch.Tensor:
    """Logits ``(..., K)`` of the unidirectional hyperbolic MLR at the ball point ``exp_0(v)``.

    Args:
        v: tangent vectors at the origin, ``(..., d)``; any finite magnitude.
        z: hyperplane normals in the tangent space at the origin, ``(K, d)`` or ``(G, K, d)``.
        r: signed offsets of the hyperplanes along ``ẑ_k``, ``(K,)`` or ``(G, K)``.
        c: curvature magnitude (``c > 0``), a float or a 0-dim tensor (learnable curvature).

    The math runs in float32, or float64 when ``v`` is float64; the result has ``v``'s dtype.
    """
    out_dtype = v.dtype
    dtype = compute_dtype(v.dtype)
    v, z, r = v.to(dtype), z.to(dtype), r.to(dtype)
    sqrt_c = torch.as_tensor(c, dtype=dtype, device=v.device).sqrt()

    # Geometry of the input: s = √c‖v‖, and ⟨v, ẑ_k⟩/‖v‖ from one matrix product.
    v_norm = clamped_norm(v)                                   # (..., 1)
    z_norm = clamped_norm(z)                                   # (K, 1)
    z_unit = z / z_norm
    if z.dim() == 2:                                           # (..., K) = ‖v‖ cos∠(v, z_k)
        dot = v @ z_unit.transpose(0, 1)
    else:                                                      # grouped: (..., G, d)·(G, K, d)
        dot = torch.einsum("...gd,gkd->...gk", v, z_unit)
    two_s = 2 * sqrt_c * v_norm                                # (..., 1)

    # Geometry of the hyperplanes: b_k = 2√c r_k.
    b = 2 * sqrt_c * r
    cosh_b, sinh_b = torch.cosh(b), torch.sinh(b)

    # asinh(...) directly where sinh(2s) is safe, in the log domain elsewhere.
    if two_s.numel() == 0 or bool(two_s.max() <= DIRECT_EVAL_MAX):
        arg = _asinh_direct(two_s, dot, sqrt_c, cosh_b, sinh_b)
    else:
        direct = _asinh_direct(two_s.clamp(max=DIRECT_EVAL_MAX), dot, sqrt_c, cosh_b, sinh_b)
        far = _asinh_log_domain(two_s.clamp(min=DIRECT_EVAL_MAX), dot / v_norm, cosh_b, sinh_b)
        arg = torch.where(two_s <= DIRECT_EVAL_MAX, direct, far)

    logits = (2 * z_norm.squeeze(-1) / sqrt_c) * arg
    return logits.to(out_dtype)
