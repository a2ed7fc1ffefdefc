"""HyperVQ: vector quantization by hyperbolic multinomial logistic regression.

Paper: "HyperVQ: MLR-based Vector Quantization in Hyperbolic Space" (sections 4.2.1-4.2.2,
Algorithm 1). A drop-in for fairseq's ``GumbelVectorQuantizer``: same constructor
arguments, same forward dict, ``forward_idx``, ``set_num_updates`` and
``sample_from_codebook``, so wav2vec 2.0 can swap one for the other.

Per group ``g`` the quantizer owns ``V`` hyperplanes (normal ``z_k``, offset ``r_k``) in a
``d = vq_dim / G``-dimensional Poincaré ball. Forward, in stages:

1. arrange the input as ``(B, T, C)``;
2. project linearly to ``vq_dim`` tangent coordinates and split into ``G`` groups
   (our choice for wav2vec 2.0, where the paper is silent; it keeps the stock output shape);
3. logits of the unidirectional hyperbolic MLR at ``exp_0(v)`` (closed form, fp32 or wider);
4. select: Gumbel-softmax with straight-through in training, argmax in eval;
5. code vector ``z_q = log_0(q_k) = r_k ẑ_k``, reached through the one-hot so that
   gradients flow to ``r`` and ``z``; groups are concatenated → ``(B, T, vq_dim)``.

Precision: fairseq's ``--fp16`` casts every parameter (and the curvature buffer) to half.
Steps 2-5 always run in float32 (float64 for float64 inputs) with autocast disabled, the
half parameters being upcast inside the graph; the output is cast back to the input's dtype.
Half storage only rounds the stored values (e.g. ``log c``); it never narrows the math.

Initialisation: HNN++ starts ``r = 0``, which would make every code vector 0 and the first
updates degenerate; we draw ``r ~ U(r_init)`` with a small positive range instead.
"""
from __future__ import annotations

import ast
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.mlr import mlr_logits_from_unit_normals
from ..core.poincare import check_curvature, distance_to_origin_from_tangent
from ..core.guards import clamped_norm, compute_dtype
from .perplexity import code_usage, group_perplexities


def parse_temp(temp: Union[str, Sequence[float]]) -> Tuple[float, float, float]:
    """``(max, min, decay)`` from a tuple or fairseq's string form ``"(2, 0.5, 0.999995)"``."""
    given = temp
    try:
        if isinstance(temp, str):
            temp = ast.literal_eval(temp)
        temp = tuple(float(t) for t in temp)
    except (ValueError, TypeError, SyntaxError):
        raise ValueError(f"temp must be three numbers (max_temp, min_temp, decay), got {given!r}") from None
    if len(temp) != 3:
        raise ValueError(f"temp must be three numbers (max_temp, min_temp, decay), got {given!r}")
    max_temp, min_temp, decay = temp
    if not (0 < min_temp <= max_temp and 0 < decay <= 1):
        raise ValueError(f"temp needs 0 < min_temp <= max_temp and 0 < decay <= 1, got {given!r}")
    return max_temp, min_temp, decay


def check_input(x: torch.Tensor, channels: int, time_first: bool) -> None:
    """A readable error for the wrong layout instead of a shape error deep in a matmul."""
    layout, axis = ("B×T×C", -1) if time_first else ("B×C×T", 1)
    if x.dim() != 3 or x.shape[axis] != channels:
        raise ValueError(f"quantizer input must be {layout} with C = {channels}; got shape {tuple(x.shape)}")


