"""Vision quantizers, one per file, built by name through :mod:`.registry`.

Every class takes ``(dim, num_codes, **options)`` and follows :class:`VisionQuantizer`.
A new method calls :func:`register` and becomes available to every trainer (VQ-VAE,
``compare``, VQ-SA) and to ``hypervq-vision --quantizer NAME``.
"""
from .base import VQOutput, VisionQuantizer
from .gumbel_vq import GumbelVQ
from .hyper_embmat_vq import HyperEmbMatVQ
from .hyper_kmeans_vq import HyperKmeansVQ
from .hyper_vq import HyperVQ
from .kmeans_vq import KmeansVQ
from .registry import ALIASES, PAPER_NAMES, QUANTIZERS, build_quantizer, canonical_name, options_for, register

__all__ = ["ALIASES", "QUANTIZERS", "PAPER_NAMES", "VQOutput", "VisionQuantizer", "build_quantizer", "canonical_name",
           "options_for", "register", "GumbelVQ", "HyperEmbMatVQ", "HyperKmeansVQ", "HyperVQ", "KmeansVQ"]
