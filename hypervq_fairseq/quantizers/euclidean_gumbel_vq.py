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
import torch.nn.functional as F

from .hyperbolic_vq import check_input, parse_temp, project_fp32, tangent_projection
from .perplexity import group_perplexities


class EuclideanGumbelQuantizer(nn.Module):
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
    ):
        super().__init__()
        if num_vars < 2:
            raise ValueError(f"num_vars (codes per group) must be at least 2, got {num_vars}")
        if groups < 1 or vq_dim % groups != 0:
            raise ValueError(f"vq_dim {vq_dim} must be divisible by groups {groups}")
        self.input_dim = dim
        self.num_vars, self.groups, self.combine_groups = num_vars, groups, combine_groups
        self.vq_dim, self.var_dim, self.time_first, self.hard = vq_dim, vq_dim // groups, time_first, hard

        self.vars = nn.Parameter(torch.empty(1 if combine_groups else groups, num_vars, self.var_dim))
        if std == 0:
            nn.init.uniform_(self.vars)
        else:
            nn.init.normal_(self.vars, std=std)
        self.weight_proj = tangent_projection(dim, groups * num_vars, weight_proj_depth, weight_proj_factor, activation)
        if weight_proj_depth <= 1:  # fairseq's initialisation of the single-layer projection
            nn.init.normal_(self.weight_proj.weight, std=1)
            nn.init.zeros_(self.weight_proj.bias)
        self.max_temp, self.min_temp, self.temp_decay = parse_temp(temp)
        self.curr_temp = self.max_temp

    def set_num_updates(self, num_updates: int) -> None:
        self.curr_temp = max(self.max_temp * self.temp_decay**num_updates, self.min_temp)

    def codebook_vectors(self) -> torch.Tensor:
        return self.vars.expand(self.groups, -1, -1) if self.combine_groups else self.vars

    def sample_from_codebook(self, b: int, n: int) -> torch.Tensor:
        """``b × n`` code vectors drawn uniformly over the ``V^G`` combinations, ``(b, n, vq_dim)``."""
        if not n < self.num_vars**self.groups:
            raise ValueError(f"sample size {n} is not smaller than the codebook size {self.num_vars ** self.groups}")
        codes = self.codebook_vectors()
        idx = torch.randint(self.num_vars, (b * n, self.groups), device=codes.device)
        return codes[torch.arange(self.groups, device=codes.device), idx].reshape(b, n, -1)

    def forward_idx(self, x):
        res = self.forward(x, produce_targets=True)
        return res["x"], res["targets"]

    def forward(self, x: torch.Tensor, produce_targets: bool = False) -> dict:
        result = {"num_vars": self.num_vars * self.groups}
        in_dtype = x.dtype
        check_input(x, self.input_dim, self.time_first)
        if not self.time_first:
            x = x.transpose(1, 2)
        bsz, tsz, fsz = x.shape

        with torch.autocast(device_type=x.device.type, enabled=False):
            # logits per group in fp32 (HyperVQ's precision policy), then selection
            logits = project_fp32(self.weight_proj, x.reshape(-1, fsz)).view(bsz * tsz, self.groups, self.num_vars)
            hard_idx = logits.argmax(dim=-1)
            code_ppl, prob_ppl = group_perplexities(logits, hard_idx)
            result["code_perplexity"], result["prob_perplexity"] = code_ppl.sum(), prob_ppl.sum()
            result["temp"] = self.curr_temp
            if self.training:
                one_hot = F.gumbel_softmax(logits, tau=self.curr_temp, hard=self.hard, dim=-1)
            else:
                one_hot = F.one_hot(hard_idx, self.num_vars).to(logits.dtype)
            if produce_targets:
                result["targets"] = one_hot.argmax(dim=-1).view(bsz, tsz, self.groups).detach()
            z_q = torch.einsum("ngv,gvd->ngd", one_hot, self.codebook_vectors().to(logits.dtype))

        x = z_q.reshape(bsz, tsz, self.vq_dim).to(in_dtype)
        if not self.time_first:
            x = x.transpose(1, 2)
        result["x"] = x
        return result
