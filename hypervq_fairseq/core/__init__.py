"""Poincaré-ball math as pure functions (torch + geoopt only; never imports fairseq)."""
from .mlr import mlr_logits_from_unit_normals, unidirectional_mlr_logits
from .poincare import (
    check_curvature,
    conformal_factor,
    distance,
    distance_to_origin_from_tangent,
    expmap0,
    logmap0,
    mobius_add,
    project,
)

__all__ = [
    "unidirectional_mlr_logits",
    "mlr_logits_from_unit_normals",
    "check_curvature",
    "conformal_factor",
    "distance",
    "distance_to_origin_from_tangent",
    "expmap0",
    "logmap0",
    "mobius_add",
    "project",
]
