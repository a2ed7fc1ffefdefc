"""HyperEmbMatVQ: hyperbolic MLR logits, embedding-matrix codebook (paper §5.6 ablation).

The selection is HyperVQ's (tangent projection, ``exp_0``, unidirectional hyperbolic MLR,
Gumbel-softmax with straight-through) and comes from a
:class:`~hypervq_fairseq.quantizers.HyperbolicVectorQuantizer`'s ``weight_proj`` and
``logits``; the code vectors, however, are rows of a separate learned embedding matrix, as
in GumbelVQ. It isolates the effect of the hyperbolic logits from that of using the
hyperplane's representative point as the code (Table 7).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...quantizers import HyperbolicVectorQuantizer
from ...quantizers.hyperbolic_vq import DEFAULT_CLIP_MODE, DEFAULT_CLIP_RADIUS, DEFAULT_LOGIT_SCALE
from ...quantizers.perplexity import group_perplexities
from ...quantizers.selection import selection_stats
from .base import VQOutput, VisionQuantizer, from_rows, to_rows


class HyperEmbMatVQ(VisionQuantizer):
    def __init__(self, dim: int, num_codes: int, *, temp=(2.0, 0.5, 0.999), curvature: float = 1.0,
                 clip_radius: Optional[float] = DEFAULT_CLIP_RADIUS, clip_mode: str = DEFAULT_CLIP_MODE,
                 logit_scale: float = DEFAULT_LOGIT_SCALE):
        super().__init__(dim, num_codes)
        self.mlr = HyperbolicVectorQuantizer(
            dim=dim, num_vars=num_codes, temp=temp, groups=1, combine_groups=False, vq_dim=dim,
            time_first=True, curvature=curvature, clip_radius=clip_radius, clip_mode=clip_mode,
            logit_scale=logit_scale,
        )
        self.embedding = nn.Parameter(torch.empty(num_codes, dim).uniform_())  # GumbelVQ's initialisation

    def set_num_updates(self, num_updates: int) -> None:
        self.mlr.set_num_updates(num_updates)

    def codebook(self) -> torch.Tensor:
        return self.embedding

    def _logits(self, rows: torch.Tensor) -> torch.Tensor:
        # the shared quantizer's fp32 projection (and clipping), then its MLR logits: (N, 1, K)
        return self.mlr.logits(self.mlr.tangent(rows))

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        # hyperbolic MLR logits per position
        rows = to_rows(z_e)
        logits = self._logits(rows)
        hard_idx = logits.argmax(-1)
        code_ppl, _ = group_perplexities(logits, hard_idx)

        # select (Gumbel straight-through in training), read the embedding matrix
        if self.training:
            one_hot = F.gumbel_softmax(logits, tau=self.mlr.curr_temp, hard=True, dim=-1)
        else:
            one_hot = F.one_hot(hard_idx, self.num_codes).to(logits.dtype)
        z_q = one_hot[:, 0] @ self.embedding.to(logits.dtype)
        b, _, h, w = z_e.shape
        sampled = one_hot.detach().argmax(-1)                                   # (N, 1)
        idx = sampled[:, 0].view(b, h, w)
        selection = {k: v.mean() for k, v in selection_stats(logits, sampled if self.training else None).items()}
        return VQOutput(from_rows(z_q.to(z_e.dtype), z_e.shape), z_e.new_zeros(()), idx, code_ppl[0].detach(), selection)
