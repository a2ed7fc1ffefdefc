"""Quantizer modules, one per file. Import ``core`` only; never fairseq."""
from .euclidean_gumbel_vq import EuclideanGumbelQuantizer
from .hyperbolic_vq import HyperbolicVectorQuantizer

__all__ = ["EuclideanGumbelQuantizer", "HyperbolicVectorQuantizer"]
