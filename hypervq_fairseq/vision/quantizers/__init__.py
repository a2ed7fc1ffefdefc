"""Vision quantizers, one per file, chosen by name from a small registry.

Every class takes ``(dim, num_codes, **options)`` and follows :class:`VisionQuantizer`.
New methods (e.g. a VQ-SA head's quantizer) call :func:`register` and become available to
every trainer and to ``hypervq-vision --quantizer NAME``.
"""
from __future__ import annotations

from typing import Callable, Dict

from .base import VQOutput, VisionQuantizer
from .gumbel_vq import GumbelVQ
from .hyper_embmat_vq import HyperEmbMatVQ
from .hyper_kmeans_vq import HyperKmeansVQ
from .hyper_vq import HyperVQ
from .kmeans_vq import KmeansVQ

QUANTIZERS: Dict[str, Callable[..., VisionQuantizer]] = {}


def register(name: str, factory: Callable[..., VisionQuantizer]) -> None:
    if name in QUANTIZERS and QUANTIZERS[name] is not factory:
        raise ValueError(f"a vision quantizer named {name!r} is already registered")
    QUANTIZERS[name] = factory


def build_quantizer(name: str, dim: int, num_codes: int, **options) -> VisionQuantizer:
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; expected one of {sorted(QUANTIZERS)}")
    return QUANTIZERS[name](dim, num_codes, **options)


for _name, _cls in [("kmeans", KmeansVQ), ("gumbel", GumbelVQ), ("hyper", HyperVQ),
                    ("hyper_kmeans", HyperKmeansVQ), ("hyper_embmat", HyperEmbMatVQ)]:
    register(_name, _cls)

# Display names in the paper's tables.
PAPER_NAMES = {"kmeans": "KmeansVQ", "gumbel": "GumbelVQ", "hyper": "HyperVQ",
               "hyper_kmeans": "HyperKmeansVQ", "hyper_embmat": "HyperEmbMatVQ"}

__all__ = ["QUANTIZERS", "PAPER_NAMES", "VQOutput", "VisionQuantizer", "build_quantizer", "register",
           "GumbelVQ", "HyperEmbMatVQ", "HyperKmeansVQ", "HyperVQ", "KmeansVQ"]
