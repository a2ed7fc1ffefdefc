"""Euclidean Gumbel vector quantizer (vq-wav2vec / wav2vec 2.0), written with matrix products.

The same method as fairseq's ``GumbelVectorQuantizer``: a linear layer gives ``G × V``
logits, a straight-through Gumbel-softmax picks one code per group, and the code vectors
are rows of a learned embedding matrix. The stock module looks codes up by broadcasting an
``N × (G·V) × d`` product; here the lookup is one ``(N, G, V) · (G, V, d)`` contraction.

It serves as the *floor* in ``bench/`` (HyperVQ's extra cost over the Euclidean method),
as GumbelVQ in the vision trainers, and as the embedding-matrix half of HyperEmbMatVQ.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .gumbel_base import GumbelQuantizerBase, tangent_projection


class EuclideanGumbelQuantizer(GumbelQuantizerBase):
    """Gumbel VQ with fairseq's constructor arguments and output dict."""

    def __init__(
        self,
        dim: int,
        num_vars: int,
        temp,
        groups: int,
        combine_groups: bool,
        vq_dim: int,
        time_first: bool,
        activation: nn.Module = nn.GELU(),
        weight_proj_depth: int = 1,
        weight_proj_factor: int = 1,
        hard: bool = True,
        std: float = 0,
        *,
        invalid_frames: str = "raise",
        diagnostics: bool = False,
    ):
        super().__init__(dim, num_vars, temp, groups, combine_groups, vq_dim, time_first, hard,
                         invalid_frames=invalid_frames)
        self.diagnostics = diagnostics  # selection statistics in the output dict (quantizers/selection.py)
        self.std = std
        self.vars = nn.Parameter(torch.empty(1 if combine_groups else groups, num_vars, self.var_dim))
        self.weight_proj = tangent_projection(dim, groups * num_vars, weight_proj_depth, weight_proj_factor, activation)
        self.reset_parameters(projection=False)

    def reset_parameters(self, projection: bool = True) -> None:
        """Draw the weights as fairseq does (for a module built on ``torch.device("meta")`` and then
        materialised with ``to_empty``); ``projection=False`` keeps a deeper projection's weights."""
        if self.std == 0:
            nn.init.uniform_(self.vars)
        else:
            nn.init.normal_(self.vars, std=self.std)
        if isinstance(self.weight_proj, nn.Linear):  # fairseq's initialisation of the single-layer projection
            nn.init.normal_(self.weight_proj.weight, std=1)
            nn.init.zeros_(self.weight_proj.bias)
        elif projection:
            for layer in self.weight_proj.modules():
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()

    def codebook_vectors(self) -> torch.Tensor:
        return self.vars.expand(self.groups, -1, -1) if self.combine_groups else self.vars

    def forward(self, x: torch.Tensor, produce_targets: bool = False) -> dict:
        result = {"num_vars": self.num_vars * self.groups}
        rows, shape = self._rows(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            # logits per group in fp32 (HyperVQ's precision policy; NaN/Inf frames refused or marked
            # invalid, see gumbel_base), then the shared selection
            logits, valid = self._project(rows, shape, self.invalid_frames == "mark")
            logits = logits.view(rows.shape[0], self.groups, self.num_vars)
            z_q, *_ = self._select(logits, self.codebook_vectors(), result, shape, produce_targets, valid)
        result["x"] = self._restore(z_q, shape, x.dtype)
        return result
