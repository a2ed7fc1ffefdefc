"""What every Gumbel-style quantizer here shares with fairseq's ``GumbelVectorQuantizer``.

HyperVQ and the Euclidean Gumbel quantizer differ only in how they get logits and code vectors.
Everything else is the stock module's contract, kept in one place: the constructor checks, the
temperature schedule ``tau = max(max_temp·decay^updates, min_temp)`` (``set_num_updates``),
``forward_idx``, ``sample_from_codebook``, the ``B×T×C`` / ``B×C×T`` layouts, and the selection
stage: perplexities of the hard choice and of the softmax, Gumbel-softmax with straight-through
in training, argmax in eval, and the code lookup as one ``(N, G, V)·(G, V, d)`` contraction.
The projections run in float32 or wider whatever fairseq's ``--fp16`` did to the weights.

Bad input never becomes a code. A frame holding NaN or Inf raises :class:`NonFiniteInputError`
(naming where it is), or, with ``invalid_frames="mark"``, gets the code :data:`INVALID_CODE`
(-1) in ``targets``, a zero code vector, no gradient, and no weight in the perplexities. Frames of
any finite norm keep a valid code: a row whose projection overflows (norm beyond ~1e36 in float32)
is projected again at norm ``INPUT_NORM_MAX``, which changes no code (``core/guards.py``). The
check costs one reduction over the projection's output and one host decision per forward
(a graph break under ``torch.compile``). Integer input, empty batches (every statistic then
finite) and modules left on the ``meta`` device are handled by name too.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.guards import INPUT_NORM_MAX, compute_dtype, unit_vector
from ..errors import InputError, NonFiniteInputError
from .perplexity import group_perplexities
from .selection import per_group, selection_stats


def parse_temp(temp: Union[str, Sequence[float]]) -> Tuple[float, float, float]:
    """``(max, min, decay)`` from a tuple or fairseq's string form ``"(2, 0.5, 0.999995)"``."""
    given = temp
    try:
        if isinstance(temp, str):
            temp = ast.literal_eval(temp)
        temp = tuple(float(t) for t in temp)
    except (ValueError, TypeError, SyntaxError):
        raise InputError(f"temp must be three numbers (max_temp, min_temp, decay), got {given!r}") from None
    if len(temp) != 3:
        raise InputError(f"temp must be three numbers (max_temp, min_temp, decay), got {given!r}")
    max_temp, min_temp, decay = temp
    if not (0 < min_temp <= max_temp < math.inf and 0 < decay <= 1):
        raise InputError(f"temp needs finite 0 < min_temp <= max_temp and 0 < decay <= 1, got {given!r}")
    return max_temp, min_temp, decay


INVALID_CODE = -1        # the target of a frame that has no code (NaN/Inf input, invalid_frames="mark")
INVALID_FRAMES = ("raise", "mark")


def check_sizes(dim, num_vars, groups, vq_dim) -> None:
    """Readable errors for sizes no quantizer can have (instead of a division by zero later)."""
    for name, value, low in (("dim", dim, 1), ("num_vars (codes per group)", num_vars, 2), ("groups", groups, 1),
                             ("vq_dim", vq_dim, 1)):
        try:
            ok = not isinstance(value, bool) and operator.index(value) >= low
        except TypeError:
            ok = False
        if not ok:
            raise InputError(f"{name} must be an integer, at least {low}; got {value!r}")
    if vq_dim % groups != 0:
        raise InputError(f"vq_dim {vq_dim} must be divisible by groups {groups}")


def check_input(x: torch.Tensor, channels: int, time_first: bool) -> None:
    """A readable error for the wrong layout or dtype instead of an error deep in a matmul."""
    layout, axis = ("B×T×C", -1) if time_first else ("B×C×T", 1)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"quantizer input must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InputError(f"quantizer input must be floating point (float32, float16, bfloat16 or float64); "
                         f"got {x.dtype}: convert it, e.g. x.float()")
    if x.is_meta:
        raise InputError("quantizer input is on the meta device and holds no values")
    if x.dim() != 3 or x.shape[axis] != channels:
        raise InputError(f"quantizer input must be {layout} with C = {channels}; got shape {tuple(x.shape)}")


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


