"""Named numerical guards for Poincaré-ball math.

Every clamp the project applies lives here, with the reason it exists, so that no
epsilon is sprinkled inline. The ball math always runs in at least
float32 (see :func:`compute_dtype`), so the constants below are stated for float32
and float64 only; half-precision inputs are promoted before any of them is used.
"""
from __future__ import annotations

import torch

# Smallest tangent-vector norm we divide by. Below it a vector is "at the origin":
# the direction is undefined and every formula is replaced by its limit (sinh(2s)/‖v‖ -> 2√c).
MIN_NORM = {torch.float32: 1e-15, torch.float64: 1e-15}

# Largest 2s = 2√c‖v‖ for which sinh/cosh(2s) are evaluated directly; beyond it the logits
# are evaluated in the log domain (exact, no clamp of the input). cosh(30) ~ 5e12, so
# sinh(2s)·cosh(2√c r) stays below float32's 3.4e38 while 2√c|r| < 58: for every offset whose
# point q_k = exp_0(r ẑ) float32 can tell from the boundary (√c|r| > 9 is already on it).
# Both branches have the same rounding error (eps·e^{2s}·cosh(2√c r) on the asinh argument);
# the log domain costs extra passes, so the switch sits as high as float32 allows. Wav2vec 2.0
# tangent norms at initialisation give 2s ~ 13: almost every row takes the direct branch.
DIRECT_EVAL_MAX = 30.0

# Largest tangent norm ‖v‖ the logits are evaluated at; larger vectors keep their direction and
# are read at this norm. Far from the origin a logit is (2‖z‖/√c)·sign(M)·(2s + log|M| + O(1)) with
# |log|M|| < 47, so once 2s exceeds ~1e9 (float32) or ~1e17 (float64) the correction is below the
# dtype's resolution and the codes no longer depend on ‖v‖: capping it far beyond that changes no
# code and keeps the logits (≈ 4‖z‖‖v‖) and 2s = 2√c‖v‖ finite (for ‖z‖ < 8e7 and c < 1e16).
TANGENT_NORM_MAX = {torch.float32: 1e30, torch.float64: 1e150}

# A quantizer's input rows whose projection overflows (‖x‖ beyond ~1e36 in float32) are scaled down
# to this norm and projected again: the codes of such rows depend on their direction only (see
# TANGENT_NORM_MAX), and a projection of a row of this norm stays finite for weights of norm < 1e8.
INPUT_NORM_MAX = {torch.float32: 1e30, torch.float64: 1e150}

# Smallest |argument| whose logarithm the log-domain branch takes. Only reached within
# 1e-20 of a decision hyperplane at a point far from the origin, where the logit is ~0.
LOG_DOMAIN_TINY = 1e-20

# Below this |x|, sinh(x)/x is evaluated by its series 1 + x²/6 (next term x⁴/120 < 1e-18):
# the quotient itself would be 0/0 at the origin.
SINH_SERIES_MAX = 1e-4

# Points closer than this (relative) to the boundary of the ball are projected back
# inside before log_0 / artanh. Matches the usual float32/float64 projection margins.
BALL_EPS = {torch.float32: 4e-3, torch.float64: 1e-5}

# artanh is clamped to its argument range minus this margin.
ARTANH_MARGIN = {torch.float32: 1e-7, torch.float64: 1e-15}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the ball math runs in: the input's when wider than float32, else float32.

    fp16 and bf16 have neither the range (sinh overflows at 11) nor the resolution
    (1 - tanh(s) is 0 for s > 4) this math needs, so they are always promoted.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def min_norm(dtype: torch.dtype) -> float:
    return MIN_NORM[compute_dtype(dtype)]


def clamped_norm(v: torch.Tensor, *, dim: int = -1, keepdim: bool = True) -> torch.Tensor:
    """‖v‖ bounded below by :data:`MIN_NORM`, so dividing by it and its gradient stay finite.

    The fast norm: its sum of squares overflows to ``inf`` once ‖v‖ passes ~1.8e19 in float32
    (~1.3e154 in float64). Callers that can meet such vectors use :func:`safe_norm`, or, like the
    MLR logits, recompute only the rows where it happened.
    """
    return v.norm(dim=dim, keepdim=keepdim).clamp_min(min_norm(v.dtype))


def unit_vector(v: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
    """``v/‖v‖`` for any finite ``v``, also where ‖v‖ itself overflows (scaled by ``max|v_i|`` first); 0 stays 0."""
    scaled = v / v.detach().abs().amax(dim=dim, keepdim=True).clamp_min(min_norm(v.dtype))
    return scaled / clamped_norm(scaled, dim=dim)


def safe_norm(v: torch.Tensor, *, dim: int = -1, keepdim: bool = True) -> torch.Tensor:
    """:func:`clamped_norm` that cannot overflow: ``m·‖v/m‖`` with ``m = max|v_i|``, finite for every finite ``v``.

    About twice the cost of the plain norm on CPU. The scale is treated as a constant (the norm is
    homogeneous), so the gradient is the usual ``v/‖v‖``. The result may exceed the dtype's
    largest value only for vectors within a factor √d of it; it is then ``inf``.
    """
    scale = v.detach().abs().amax(dim=dim, keepdim=True).clamp_min(min_norm(v.dtype))
    norm = (v / scale).norm(dim=dim, keepdim=True) * scale
    norm = norm.clamp_min(min_norm(v.dtype))
    return norm if keepdim else norm.squeeze(dim)


def artanh(x: torch.Tensor) -> torch.Tensor:
    """artanh with its argument clamped inside (-1, 1): finite value and gradient at ±1."""
    margin = ARTANH_MARGIN[compute_dtype(x.dtype)]
    return torch.atanh(x.clamp(-1 + margin, 1 - margin))


def sinh_over_x(x: torch.Tensor) -> torch.Tensor:
    """sinh(x)/x with its limit 1 at 0 (smooth, so autograd is safe at the origin)."""
    small = x.abs() < SINH_SERIES_MAX
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1 + x * x / 6, torch.sinh(safe) / safe)
