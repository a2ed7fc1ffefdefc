"""Poincaré-ball operations with the project's curvature convention.

The ball of curvature ``-c`` (``c > 0``) is ``{x : c‖x‖² < 1}``. geoopt implements the
same operations for the κ-stereographic model with a *signed* curvature ``k``; the
Poincaré ball is ``k = -c``. This module is the one place that conversion happens:
everything else in the project passes ``c > 0`` by keyword.

Identities these functions satisfy (tested in float64):

- ``exp_0(v) = tanh(√c‖v‖) · v / (√c‖v‖)`` and ``log_0(exp_0(v)) = v``;
- ``λ_x = 2 / (1 - c‖x‖²)``, and for ``x = exp_0(v)``: ``λ_x = 2 cosh²(√c‖v‖)``;
- ``d_c(0, exp_0(v)) = 2‖v‖`` (geodesic distance from the origin).

Precision: every function computes in float32 or wider (:func:`~.guards.compute_dtype`) and
returns the input's dtype; geoopt's own clamps (``1e-15``) would underflow to 0 in fp16.
"""
from __future__ import annotations

import math
from typing import Union

import torch
from geoopt.manifolds.stereographic import math as _stereo

from ..errors import InputError
from .guards import BALL_EPS, compute_dtype, safe_norm

Curvature = Union[float, torch.Tensor]


def _k(c: Curvature, like: torch.Tensor) -> torch.Tensor:
    """geoopt's signed curvature ``k = -c`` as a tensor on ``like``'s device and dtype."""
    return -torch.as_tensor(c, dtype=like.dtype, device=like.device)


def check_curvature(c: Curvature) -> None:
    """Fail early with a readable message for a non-positive or non-finite curvature.

    A tensor on the ``meta`` device (a module built under ``torch.device("meta")``) holds no value
    and passes; it is checked when the module computes with a real one.
    """
    if isinstance(c, torch.Tensor):
        if c.is_meta:
            return
        ok = bool(torch.all(torch.isfinite(c.detach()) & (c.detach() > 0)))
    else:
        try:
            ok = math.isfinite(float(c)) and float(c) > 0
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise InputError(f"curvature c must be a finite number > 0 (Poincaré ball of curvature -c); got {c!r}")


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.to(compute_dtype(t.dtype))


def expmap0(v: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1) -> torch.Tensor:
    """Exponential map at the origin: tangent vector ``v`` to a point of the ball."""
    w = _wide(v)
    return _stereo.expmap0(w, k=_k(c, w), dim=dim).to(v.dtype)


def logmap0(x: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1) -> torch.Tensor:
    """Logarithmic map at the origin: ball point ``x`` to its tangent vector (inverse of :func:`expmap0`)."""
    w = _wide(x)
    return _stereo.logmap0(project(w, c=c, dim=dim), k=_k(c, w), dim=dim).to(x.dtype)


def project(x: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1) -> torch.Tensor:
    """Pull points that rounding put on or past the boundary back inside by a dtype margin."""
    w = _wide(x)
    eps = BALL_EPS[w.dtype]
    return _stereo.project(w, k=_k(c, w), dim=dim, eps=eps).to(x.dtype)


def mobius_add(x: torch.Tensor, y: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1) -> torch.Tensor:
    """Möbius addition ``x ⊕_c y``."""
    w = _wide(x)
    return _stereo.mobius_add(w, y.to(w.dtype), k=_k(c, w), dim=dim).to(x.dtype)


def conformal_factor(x: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """``λ_x = 2 / (1 - c‖x‖²)``, in float32 or wider (it grows without bound near the boundary)."""
    w = _wide(x)
    return _stereo.lambda_x(w, k=_k(c, w), dim=dim, keepdim=keepdim)


def distance(x: torch.Tensor, y: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Geodesic distance ``d_c(x, y)``."""
    w = _wide(x)
    return _stereo.dist(w, y.to(w.dtype), k=_k(c, w), dim=dim, keepdim=keepdim).to(x.dtype)


def distance_to_origin_from_tangent(v: torch.Tensor, *, c: Curvature = 1.0, dim: int = -1) -> torch.Tensor:
    """``d_c(0, exp_0(v)) = 2‖v‖`` without leaving the tangent space (no boundary rounding).

    This is the "hyperbolic radius" the fairseq glue logs: it grows without bound where
    the Euclidean norm of the ball point saturates at ``1/√c``.
    """
    del c  # the geodesic radius of exp_0(v) does not depend on c in this parameterisation
    return 2 * safe_norm(v, dim=dim, keepdim=False)
