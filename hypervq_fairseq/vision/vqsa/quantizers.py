"""The three codebooks VQ-SA is compared with, taken from the vision quantizer registry.

Paper §5.4 swaps the quantizer inside VQ-SA (Yang et al., CVPR 2023) and keeps the rest.
The names below are VQ-SA's rows; each maps to a quantizer of
:mod:`hypervq_fairseq.vision.quantizers` (one implementation per method, shared with the
VQ-VAE trainers), laid out as ``(B, C, H, W)``:

- ``vq`` → ``kmeans``: the original VQ-SA codebook, nearest neighbour in Euclidean distance
  with the codebook + commitment losses (β = 0.25) and a straight-through gradient;
- ``gumbel`` → ``gumbel``: linear logits, embedding-matrix codebook, Gumbel-softmax ST;
- ``hypervq`` → ``hyper``: HyperVQ (hyperbolic MLR, code vector ``r_k ẑ_k``).

A classifier head gives the Gumbel pair a much weaker signal per code than a decoder does,
and without help they settle on a handful of codes; we therefore switch on wav2vec 2.0's
diversity term for them (``diversity_weight``, 0.1 by default; 0 restores the plain method).
"""
from __future__ import annotations

from ..quantizers import build_quantizer as build_vision_quantizer

REGISTRY_NAMES = {"hypervq": "hyper", "vq": "kmeans", "gumbel": "gumbel"}
QUANTIZER_CHOICES = ("hypervq", "vq", "gumbel", "none")

# Row names used in tables, as in the paper's Table 6.
DISPLAY_NAMES = {"hypervq": "HyperVQ-SA", "vq": "VQ-SA", "gumbel": "GumbelVQ-SA", "none": "backbone alone"}


def build_quantizer(name: str, dim: int, num_codes: int, *, temp=(2.0, 0.5, 0.9995), diversity_weight: float = 0.1):
    """The quantizer for VQ-SA row ``name`` on ``dim``-channel feature maps."""
    if name not in REGISTRY_NAMES:
        raise ValueError(f"unknown VQ-SA quantizer {name!r}; expected one of {sorted(REGISTRY_NAMES)}")
    if name == "vq":
        return build_vision_quantizer("kmeans", dim, num_codes)
    return build_vision_quantizer(REGISTRY_NAMES[name], dim, num_codes, temp=temp, diversity_weight=diversity_weight)