def clip_tangent(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Feature clipping (Guo et al., CVPR 2022): scale ``v`` so that ``‖v‖ ≤ radius``."""
    norm = clamped_norm(v)
    return v * torch.clamp(radius / norm, max=1.0)


def tangent_projection(dim: int, out_dim: int, depth: int, factor: int, activation: nn.Module) -> nn.Module:
    """The stock quantizer's ``weight_proj`` layout, ending in ``out_dim`` tangent coordinates."""
    if depth <= 1:
        return nn.Linear(dim, out_dim)
    inner = dim * factor
    layers = []
    for i in range(depth - 1):
        layers += [nn.Linear(dim if i == 0 else inner, inner), activation]
    return nn.Sequential(*layers, nn.Linear(inner, out_dim))


def project_fp32(proj: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a :func:`tangent_projection` in float32 (float64 if input or weights are), autocast or not.

    fairseq's ``--fp16`` casts the projection's weights to half, and a half matrix product
    overflows for inputs of norm ~1e5; upcasting costs one copy of ``x`` and keeps every
    finite input finite. The weights are upcast inside the graph, so gradients still reach them
    (in their own dtype).
    """
    weight = next(proj.parameters())
    dtype = torch.promote_types(compute_dtype(x.dtype), compute_dtype(weight.dtype))
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.to(dtype)
        for layer in proj if isinstance(proj, nn.Sequential) else (proj,):
            if isinstance(layer, nn.Linear):
                bias = None if layer.bias is None else layer.bias.to(dtype)
                x = F.linear(x, layer.weight.to(dtype), bias)
            else:
                x = layer(x)
    return x


class HyperbolicVectorQuantizer(nn.Module):
    """HyperVQ with the interface of fairseq's ``GumbelVectorQuantizer``.

    Args (as in fairseq):
        dim: input channels.
        num_vars: codes per group ``V``.
        temp: ``(max_temp, min_temp, decay)``; ``tau = max(max_temp·decay^updates, min_temp)``.
        groups: ``G``; ``vq_dim`` must be divisible by it.
        combine_groups: share one set of hyperplanes across groups.
        vq_dim: output width (``G × d``).
        time_first: input is ``B×T×C`` (else ``B×C×T``).
        activation, weight_proj_depth, weight_proj_factor: the projection to the tangent space.
        hard: straight-through one-hot (else the soft Gumbel sample is used).
        std: if > 0, normals are drawn from ``N(0, std²)``; else ``N(0, 1/d)`` (unit-norm rows).

    Hyperbolic options (keyword-only):
        curvature: ``c > 0`` of the ball.
        learn_curvature: learn ``log c``.
        clip_radius: bound on the tangent norm before ``exp_0`` (None: no clipping).
        r_init: offsets ``r_k`` drawn uniformly from this range (must not be ``(0, 0)``).
        diagnostics: add per-group perplexities, code usage and the mean hyperbolic radius
            to the output dict (off by default, so the keys match the stock quantizer).
    """

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
        curvature: float = 1.0,
        learn_curvature: bool = False,
        clip_radius: Optional[float] = None,
        r_init: Tuple[float, float] = (0.1, 0.5),
        diagnostics: bool = False,
    ):
        super().__init__()
        if num_vars < 2:
            raise ValueError(f"num_vars (codes per group) must be at least 2, got {num_vars}")
        if groups < 1 or vq_dim % groups != 0:
            raise ValueError(f"vq_dim {vq_dim} must be divisible by groups {groups}")
        check_curvature(curvature)
        if clip_radius is not None and not clip_radius > 0:
            raise ValueError(f"clip_radius must be > 0 or None, got {clip_radius!r}")
        r_init = tuple(float(r) for r in r_init)
        if len(r_init) != 2 or r_init[0] > r_init[1] or r_init == (0.0, 0.0):
            raise ValueError(f"r_init must be a range (low, high) with low <= high, other than (0, 0); got {r_init!r}")

        self.input_dim = dim
        self.num_vars = num_vars
        self.groups = groups
        self.combine_groups = combine_groups
        self.vq_dim = vq_dim
        self.var_dim = vq_dim // groups
        self.time_first = time_first
        self.hard = hard
        self.clip_radius = clip_radius
        self.diagnostics = diagnostics

        self.weight_proj = tangent_projection(dim, vq_dim, weight_proj_depth, weight_proj_factor, activation)

        codebooks = 1 if combine_groups else groups
        self.normals = nn.Parameter(torch.empty(codebooks, num_vars, self.var_dim))
        nn.init.normal_(self.normals, std=std if std > 0 else 1 / math.sqrt(self.var_dim))
        self.offsets = nn.Parameter(torch.empty(codebooks, num_vars).uniform_(*r_init))

        log_c = torch.tensor(math.log(curvature))
        if learn_curvature:
            self.log_curvature = nn.Parameter(log_c)
        else:
            self.register_buffer("log_curvature", log_c)

        self.max_temp, self.min_temp, self.temp_decay = parse_temp(temp)
        self.curr_temp = self.max_temp

    # -- fairseq interface -------------------------------------------------------------

    def set_num_updates(self, num_updates: int) -> None:
        self.curr_temp = max(self.max_temp * self.temp_decay**num_updates, self.min_temp)

    @property
    def curvature(self) -> torch.Tensor:
        """``c`` as a 0-dim tensor in float32 (float64 if the module is float64)."""
        return self.log_curvature.to(compute_dtype(self.log_curvature.dtype)).exp()

    def _hyperplanes(self, dtype: torch.dtype):
        """``(ẑ, ‖z‖, r)`` per group, ``(G, V, d)``, ``(G, V)``, ``(G, V)``, in ``dtype``."""
        normals, offsets = self.normals.to(dtype), self.offsets.to(dtype)
        z_norm = clamped_norm(normals)
        z_unit = normals * z_norm.reciprocal()
        planes = (z_unit, z_norm.squeeze(-1), offsets)
        if self.combine_groups:
            planes = tuple(t.expand(self.groups, *t.shape[1:]) for t in planes)
        return planes

    def codebook_vectors(self) -> torch.Tensor:
        """Code vectors ``r_k ẑ_k`` per group, ``(G, V, d)``, in float32 (or float64)."""
        z_unit, _, offsets = self._hyperplanes(compute_dtype(self.normals.dtype))
        return offsets.unsqueeze(-1) * z_unit

    def sample_from_codebook(self, b: int, n: int) -> torch.Tensor:
        """``b × n`` code vectors drawn uniformly over the ``V^G`` combinations, ``(b, n, vq_dim)``."""
        if not n < self.num_vars**self.groups:
            raise ValueError(f"sample size {n} is not smaller than the codebook size {self.num_vars ** self.groups}")
        codes = self.codebook_vectors()
        idx = torch.randint(self.num_vars, (b * n, self.groups), device=codes.device)
        picked = codes[torch.arange(self.groups, device=codes.device), idx]  # (b·n, G, d)
        return picked.reshape(b, n, -1).to(self.normals.dtype)

    def forward_idx(self, x: torch.Tensor):
        res = self.forward(x, produce_targets=True)
        return res["x"], res["targets"]

    def tangent(self, rows: torch.Tensor) -> torch.Tensor:
        """Tangent vectors ``(N, G, d)`` (float32 or wider, clipped if asked) for input rows ``(N, C)``."""
        v = project_fp32(self.weight_proj, rows).view(rows.shape[0], self.groups, self.var_dim)
        return v if self.clip_radius is None else clip_tangent(v, self.clip_radius)

    def logits(self, v: torch.Tensor, planes: Optional[Tuple[torch.Tensor, ...]] = None) -> torch.Tensor:
        """MLR logits ``(N, G, V)`` for tangent vectors ``v (N, G, d)`` (float32 or wider).

        ``planes``: the output of ``_hyperplanes`` when the caller already computed it.
        """
        z_unit, z_norm, offsets = self._hyperplanes(v.dtype) if planes is None else planes
        return mlr_logits_from_unit_normals(v, z_unit, z_norm, offsets, c=self.curvature.to(v.dtype))

    def forward(self, x: torch.Tensor, produce_targets: bool = False) -> dict:
        result = {"num_vars": self.num_vars * self.groups}
        in_dtype = x.dtype

        # 1. arrange the layout: (B, T, C)
        check_input(x, self.input_dim, self.time_first)
        if not self.time_first:
            x = x.transpose(1, 2)
        bsz, tsz, fsz = x.shape

        with torch.autocast(device_type=x.device.type, enabled=False):
            # 2. project to tangent coordinates in fp32, one d-dimensional vector per group
            v = self.tangent(x.reshape(-1, fsz))                          # (N, G, d)

            # 3. hyperbolic MLR logits and codebook-usage statistics
            planes = self._hyperplanes(v.dtype)                           # ẑ, ‖z‖, r: shared with step 5
            logits = self.logits(v, planes)                               # (N, G, V)
            hard_idx = logits.argmax(dim=-1)                              # (N, G)
            code_ppl, prob_ppl = group_perplexities(logits, hard_idx)
            result["code_perplexity"] = code_ppl.sum()
            result["prob_perplexity"] = prob_ppl.sum()
            result["temp"] = self.curr_temp

            # 4. select: Gumbel straight-through in training, argmax in eval
            if self.training:
                one_hot = F.gumbel_softmax(logits, tau=self.curr_temp, hard=self.hard, dim=-1)
            else:
                one_hot = F.one_hot(hard_idx, self.num_vars).to(logits.dtype)
            if produce_targets:
                result["targets"] = one_hot.argmax(dim=-1).view(bsz, tsz, self.groups).detach()

            # 5. code vectors r_k ẑ_k through the one-hot, groups concatenated
            z_unit, _, offsets = planes
            codes = offsets.unsqueeze(-1) * z_unit                        # (G, V, d)
            z_q = torch.einsum("ngv,gvd->ngd", one_hot, codes)

        if self.diagnostics:
            result.update(self._diagnostics(v, hard_idx, code_ppl, prob_ppl))
        x = z_q.reshape(bsz, tsz, self.vq_dim).to(in_dtype)
        if not self.time_first:
            x = x.transpose(1, 2)
        result["x"] = x
        return result

    @torch.no_grad()
    def _diagnostics(self, v, hard_idx, code_ppl, prob_ppl) -> dict:
        counts = code_usage(hard_idx, self.num_vars) * hard_idx.shape[0]
        out = {f"code_perplexity_g{g}": code_ppl[g].detach() for g in range(self.groups)}
        out.update({f"prob_perplexity_g{g}": prob_ppl[g].detach() for g in range(self.groups)})
        out["code_counts"] = counts
        out["hyperbolic_radius"] = distance_to_origin_from_tangent(v, c=self.curvature).mean()
        return out
