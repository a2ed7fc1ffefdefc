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

from ...quantizers import HyperbolicVectorQuantizer
from ...quantizers.hyperbolic_vq import DEFAULT_CLIP_MODE, DEFAULT_CLIP_RADIUS, DEFAULT_LOGIT_SCALE
from .base import SharedGumbelAdapter


class HyperVQ(SharedGumbelAdapter):
    def __init__(
        self,
        dim: int,
        num_codes: int,
        *,
        temp=(2.0, 0.5, 0.999),
        curvature: float = 1.0,
        clip_radius: Optional[float] = DEFAULT_CLIP_RADIUS,
        clip_mode: str = DEFAULT_CLIP_MODE,
        logit_scale: float = DEFAULT_LOGIT_SCALE,
        diversity_weight: float = 0.0,
    ):
        super().__init__(dim, num_codes)
        self.diversity_weight = diversity_weight
        self.inner = HyperbolicVectorQuantizer(
            dim=dim, num_vars=num_codes, temp=temp, groups=1, combine_groups=False, vq_dim=dim,
            time_first=True, curvature=curvature, clip_radius=clip_radius, clip_mode=clip_mode,
            logit_scale=logit_scale,
        )
