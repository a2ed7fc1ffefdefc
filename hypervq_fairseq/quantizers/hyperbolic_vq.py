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

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..core.mlr import mlr_logits_from_unit_normals
from ..core.poincare import check_curvature, distance_to_origin_from_tangent
from ..core.guards import clamped_norm, compute_dtype
from .gumbel_base import GumbelQuantizerBase, parse_temp, project_fp32, tangent_projection  # noqa: F401  (re-exported)
from .perplexity import code_usage


CLIP_MODES = ("hard", "soft")


def clip_tangent(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Feature clipping (Guo et al., CVPR 2022): scale ``v`` so that ``‖v‖ ≤ radius``.

    Every vector longer than ``radius`` lands on the same sphere, so the radial coordinate
    carries no information for those rows.
    """
    norm = clamped_norm(v)
    return v * torch.clamp(radius / norm, max=1.0)


def soft_clip_tangent(v: torch.Tensor, radius: float) -> torch.Tensor:
    """``‖v‖ -> radius·tanh(‖v‖/radius)``, direction kept: bounded like clipping, but monotonic.

    Short vectors are nearly unchanged and long ones approach the sphere without reaching it,
    so the radius still orders the rows (what hard clipping loses).
    """
    norm = clamped_norm(v)
    return v * (radius * torch.tanh(norm / radius) / norm)


class HyperbolicVectorQuantizer(GumbelQuantizerBase):
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
        clip_mode: ``hard`` (Guo et al.: rows beyond the radius are projected onto it) or ``soft``
            (``radius·tanh(‖v‖/radius)``: bounded, but the radius keeps its order).
        logit_scale: the MLR logits are multiplied by this before the softmax and the Gumbel
            noise (1: the paper's logits). It sets how much the input, rather than the noise
            (std 1.28), decides the code.
        learn_logit_scale: learn the scale (one per group, through its logarithm).
        r_init: offsets ``r_k`` drawn uniformly from this range (must not be ``(0, 0)``).
        diagnostics: add per-group perplexities, code usage, the mean hyperbolic radius and the
            selection statistics of ``quantizers/selection.py`` to the output dict (off by default,
            so the keys match the stock quantizer).
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
        clip_mode: str = "hard",
        r_init: Tuple[float, float] = (0.1, 0.5),
        logit_scale: float = 1.0,
        learn_logit_scale: bool = False,
        diagnostics: bool = False,
    ):
        super().__init__(dim, num_vars, temp, groups, combine_groups, vq_dim, time_first, hard)
        check_curvature(curvature)
        if clip_radius is not None and not clip_radius > 0:
            raise ValueError(f"clip_radius must be > 0 or None, got {clip_radius!r}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {', '.join(CLIP_MODES)}, got {clip_mode!r}")
        if not (math.isfinite(logit_scale) and logit_scale > 0):
            raise ValueError(f"logit_scale must be a finite number > 0, got {logit_scale!r}")
        r_init = tuple(float(r) for r in r_init)
        if len(r_init) != 2 or r_init[0] > r_init[1] or r_init == (0.0, 0.0):
            raise ValueError(f"r_init must be a range (low, high) with low <= high, other than (0, 0); got {r_init!r}")
        self.clip_radius = clip_radius
        self.clip = clip_tangent if clip_mode == "hard" else soft_clip_tangent
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
        log_scale = torch.full((groups,), math.log(logit_scale))
        if learn_logit_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale, persistent=False)  # set by the config

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

    def tangent(self, rows: torch.Tensor) -> torch.Tensor:
        """Tangent vectors ``(N, G, d)`` (float32 or wider, clipped if asked) for input rows ``(N, C)``."""
        v = project_fp32(self.weight_proj, rows).view(rows.shape[0], self.groups, self.var_dim)
        return v if self.clip_radius is None else self.clip(v, self.clip_radius)

    def logits(self, v: torch.Tensor, planes: Optional[Tuple[torch.Tensor, ...]] = None) -> torch.Tensor:
        """MLR logits ``(N, G, V)`` for tangent vectors ``v (N, G, d)`` (float32 or wider).

        ``planes``: the output of ``_hyperplanes`` when the caller already computed it.
        """
        z_unit, z_norm, offsets = self._hyperplanes(v.dtype) if planes is None else planes
        scale = self.log_logit_scale.to(v.dtype).exp().unsqueeze(-1)              # (G, 1)
        return mlr_logits_from_unit_normals(v, z_unit, z_norm * scale, offsets, c=self.curvature.to(v.dtype))

    def forward(self, x: torch.Tensor, produce_targets: bool = False) -> dict:
        result = {"num_vars": self.num_vars * self.groups}

        # 1. arrange the layout: rows (B·T, C)
        rows, shape = self._rows(x)

        with torch.autocast(device_type=x.device.type, enabled=False):
            # 2. project to tangent coordinates in fp32, one d-dimensional vector per group
            v = self.tangent(rows)                                        # (N, G, d)

            # 3. hyperbolic MLR logits
            planes = self._hyperplanes(v.dtype)                           # ẑ, ‖z‖, r: shared with step 4
            logits = self.logits(v, planes)                               # (N, G, V)

            # 4. select (Gumbel straight-through in training, argmax in eval) the code vectors r_k ẑ_k
            z_unit, _, offsets = planes
            z_q, hard_idx, code_ppl, prob_ppl = self._select(
                logits, offsets.unsqueeze(-1) * z_unit, result, shape, produce_targets)

        if self.diagnostics:
            result.update(self._diagnostics(v, hard_idx, code_ppl, prob_ppl))

        # 5. restore the input's layout and dtype, groups concatenated
        result["x"] = self._restore(z_q, shape, x.dtype)
        return result

    @torch.no_grad()
    def _diagnostics(self, v, hard_idx, code_ppl, prob_ppl) -> dict:
        counts = code_usage(hard_idx, self.num_vars) * hard_idx.shape[0]
        out = {f"code_perplexity_g{g}": code_ppl[g].detach() for g in range(self.groups)}
        out.update({f"prob_perplexity_g{g}": prob_ppl[g].detach() for g in range(self.groups)})
        out["code_counts"] = counts
        out["hyperbolic_radius"] = distance_to_origin_from_tangent(v, c=self.curvature).mean()
        return out
