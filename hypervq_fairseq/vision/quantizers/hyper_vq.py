"""HyperVQ for image latents: the paper's method (sections 4.2.1–4.2.2, Algorithm 1).

Each latent position is projected to the tangent space, mapped into the Poincaré ball and
classified by the unidirectional hyperbolic MLR; the chosen code's vector is the
representative point of its decision hyperplane, ``r_k ẑ_k``. All of that lives in the
shared :class:`~hypervq_fairseq.quantizers.HyperbolicVectorQuantizer` (the same module
wav2vec 2.0 uses); this file only adapts image latents ``(B, C, H, W)`` to its
``time_first`` layout. No commitment loss: the reconstruction loss reaches the logits
through the straight-through Gumbel one-hot (diversity term optional, off by default).
"""
from __future__ import annotations

from typing import Optional

import torch

from ...quantizers import HyperbolicVectorQuantizer
from .base import VQOutput, VisionQuantizer, from_sequence, to_sequence


class HyperVQ(VisionQuantizer):
    def __init__(
        self,
        dim: int,
        num_codes: int,
        *,
        temp=(2.0, 0.5, 0.999),
        curvature: float = 1.0,
        clip_radius: Optional[float] = None,
        diversity_weight: float = 0.0,
    ):
        super().__init__(dim, num_codes)
        self.diversity_weight = diversity_weight
        self.inner = HyperbolicVectorQuantizer(
            dim=dim, num_vars=num_codes, temp=temp, groups=1, combine_groups=False, vq_dim=dim,
            time_first=True, curvature=curvature, clip_radius=clip_radius,
        )

    def set_num_updates(self, num_updates: int) -> None:
        self.inner.set_num_updates(num_updates)

    def codebook(self) -> torch.Tensor:
        return self.inner.codebook_vectors()[0].to(self.inner.normals.dtype)

    def features(self, z_e: torch.Tensor) -> torch.Tensor:
        return to_sequence(z_e).reshape(-1, self.dim)

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        res = self.inner(to_sequence(z_e), produce_targets=True)
        loss = self.diversity_weight * (self.num_codes - res["prob_perplexity"]) / self.num_codes
        b, _, h, w = z_e.shape
        idx = res["targets"].view(b, h, w)
        return VQOutput(from_sequence(res["x"], z_e.shape), loss, idx, res["code_perplexity"].detach())
