"""HyperKmeansVQ: k-means-style VQ with the codebook in the Poincaré ball (paper §5.6 ablation).

Encodings ``z_e`` and code parameters ``u_k`` are tangent vectors at the origin; their ball
points are ``x = exp_0(z_e)`` and ``e_k = exp_0(u_k)``. Each position takes the code nearest
in geodesic distance, and the VQ-VAE losses are written with that distance,
``d(sg[x], e_k)² + β·d(x, sg[e_k])²`` (the first term is the k-means-style codebook update).
The decoder receives ``log_0(e_k) = u_k`` through the straight-through estimator.

Assignment cost: evaluating ``distance`` for every (position, code) pair would build an
``N×K×d`` tensor. Because ``cosh(√c·d(x, e)) = 1 + 2c‖x − e‖² / ((1 − c‖x‖²)(1 − c‖e‖²))``
and the factor of ``x`` is common to all codes, the nearest code is the minimiser of
``‖x − e_k‖² / (1 − c‖e_k‖²)``: one matrix product. The losses use
:func:`hypervq_fairseq.core.distance` on the chosen pairs; a test checks the argmin against
it on all pairs.
"""
from __future__ import annotations

import torch

from ...core import check_curvature, distance, expmap0, project
from ...errors import InputError
from ...quantizers.perplexity import code_usage, perplexity_of
from .base import VQOutput, VisionQuantizer, from_rows, to_rows


class HyperKmeansVQ(VisionQuantizer):
    def __init__(self, dim: int, num_codes: int, *, beta: float = 0.25, curvature: float = 1.0, init_radius: float = 0.1):
        super().__init__(dim, num_codes)
        check_curvature(curvature)
        if not init_radius > 0:
            raise InputError(f"init_radius must be > 0, got {init_radius}")
        self.beta, self.c = beta, float(curvature)
        # Codes start on one small sphere (random directions, equal norm). With a Gaussian start the
        # code nearest the origin is also nearest to almost every encoding (norms differ more than
        # directions in high dimension), and the codebook collapses to it in the first updates.
        directions = torch.nn.functional.normalize(torch.randn(num_codes, dim), dim=1)
        self.tangent_codes = torch.nn.Parameter(directions * init_radius)

    def codebook(self) -> torch.Tensor:
        return self.tangent_codes

    def ball_codes(self) -> torch.Tensor:
        return project(expmap0(self.tangent_codes.float(), c=self.c), c=self.c)

    def assign(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Nearest code in geodesic distance for ball points ``x (N, d)``, codes ``e (K, d)``."""
        sq = x.pow(2).sum(1, keepdim=True) - 2 * x @ e.t() + e.pow(2).sum(1)
        return (sq.clamp_min(0) / (1 - self.c * e.pow(2).sum(1))).argmin(dim=1)

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        # map encodings and codes into the ball
        rows = to_rows(z_e).float()
        x = project(expmap0(rows, c=self.c), c=self.c)
        e = self.ball_codes()

        # nearest code by geodesic distance
        idx = self.assign(x.detach(), e.detach())

        # codebook (k-means-style) and commitment losses in geodesic distance
        e_k = e[idx]
        loss = distance(x.detach(), e_k, c=self.c).pow(2).mean() + self.beta * distance(x, e_k.detach(), c=self.c).pow(2).mean()

        # decoder input: log_0(e_k) = u_k, straight-through to the encoder
        u_k = self.tangent_codes[idx].to(z_e.dtype)
        rows = to_rows(z_e)
        q_st = rows + (u_k - rows).detach()
        ppl = perplexity_of(code_usage(idx.unsqueeze(1), self.num_codes))[0]
        b, _, h, w = z_e.shape
        return VQOutput(from_rows(q_st, z_e.shape), loss, idx.view(b, h, w), ppl)
