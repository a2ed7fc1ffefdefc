"""KmeansVQ: the VQ-VAE quantizer (van den Oord et al., 2017), the paper's baseline.

Nearest code by Euclidean distance (one matrix product), straight-through copy of the
decoder gradient to the encoder, and the loss ``‖sg[z_e] − e‖² + β‖z_e − sg[e]‖²``
(paper eq. 2). With ``ema=True`` the codebook is instead an exponential moving average of
the encodings assigned to each code (Razavi et al., 2019) and only the commitment term
remains.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import InputError
from ...quantizers.perplexity import code_usage, perplexity_of
from .base import VQOutput, VisionQuantizer, from_rows, to_rows

# Laplace smoothing of the EMA cluster sizes, so a code that lost all its members keeps a
# finite (if stale) vector instead of a division by zero.
EMA_LAPLACE = 1e-5


class KmeansVQ(VisionQuantizer):
    def __init__(self, dim: int, num_codes: int, *, beta: float = 0.25, ema: bool = False, decay: float = 0.99):
        super().__init__(dim, num_codes)
        if not 0 < decay < 1:
            raise InputError(f"EMA decay must be in (0, 1), got {decay}")
        self.beta, self.ema, self.decay = beta, ema, decay
        self.embedding = torch.nn.Parameter(torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes))
        if ema:
            self.embedding.requires_grad_(False)
            self.register_buffer("cluster_size", torch.zeros(num_codes))
            self.register_buffer("embed_sum", self.embedding.detach().clone())

    def codebook(self) -> torch.Tensor:
        return self.embedding

    def assign(self, rows: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row: ``‖x‖² − 2x·e + ‖e‖²`` minimised."""
        e = self.embedding
        dist = rows.pow(2).sum(1, keepdim=True) - 2 * rows @ e.t() + e.pow(2).sum(1)
        return dist.argmin(dim=1)

    @torch.no_grad()
    def _ema_update(self, rows: torch.Tensor, idx: torch.Tensor) -> None:
        one_hot = F.one_hot(idx, self.num_codes).to(rows.dtype)
        self.cluster_size.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(one_hot.t() @ rows, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + EMA_LAPLACE) / (n + self.num_codes * EMA_LAPLACE) * n
        self.embedding.copy_(self.embed_sum / size.unsqueeze(1))

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        # arrange rows, pick the nearest code
        rows = to_rows(z_e)
        idx = self.assign(rows.detach())
        if self.ema and self.training:
            self._ema_update(rows.detach(), idx)
        q = self.embedding[idx]

        # commitment (+ codebook) loss, then straight-through
        loss = self.beta * F.mse_loss(rows, q.detach())
        if not self.ema:
            loss = loss + F.mse_loss(q, rows.detach())
        q_st = rows + (q - rows).detach()
        ppl = perplexity_of(code_usage(idx.unsqueeze(1), self.num_codes))[0]
        b, _, h, w = z_e.shape
        return VQOutput(from_rows(q_st, z_e.shape), loss, idx.view(b, h, w), ppl)
