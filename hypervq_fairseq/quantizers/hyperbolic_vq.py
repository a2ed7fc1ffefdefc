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

Curvature. The clip radius and ``r_init`` are given in units of the ball, ``1/√c``, and the
normals start at ``N(0, c/d)``: the logit reads ``√c‖v‖``, ``2√c·r`` and ``2‖z‖/√c``, so with this
scaling a quantizer at curvature ``c`` starts with exactly the logits that ``c = 1`` gives for
the input ``√c·v`` (tested). What ``c`` then changes is how large the tangent vectors and code
vectors are, in the projection's own units, for the same decisions: at small ``c`` the projection
reaches the ball's saturation only at long tangent vectors. At ``c = 1`` nothing is rescaled.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..core.mlr import mlr_logits_from_unit_normals
from ..core.poincare import check_curvature
from ..core.guards import TANGENT_NORM_MAX, clamped_norm, compute_dtype, safe_norm
from ..errors import InputError
from .gumbel_base import GumbelQuantizerBase, parse_temp, project_fp32, tangent_projection  # noqa: F401  (re-exported)
from .perplexity import code_usage


CLIP_MODES = ("hard", "soft")
# The defaults, chosen on held-out dev voices (docs/evidence.md); every trainer and config takes them from here.
DEFAULT_CLIP_RADIUS = 2.0
DEFAULT_CLIP_MODE = "hard"
DEFAULT_LOGIT_SCALE = 2.0
DEFAULT_CURVATURE = 0.3
# Re-seeding keeps at most this many frames of the latest training batch (a sample to re-seed from).
RESEED_POOL = 4096


