"""hypervq_fairseq: HyperVQ (hyperbolic MLR vector quantization) for fairseq and vision.

The top-level package imports only the quantizer core (torch + geoopt). The fairseq glue
in ``models/`` is imported by fairseq itself when this folder is given as ``user_dir``.
"""
from .core import expmap0, logmap0, unidirectional_mlr_logits
from .quantizers import EuclideanGumbelQuantizer, HyperbolicVectorQuantizer

__version__ = "0.1.0"

__all__ = [
    "EuclideanGumbelQuantizer",
    "HyperbolicVectorQuantizer",
    "expmap0",
    "logmap0",
    "unidirectional_mlr_logits",
]
