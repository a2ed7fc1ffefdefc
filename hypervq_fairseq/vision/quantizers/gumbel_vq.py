"""GumbelVQ: Gumbel-softmax code selection with an embedding-matrix codebook.

vq-wav2vec / wav2vec 2.0's quantizer (Baevski et al., 2020), used by the paper as the
second baseline (Tables 3, 4, 7). This file only adapts the shared
:class:`~hypervq_fairseq.quantizers.EuclideanGumbelQuantizer` (the one the speech path
uses) to image latents: ``(B, C, H, W)`` ↔ its ``time_first`` ``(B, H·W, C)`` layout.
The codes learn through the straight-through one-hot from the reconstruction loss; an
optional diversity term (wav2vec 2.0's) is off by default, as in the paper.
"""
from __future__ import annotations

from ...quantizers import EuclideanGumbelQuantizer
from .base import SharedGumbelAdapter


class GumbelVQ(SharedGumbelAdapter):
    def __init__(self, dim: int, num_codes: int, *, temp=(2.0, 0.5, 0.999), diversity_weight: float = 0.0):
        super().__init__(dim, num_codes)
        self.diversity_weight = diversity_weight
        self.inner = EuclideanGumbelQuantizer(
            dim=dim, num_vars=num_codes, temp=temp, groups=1, combine_groups=False, vq_dim=dim, time_first=True
        )