def clip_tangent(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Feature clipping (Guo et al., CVPR 2022): scale ``v`` so that ``‖v‖ ≤ radius``.

    Every vector longer than ``radius`` lands on the same sphere, so the radial coordinate carries
    no information for those rows. The norm is the overflow-safe one: a plain float32 norm is
    ``inf`` past ~1.8e19 and would clip such a vector to 0 instead of to its direction.
    """
    return v * torch.clamp(radius / safe_norm(v), max=1.0)


def soft_clip_tangent(v: torch.Tensor, radius: float) -> torch.Tensor:
    """``‖v‖ -> radius·tanh(‖v‖/radius)``, direction kept: bounded like clipping, but monotonic.

    Short vectors are nearly unchanged and long ones approach the sphere without reaching it, so
    the radius still orders the rows (what hard clipping loses).
    """
    norm = safe_norm(v).clamp_min(torch.finfo(v.dtype).tiny)
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
        std: if > 0, normals are drawn from ``N(0, std²)``; else ``N(0, c/d)`` (rows of norm ≈ √c).

    Hyperbolic options (keyword-only):
        curvature: ``c > 0`` of the ball.
        learn_curvature: learn ``log c``.
        clip_radius: bound on ``√c·‖v‖`` before ``exp_0``, i.e. on the tangent norm in units of the
            ball's radius ``1/√c`` (None: no clipping, as in the paper).
        clip_mode: ``hard`` (Guo et al.: rows beyond the radius are projected onto it) or ``soft``
            (``radius·tanh(‖v‖/radius)``: bounded, but the radius keeps its order).
        logit_scale: the MLR logits are multiplied by this before the softmax and the Gumbel
            noise (1: the paper's logits). It sets how much the input, rather than the noise
            (std 1.28), decides the code.
        learn_logit_scale: learn the scale (one per group, through its logarithm).

    Defaults: clipping at 2 and a logit scale of 2 were chosen on held-out dev voices against the
    stock Gumbel quantizer (``docs/evidence.md``): the paper's setting (``clip_radius=None,
    logit_scale=1``) lets the Gumbel noise pick about a third of the codes and lost on validation
    loss there. Curvature 0.3 won on dev among 0.01, 0.03, 0.1, 0.3 and 1 and was level with
    c = 1 on the test speaker. ``curvature=1.0, clip_radius=None, logit_scale=1.0`` recovers the
    paper's HyperVQ.
        r_init: offsets ``r_k`` drawn uniformly from this range times ``1/√c`` (finite, must not be ``(0, 0)``).
        invalid_frames: ``"raise"`` (default): a frame holding NaN or Inf raises
            :class:`~hypervq_fairseq.errors.NonFiniteInputError`; ``"mark"``: it gets the code
            ``INVALID_CODE`` (-1) in ``targets``, a zero code vector and no gradient, and is left out
            of the perplexities.
        diagnostics: add per-group perplexities, code usage, the mean hyperbolic radius and the
            selection statistics of ``quantizers/selection.py`` to the output dict (off by default,
            so the keys match the stock quantizer).
        reseed_every: every this many updates, move each hyperplane whose code no frame chose
            (argmax) since the last re-seeding onto a frame of the latest batch (:meth:`reseed`);
            0: off. A remedy for dead codes, as VQ practice re-seeds dead k-means centroids.
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
        curvature: float = DEFAULT_CURVATURE,
        learn_curvature: bool = False,
        clip_radius: Optional[float] = DEFAULT_CLIP_RADIUS,
        clip_mode: str = DEFAULT_CLIP_MODE,
        r_init: Tuple[float, float] = (0.1, 0.5),
        logit_scale: float = DEFAULT_LOGIT_SCALE,
        learn_logit_scale: bool = False,
        invalid_frames: str = "raise",
        diagnostics: bool = False,
        reseed_every: int = 0,
    ):
        super().__init__(dim, num_vars, temp, groups, combine_groups, vq_dim, time_first, hard,
                         invalid_frames=invalid_frames)
        check_curvature(curvature)
        if clip_radius is not None and not (isinstance(clip_radius, (int, float)) and 0 < clip_radius < math.inf):
            raise InputError(f"clip_radius must be a finite number > 0 or None, got {clip_radius!r}")
        if clip_mode not in CLIP_MODES:
            raise InputError(f"clip_mode must be one of {', '.join(CLIP_MODES)}, got {clip_mode!r}")
        if not (isinstance(logit_scale, (int, float)) and 0 < logit_scale < math.inf):
            raise InputError(f"logit_scale must be a finite number > 0, got {logit_scale!r}")
        try:
            r_init = tuple(float(r) for r in r_init)
        except (TypeError, ValueError):
            r_init = (math.nan,)
        if len(r_init) != 2 or not all(map(math.isfinite, r_init)) or r_init[0] > r_init[1] or r_init == (0.0, 0.0):
            raise InputError(f"r_init must be a range (low, high) of finite numbers with low <= high, other than "
                             f"(0, 0); got {r_init!r}")
        if not (isinstance(reseed_every, int) and reseed_every >= 0):
            raise InputError(f"reseed_every must be an integer >= 0 (0: off), got {reseed_every!r}")
        if reseed_every and combine_groups:
            raise InputError("reseed_every needs one codebook per group (combine_groups=False)")
        self.reseed_every = reseed_every
        self._pool = None  # (tangent vectors (N, G, d), top logit (N, G)) of the latest training batch
        if reseed_every:
            self.register_buffer("_usage", torch.zeros(groups, num_vars), persistent=False)
        self.clip_radius = clip_radius
        self.clip = clip_tangent if clip_mode == "hard" else soft_clip_tangent
        self.diagnostics = diagnostics
        # Ball units (see the module docstring): at c = 1 these are the plain values.
        ball = 1 / math.sqrt(float(curvature))
        self._init = dict(std=std if std > 0 else 1 / (ball * math.sqrt(self.var_dim)),
                          r_init=(r_init[0] * ball, r_init[1] * ball),
                          log_c=math.log(float(curvature)), log_scale=math.log(float(logit_scale)))

        self.weight_proj = tangent_projection(dim, vq_dim, weight_proj_depth, weight_proj_factor, activation)
        codebooks = 1 if combine_groups else groups
        self.normals = nn.Parameter(torch.empty(codebooks, num_vars, self.var_dim))
        self.offsets = nn.Parameter(torch.empty(codebooks, num_vars))
        log_c = torch.empty(())
        if learn_curvature:
            self.log_curvature = nn.Parameter(log_c)
        else:
            self.register_buffer("log_curvature", log_c)
        log_scale = torch.empty(groups)
        if learn_logit_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale, persistent=False)  # set by the option
        self._reset_own()

    def _reset_own(self) -> None:
        with torch.no_grad():
            nn.init.normal_(self.normals, std=self._init["std"])
            self.offsets.uniform_(*self._init["r_init"])
            self.log_curvature.fill_(self._init["log_c"])
            self.log_logit_scale.fill_(self._init["log_scale"])

    def reset_parameters(self) -> None:
        """Draw every weight afresh, as at construction (for a module built on ``torch.device("meta")``
        and then materialised with ``to_empty``)."""
        for layer in self.weight_proj.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self._reset_own()

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

    def tangent(self, rows: torch.Tensor, shape=None) -> torch.Tensor:
        """Tangent vectors ``(N, G, d)`` (float32 or wider, clipped if asked) for input rows ``(N, C)``.

        Raises for NaN/Inf rows, whatever ``invalid_frames`` says (``forward`` is where frames are
        marked); ``shape``: ``(B, T)`` of the rows, to say where a bad frame is.
        """
        return self._tangent(rows, (1, rows.shape[0]) if shape is None else shape, mark=False)[0]

    def _tangent(self, rows: torch.Tensor, shape, mark: bool):
        """``(v (N, G, d), valid (N,) or None)``: the checked projection (``_project``), clipped if asked."""
        v, valid = self._project(rows, shape, mark)
        v = v.view(rows.shape[0], self.groups, self.var_dim)
        if self.clip_radius is None:
            return v, valid
        # the radius in tangent units, clip_radius/√c (exactly clip_radius at c = 1)
        return self.clip(v, self.clip_radius * self.curvature.to(v.dtype).rsqrt()), valid

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
            #    (NaN/Inf frames refused or marked invalid; see gumbel_base)
            v, valid = self._tangent(rows, shape, self.invalid_frames == "mark")   # (N, G, d), (N,) or None

            # 3. hyperbolic MLR logits
            planes = self._hyperplanes(v.dtype)                           # ẑ, ‖z‖, r: shared with step 4
            logits = self.logits(v, planes)                               # (N, G, V)

            # 4. select (Gumbel straight-through in training, argmax in eval) the code vectors r_k ẑ_k
            z_unit, _, offsets = planes
            z_q, hard_idx, code_ppl, prob_ppl = self._select(
                logits, offsets.unsqueeze(-1) * z_unit, result, shape, produce_targets, valid)

        if self.reseed_every and self.training:
            self._remember(v, logits, hard_idx, valid)
        if self.diagnostics:
            result.update(self._diagnostics(v, hard_idx, code_ppl, prob_ppl, valid))

        # 5. restore the input's layout and dtype, groups concatenated
        result["x"] = self._restore(z_q, shape, x.dtype)
        return result

    # --------------------------------------------------------------- re-seeding of unused hyperplanes

    @torch.no_grad()
    def _remember(self, v, logits, hard_idx, valid) -> None:
        """Count the argmax codes and keep (a sample of) this batch's tangent vectors to re-seed from."""
        self._usage += code_usage(hard_idx, self.num_vars, valid).to(self._usage.dtype)  # only "never chosen" matters
        keep = slice(None) if valid is None else valid
        step = -(-v.shape[0] // RESEED_POOL)  # every step-th row: at most RESEED_POOL of them
        v, top = v.detach()[keep][::step], logits.detach().max(-1).values[keep][::step]
        self._pool = (v, top)

    def set_num_updates(self, num_updates: int) -> None:
        super().set_num_updates(num_updates)
        if self.reseed_every and num_updates > 0 and num_updates % self.reseed_every == 0 and self._pool is not None:
            self.reseed()

    @torch.no_grad()
    def reseed(self) -> int:
        """Move every hyperplane whose code no frame chose since the last re-seeding onto a frame of
        the latest batch; returns how many moved.

        The frames are those the current codes fit worst (lowest winning logit), one per dead code:
        the normal takes the frame's direction, the offset half its tangent norm (so that the frame
        lies on the hyperplane's positive side and the new code wins it), and the normal's length
        is the mean length of the codes in use. Under ``torch.distributed`` the counts are summed
        over ranks and rank 0's choice is broadcast, so every replica keeps the same weights.
        """
        usage, (pool, top) = self._usage, self._pool
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed:
            torch.distributed.all_reduce(usage)
        moved = 0
        for g in range(self.groups):  # one codebook per group (the constructor refuses combine_groups)
            dead = (usage[g] == 0).nonzero().flatten()
            if len(dead) == 0 or len(dead) == self.num_vars:
                continue
            frames = top[:, g].argsort()[: len(dead)]
            dead = dead[: len(frames)]
            v = pool[frames, g].to(torch.float32)
            norm = v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
            alive = self.normals[g][usage[g] > 0].to(torch.float32).norm(dim=-1).mean()
            self.normals[g, dead] = (v / norm * alive).to(self.normals.dtype)
            self.offsets[g, dead] = (0.5 * norm.squeeze(-1)).to(self.offsets.dtype)
            moved += len(dead)
        if distributed:
            torch.distributed.broadcast(self.normals.data, src=0)
            torch.distributed.broadcast(self.offsets.data, src=0)
        usage.zero_()
        self._pool = None
        return moved

    @torch.no_grad()
    def _diagnostics(self, v, hard_idx, code_ppl, prob_ppl, valid=None) -> dict:
        """Per-group perplexities, code counts and the mean hyperbolic radius of the valid rows
        (0 for a batch without any: every statistic stays finite)."""
        v = v.detach()
        weights = v.new_ones(v.shape[0]) if valid is None else valid.to(v.dtype)
        rows = weights.sum()
        counts = code_usage(hard_idx, self.num_vars, valid) * rows
        out = {f"code_perplexity_g{g}": code_ppl[g].detach() for g in range(self.groups)}
        out.update({f"prob_perplexity_g{g}": prob_ppl[g].detach() for g in range(self.groups)})
        out["code_counts"] = counts
        # the geodesic radius 2‖v‖ (core.poincare.distance_to_origin_from_tangent) as the logits read it:
        # ‖v‖ at most TANGENT_NORM_MAX, so that the statistic stays finite for any finite input
        radius = 2 * safe_norm(v, keepdim=False).clamp_max(TANGENT_NORM_MAX[v.dtype]).mean(dim=-1)  # (N,)
        out["hyperbolic_radius"] = (radius * weights).sum() / rows.clamp_min(1)
        return out
