"""Unidirectional hyperbolic MLR logits (Shimizu et al., HNN++), evaluated from the tangent space.

Code ``k`` owns a tangent normal ``z_k`` and a scalar offset ``r_k``; its hyperplane passes
through ``q_k = exp_0(r_k ẑ_k)``. For a ball point ``x = exp_0(v)`` the logit is

    ℓ_k = (2‖z_k‖/√c) · asinh( λ_x √c⟨x, ẑ_k⟩ cosh(2√c r_k) − (λ_x − 1) sinh(2√c r_k) )

which is Ganea et al.'s MLR with offset ``q_k`` and normal ``a_k = (1 − c‖q_k‖²) z_k``
(``λ_{q_k}‖a_k‖ = 2‖z_k‖``). With ``s = √c‖v‖`` one has ``λ_x = 2cosh²s``,
``λ_x tanh s = sinh 2s`` and ``λ_x − 1 = cosh 2s``, so

    ℓ_k = (2‖z_k‖/√c) · asinh(A),   A = sinh(2s)·cos∠(v, z_k)·cosh(2√c r_k) − cosh(2s)·sinh(2√c r_k).

Why this form instead of geoopt's ``dist2plane`` on ``exp_0(v)``: nothing of the form
``1 − c‖x‖²`` appears, so points near the boundary lose no precision (in float32 the ball
point itself is exactly on the boundary once ``s > 9``); and it costs one matrix product,
whereas the Möbius route materialises an ``N×K×d`` tensor.

Evaluation. ``A`` is bilinear in a per-row vector and a per-code vector:
``A = [α v, −β] · [cosh(b_k) ẑ_k, sinh(b_k)]`` with ``b_k = 2√c r_k``,
``α = sinh(2s)/‖v‖`` and ``β = cosh(2s)``. So one ``(N×(d+1))·((d+1)×K)`` matrix product gives
``A`` and the only element-wise work on the ``N×K`` logits is one ``asinh`` and one scale
(this is what keeps HyperVQ within a few percent of a Euclidean Gumbel quantizer).
``α`` is written ``2√c·sinh(2s)/(2s)``, smooth at ``v = 0``.

Overflow. ``sinh/cosh(2s)`` overflow for large ``s``. Rows with ``2s > DIRECT_EVAL_MAX`` use
``α = (1 − e^{−4s})/‖v‖`` and ``β = 1 + e^{−4s}`` instead, so the product gives
``M = 2e^{−2s}·A`` (bounded), and ``asinh(A) = sign(M)·(log|A| + log(1 + √(1 + A⁻²)))`` is taken
with ``log|A| = 2s − log 2 + log|M|``. That is exact and cannot overflow. Past ``‖v‖ ≈ 1.8e19``
the float32 norm itself overflows; those rows (all far) get their norm recomputed overflow-safe,
and ``‖v‖`` is read at most at ``TANGENT_NORM_MAX`` (1e30 in float32), beyond which no code can
change. So inputs of any finite norm give finite logits and gradients, without clipping.

Shapes: ``v (..., d)``, ``z (K, d)``, ``r (K,)`` → ``(..., K)``; or, for ``G`` independent
groups, ``v (..., G, d)``, ``z (G, K, d)``, ``r (G, K)`` → ``(..., G, K)``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .guards import (
    DIRECT_EVAL_MAX,
    LOG_DOMAIN_TINY,
    TANGENT_NORM_MAX,
    clamped_norm,
    compute_dtype,
    safe_norm,
    sinh_over_x,
    unit_vector,
)
from .poincare import Curvature

_LOG_2 = math.log(2.0)


class _ScaledAsinh(torch.autograd.Function):
    """``w ⊙ asinh(m)`` for ``m (..., K)`` and per-code scales ``w (..., K)``, fused.

    ``asinh(m) = sign(m)·log(|m| + √(1 + m²))`` on ``|m|`` (no cancellation for negative ``m``;
    ``hypot`` keeps ``√(1 + m²)`` from overflowing; ``|m|`` beyond half the dtype's largest value
    is read as that value; absolute error ~ machine epsilon, which is what a logit needs).
    Why not ``torch.asinh``: on CPU it is not vectorised and ran ~10× slower than this, the
    largest single cost of the quantizer; and fusing the scale lets forward and backward work
    in place on one buffer each. The backward uses differentiable ops (double backward works).
    """

    @staticmethod
    def forward(ctx, m, w):
        out = m.abs().clamp_max_(torch.finfo(m.dtype).max / 2)
        out.add_(torch.hypot(out, torch.ones((), dtype=m.dtype, device=m.device))).log_().copysign_(m).mul_(w)
        ctx.save_for_backward(m, w, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        m, w, out = ctx.saved_tensors
        lead = tuple(range(grad.dim() - w.dim()))
        grad_w = (grad * out).sum(dim=lead) / w if ctx.needs_input_grad[1] else None
        if torch.is_grad_enabled():                                   # double backward: plain ops
            grad_m = grad * w * torch.rsqrt(1 + m * m)
        else:
            grad_m = (m * m).add_(1).rsqrt_().mul_(grad).mul_(w)
        return grad_m, grad_w


def _check_shapes(v: torch.Tensor, z: torch.Tensor, r: torch.Tensor) -> None:
    if z.dim() not in (2, 3) or r.shape != z.shape[:-1]:
        raise ValueError(
            f"expected normals z (K, d) with offsets r (K,), or z (G, K, d) with r (G, K); "
            f"got z {tuple(z.shape)} and r {tuple(r.shape)}"
        )
    lead = z.shape[:-2]  # () or (G,)
    if v.dim() < 1 + len(lead) or v.shape[-1] != z.shape[-1] or tuple(v.shape[v.dim() - 1 - len(lead):-1]) != tuple(lead):
        want = "(..., G, d)" if lead else "(..., d)"
        raise ValueError(f"expected v {want} matching z {tuple(z.shape)}; got v {tuple(v.shape)}")


def _row_vectors(v: torch.Tensor, two_s: torch.Tensor, sqrt_c: torch.Tensor, far: torch.Tensor, far_rows) -> torch.Tensor:
    """Per-row ``[α v, −β]``: ``A`` itself for near rows, ``M = 2e^{−2s}A`` for far rows.

    ``far_rows``: None (no far row), the flat indices of the far rows, or ``"all"`` (branch-free,
    for torch.compile). Both branches are evaluated on clamped ``2s`` so that the branch not taken
    stays finite (its gradient is multiplied by zero, and ``0 · inf`` would be ``nan``). Far rows
    are written ``(1 − e^{−4s})·v̂`` with the overflow-safe unit vector ``v̂``: for huge ``v`` no
    product of ``v`` with a gradient overflows in backward, and ``‖v‖`` may itself be ``inf``.
    """
    near_2s = two_s.clamp(max=DIRECT_EVAL_MAX)
    near_v = (2 * sqrt_c * sinh_over_x(near_2s)) * v
    beta = torch.cosh(near_2s)
    if far_rows is None:
        return torch.cat([near_v, -beta], dim=-1)
    far_2s = two_s.clamp(min=DIRECT_EVAL_MAX)
    beta = torch.where(far, 1 + torch.exp(-2 * far_2s), beta)      # 1 + e^{−4s}
    if isinstance(far_rows, str):
        vecs = torch.where(far, -torch.expm1(-2 * far_2s) * unit_vector(v), near_v)
    else:
        width = v.shape[-1]
        pick = lambda t: t.reshape(-1, t.shape[-1]).index_select(0, far_rows)  # noqa: E731
        far_v = -torch.expm1(-2 * pick(far_2s)) * unit_vector(pick(v))
        vecs = near_v.reshape(-1, width).index_copy(0, far_rows, far_v).view_as(v)
    return torch.cat([vecs, -beta], dim=-1)


def _asinh_log_domain(m: torch.Tensor, two_s: torch.Tensor) -> torch.Tensor:
    """``asinh(½e^{2s}·m)`` without forming ``e^{2s}``.

    ``|m|`` is bounded below by ``LOG_DOMAIN_TINY`` (reached only within 1e-20 of a decision
    hyperplane, where the logit is ~0); with ``2s ≥ DIRECT_EVAL_MAX`` that keeps
    ``exp(−2 log|A|) ≤ e^{2·(46.1 + log 2 − DIRECT_EVAL_MAX)}``, finite in float32.
    """
    log_abs = two_s - _LOG_2 + torch.log(m.abs().clamp_min(LOG_DOMAIN_TINY))
    return torch.sign(m) * (log_abs + torch.log1p(torch.sqrt(1 + torch.exp(-2 * log_abs))))


def unidirectional_mlr_logits(v: torch.Tensor, z: torch.Tensor, r: torch.Tensor, *, c: Curvature = 1.0) -> torch.Tensor:
    """Logits ``(..., K)`` of the unidirectional hyperbolic MLR at the ball point ``exp_0(v)``.

    Args:
        v: tangent vectors at the origin, ``(..., d)`` (or ``(..., G, d)``); any finite magnitude.
        z: hyperplane normals in the tangent space at the origin, ``(K, d)`` or ``(G, K, d)``.
        r: signed offsets of the hyperplanes along ``ẑ_k``, ``(K,)`` or ``(G, K)``.
        c: curvature magnitude (``c > 0``), a float or a 0-dim tensor (learnable curvature).

    The math runs in float32, or float64 when ``v`` is float64, and the logits are returned in
    that dtype: for fp16/bf16 ``v`` they stay float32, because logits of large inputs exceed
    fp16's range (and feed a float32 softmax anyway).
    """
    _check_shapes(v, z, r)
    dtype = compute_dtype(v.dtype)
    z = z.to(dtype)
    z_norm = clamped_norm(z)                                     # (..., K, 1)
    return mlr_logits_from_unit_normals(v, z * z_norm.reciprocal(), z_norm.squeeze(-1), r, c=c)


def mlr_logits_from_unit_normals(v: torch.Tensor, z_unit: torch.Tensor, z_norm: torch.Tensor, r: torch.Tensor,
                                 *, c: Curvature = 1.0) -> torch.Tensor:
    """:func:`unidirectional_mlr_logits` with the normals given as ``ẑ_k`` and ``‖z_k‖`` (shape of ``r``).

    For callers that also need ``ẑ_k`` (HyperVQ's code vectors ``r_k ẑ_k``): normalising once
    saves a pass over the codebook and its backward.
    """
    with torch.autocast(device_type=v.device.type, enabled=False):   # autocast would run the product in half
        return _logits(v, z_unit, z_norm, r, c)


def _logits(v: torch.Tensor, z_unit: torch.Tensor, z_norm: torch.Tensor, r: torch.Tensor, c: Curvature,
            branch_free: Optional[bool] = None) -> torch.Tensor:
    dtype = compute_dtype(v.dtype)
    v, z_unit, z_norm, r = v.to(dtype), z_unit.to(dtype), z_norm.to(dtype), r.to(dtype)
    sqrt_c = torch.as_tensor(c, dtype=dtype, device=v.device).sqrt()
    # Under torch.compile the far rows are handled branch-free (no host decision, so no graph break;
    # the compiler fuses the extra element-wise work). Eagerly, one host decision skips the far-row
    # work entirely when there are none, which is the common case and cheaper on CPU.
    compiling = torch.compiler.is_compiling() if branch_free is None else branch_free

    # Rows: s = √c‖v‖ and the row vector [α v, −β].
    v_norm = clamped_norm(v)                                     # (..., 1); inf where ‖v‖² overflows
    two_s = _two_s(v_norm, sqrt_c)
    far = two_s > DIRECT_EVAL_MAX
    if compiling:
        far_rows = "all"
    else:
        far_rows = far.reshape(-1).nonzero().squeeze(1) if bool(far.any()) else None
    if far_rows is not None:                                     # the overflowed norms are all far rows
        v_norm = _norms_fixed(v, v_norm, far, far_rows)
        two_s = _two_s(v_norm, sqrt_c)
    rows = _row_vectors(v, two_s, sqrt_c, far, far_rows)  # (..., d+1)

    # Hyperplanes: b_k = 2√c r_k and the code vector [cosh(b_k) ẑ_k, sinh(b_k)].
    b = (2 * sqrt_c * r).unsqueeze(-1)
    planes = torch.cat([torch.cosh(b) * z_unit, torch.sinh(b)], dim=-1)   # (..., K, d+1)

    # A (near rows) or 2e^{−2s}A (far rows) from one matrix product.
    if z_unit.dim() == 2:
        m = rows @ planes.transpose(0, 1)                        # (..., K)
    else:
        m = torch.einsum("...gd,gkd->...gk", rows, planes)       # (..., G, K)

    # ℓ = (2‖z‖/√c)·asinh(A): directly, then the far rows again in the log domain.
    scale = (2 / sqrt_c) * z_norm                                # (..., K)
    logits = _ScaledAsinh.apply(m, scale)
    if far_rows is None:
        return logits
    if compiling:
        # near rows evaluate the log-domain form at 2s = DIRECT_EVAL_MAX, where it is finite, so the
        # branch not taken contributes a zero gradient, never 0·inf
        far_logits = _asinh_log_domain(m, two_s.clamp(min=DIRECT_EVAL_MAX)) * scale
        return torch.where(far, far_logits, logits)
    num_codes = m.shape[-1]
    m_far = m.reshape(-1, num_codes).index_select(0, far_rows)
    two_s_far = two_s.reshape(-1, 1).index_select(0, far_rows)
    scale_rows = scale.reshape(-1, num_codes)                      # (1 or G, K); flat row i is group i % G
    far_logits = _asinh_log_domain(m_far, two_s_far) * scale_rows[far_rows % scale_rows.shape[0]]
    logits = logits.reshape(-1, num_codes).index_copy(0, far_rows, far_logits).view_as(m)
    return logits


def _two_s(v_norm: torch.Tensor, sqrt_c: torch.Tensor) -> torch.Tensor:
    """``2s = 2√c‖v‖`` with ‖v‖ read at most at ``TANGENT_NORM_MAX`` (see there: it changes no code)."""
    return 2 * sqrt_c * v_norm.clamp_max(TANGENT_NORM_MAX[v_norm.dtype])


def _norms_fixed(v: torch.Tensor, v_norm: torch.Tensor, far: torch.Tensor, far_rows) -> torch.Tensor:
    """``v_norm`` with the far rows' norms recomputed overflow-safe (they hold ``inf`` past ~1.8e19 in float32)."""
    if isinstance(far_rows, str):
        return torch.where(far, safe_norm(v), v_norm)
    fixed = safe_norm(v.reshape(-1, v.shape[-1]).index_select(0, far_rows))
    return v_norm.reshape(-1, 1).index_copy(0, far_rows, fixed).view_as(v_norm)