class GumbelQuantizerBase(nn.Module):
    """fairseq's quantizer contract; subclasses provide ``codebook_vectors()`` and a ``forward``
    that calls :meth:`_rows`, :meth:`_select` and :meth:`_restore` around their own logits."""

    def __init__(self, dim: int, num_vars: int, temp, groups: int, combine_groups: bool, vq_dim: int,
                 time_first: bool, hard: bool = True, *, invalid_frames: str = "raise"):
        super().__init__()
        check_sizes(dim, num_vars, groups, vq_dim)
        if invalid_frames not in INVALID_FRAMES:
            raise InputError(f"invalid_frames must be one of {', '.join(INVALID_FRAMES)}, got {invalid_frames!r}")
        self.invalid_frames = invalid_frames
        self.input_dim = dim
        self.num_vars = num_vars
        self.groups = groups
        self.combine_groups = combine_groups
        self.vq_dim = vq_dim
        self.var_dim = vq_dim // groups
        self.time_first = time_first
        self.hard = hard
        self.max_temp, self.min_temp, self.temp_decay = parse_temp(temp)
        self.curr_temp = self.max_temp

    def codebook_vectors(self) -> torch.Tensor:  # (G, V, d)
        raise NotImplementedError

    def set_num_updates(self, num_updates: int) -> None:
        self.curr_temp = max(self.max_temp * self.temp_decay**num_updates, self.min_temp)

    def forward_idx(self, x: torch.Tensor):
        res = self.forward(x, produce_targets=True)
        return res["x"], res["targets"]

    def sample_from_codebook(self, b: int, n: int) -> torch.Tensor:
        """``b × n`` code vectors drawn uniformly over the ``V^G`` combinations, ``(b, n, vq_dim)``."""
        if not n < self.num_vars**self.groups:
            raise ValueError(f"sample size {n} is not smaller than the codebook size {self.num_vars ** self.groups}")
        codes = self.codebook_vectors()
        idx = torch.randint(self.num_vars, (b * n, self.groups), device=codes.device)
        picked = codes[torch.arange(self.groups, device=codes.device), idx]  # (b·n, G, d)
        return picked.reshape(b, n, -1).to(next(self.parameters()).dtype)

    def _rows(self, x: torch.Tensor):
        """Input ``B×T×C`` (or ``B×C×T``) as rows ``(B·T, C)``, with ``(B, T)``."""
        check_input(x, self.input_dim, self.time_first)
        if any(p.is_meta for p in self.parameters()):
            raise InputError(f"{type(self).__name__} was built on the meta device and holds no weights: "
                             f"call .to_empty(device=...) and then .reset_parameters() first")
        if not self.time_first:
            x = x.transpose(1, 2)
        bsz, tsz, fsz = x.shape
        return x.reshape(-1, fsz), (bsz, tsz)

    def _project(self, rows: torch.Tensor, shape, mark: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``weight_proj(rows)`` in fp32 or wider, and the mask of valid rows (None: all are).

        Non-finite rows raise (or, with ``mark``, are zeroed before the projection, so that no NaN
        reaches any gradient, and come back masked). Finite rows whose projection overflows are
        projected again at norm ``INPUT_NORM_MAX``. ``shape``: ``(B, T)``, to say where a bad frame is.
        """
        valid = None
        if mark:
            valid = torch.isfinite(rows).all(dim=-1)
            rows = torch.where(valid.unsqueeze(-1), rows, torch.zeros((), dtype=rows.dtype, device=rows.device))
        out = project_fp32(self.weight_proj, rows)
        # The fast path: one reduction and one host decision. The sum of finite values is finite
        # unless it overflows, which only sends a batch down the (exact) slow path below.
        if bool(torch.isfinite(out.detach().sum())):
            return out, valid
        if valid is None:
            bad = ~torch.isfinite(rows).all(dim=-1)
            if bool(bad.any()):
                raise NonFiniteInputError(_where_nonfinite(bad, shape))
        overflow = (~torch.isfinite(out).all(dim=-1)).nonzero().squeeze(1)
        if overflow.numel() == 0:                        # only the sum overflowed: every row is fine
            return out, valid
        big = unit_vector(rows.index_select(0, overflow).to(out.dtype)) * INPUT_NORM_MAX[out.dtype]
        again = project_fp32(self.weight_proj, big)
        if not bool(torch.isfinite(again).all()):
            raise NonFiniteInputError(f"the projection of {overflow.numel()} finite frame(s) is NaN or Inf even at "
                                      f"norm {INPUT_NORM_MAX[out.dtype]:g}: the quantizer's weights hold NaN or Inf "
                                      f"(a diverged run?), so no code can be chosen")
        return out.index_copy(0, overflow, again), valid

    def _restore(self, z_q: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
        """Code vectors ``(N, G, d)`` back to the input's layout and dtype, groups concatenated."""
        x = z_q.reshape(*shape, self.vq_dim).to(dtype)
        return x if self.time_first else x.transpose(1, 2)

    def _select(self, logits: torch.Tensor, codes: torch.Tensor, result: dict, shape, produce_targets: bool,
                valid: Optional[torch.Tensor] = None):
        """Selection stage for ``logits (N, G, V)`` and ``codes (G, V, d)``, filling ``result``.

        ``valid (N,)``: rows that have a code (None: all). Invalid rows get the target
        :data:`INVALID_CODE`, a zero code vector and no gradient, and are left out of the statistics.
        Returns ``(z_q (N, G, d), hard_idx (N, G), code_ppl (G,), prob_ppl (G,))``; ``hard_idx`` of
        invalid rows is meaningless.
        """
        hard_idx = logits.argmax(dim=-1)
        code_ppl, prob_ppl = group_perplexities(logits, hard_idx, valid)
        result["code_perplexity"] = code_ppl.sum()
        result["prob_perplexity"] = prob_ppl.sum()
        result["temp"] = self.curr_temp
        if self.training:
            one_hot = F.gumbel_softmax(logits, tau=self.curr_temp, hard=self.hard, dim=-1)
        else:
            one_hot = F.one_hot(hard_idx, self.num_vars).to(logits.dtype)
        if valid is not None:
            one_hot = one_hot * valid.to(one_hot.dtype)[:, None, None]
        sampled = one_hot.detach().argmax(dim=-1)
        if valid is not None:
            sampled = sampled.masked_fill(~valid.unsqueeze(-1), INVALID_CODE)
        if produce_targets:
            result["targets"] = sampled.view(*shape, self.groups)
        if getattr(self, "diagnostics", False):
            kept = (logits, sampled) if valid is None else (logits[valid], sampled[valid])
            result.update(per_group(selection_stats(kept[0], kept[1] if self.training else None)))
        z_q = torch.einsum("ngv,gvd->ngd", one_hot, codes.to(logits.dtype))
        return z_q, hard_idx, code_ppl, prob_ppl


def _where_nonfinite(bad: torch.Tensor, shape, listed: int = 5) -> str:
    """The message for non-finite frames: how many, and the first few as (batch, time)."""
    tsz = shape[1]
    rows = bad.nonzero().squeeze(1)[:listed].tolist()
    where = ", ".join(f"(batch {i // tsz}, time {i % tsz})" for i in rows)
    more = ", ..." if int(bad.sum()) > listed else ""
    return (f"quantizer input holds {int(bad.sum())} frame(s) with NaN or Inf values, which have no code: "
            f"{where}{more}. Find where they come from (the audio, an overflowing layer), or build the "
            f"quantizer with invalid_frames='mark' to give them the code {INVALID_CODE} and no gradient")
