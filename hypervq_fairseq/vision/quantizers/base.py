"""The interface every vision quantizer shares, so trainers can swap them by name.

A vision quantizer takes the encoder output ``z_e`` laid out as images, ``(B, C, H, W)``,
and returns a :class:`VQOutput`: the straight-through code vectors ``z_q`` (same shape),
an auxiliary loss to add to the reconstruction loss (commitment / codebook terms; zero
for the Gumbel-type quantizers, whose codes learn through the straight-through one-hot),
the hard code indices ``(B, H, W)``, the batch's code perplexity, and, for the quantizers that
sample codes with Gumbel-softmax, the selection statistics of :mod:`hypervq_fairseq.quantizers.selection`
(how often the sampled code is the argmax, the gap between the two largest logits, their
spread): with hard Gumbel sampling the code the decoder trains on is close to a random draw
when the logits differ by less than the noise, and perplexity alone cannot show it.

``features(z_e)`` gives the per-position vectors ``(N, D)`` on which each quantizer makes its
decision, and ``embed(indices)`` turns a map of code indices back into decoder input: the
codebook visualisation (each code as a 1×1 latent) and the PixelCNN prior's samples use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch
import torch.nn as nn

from ...errors import InputError
from ...quantizers.selection import KEYS as SELECTION_KEYS


@dataclass
class VQOutput:
    z_q: torch.Tensor          # (B, C, H, W), straight-through code vectors
    loss: torch.Tensor         # scalar auxiliary loss (0 where the method has none)
    indices: torch.Tensor      # (B, H, W) long
    perplexity: torch.Tensor   # scalar code perplexity of this batch (no grad)
    selection: Dict[str, torch.Tensor] = field(default_factory=dict)  # sample_is_argmax, logit_gap, logit_std


def to_rows(z: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B·H·W, C)``."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def from_rows(rows: torch.Tensor, like_shape) -> torch.Tensor:
    """``(B·H·W, C)`` → ``(B, C, H, W)`` for a tensor shaped like ``like_shape``."""
    b, c, h, w = like_shape
    return rows.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def to_sequence(z: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, H·W, C)``, the ``time_first`` layout of the shared quantizers."""
    return z.flatten(2).transpose(1, 2)


def from_sequence(x: torch.Tensor, like_shape) -> torch.Tensor:
    b, c, h, w = like_shape
    return x.transpose(1, 2).reshape(b, c, h, w)


class VisionQuantizer(nn.Module):
    """Base class: holds ``dim`` and ``num_codes``; subclasses implement the method."""

    def __init__(self, dim: int, num_codes: int):
        super().__init__()
        if dim < 1:
            raise InputError(f"embedding dim must be >= 1, got {dim}")
        if num_codes < 2:
            raise InputError(f"num_codes must be >= 2, got {num_codes}")
        self.dim, self.num_codes = dim, num_codes

    def set_num_updates(self, num_updates: int) -> None:
        """Temperature schedules (Gumbel-type quantizers) follow the update count."""

    def codebook(self) -> torch.Tensor:
        """Code vectors as the decoder sees them, ``(K, C)``."""
        raise NotImplementedError

    def features(self, z_e: torch.Tensor) -> torch.Tensor:
        """Per-position vectors the code decision is made on, ``(N, D)``."""
        return to_rows(z_e)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, H, W)`` → decoder input ``(B, C, H, W)``."""
        return self.codebook()[indices].permute(0, 3, 1, 2).contiguous()


class SharedGumbelAdapter(VisionQuantizer):
    """Image latents through one of the speech path's quantizers (``self.inner``, one group).

    GumbelVQ and HyperVQ differ only in the module they wrap: both quantize the ``time_first``
    sequence ``(B, H·W, C)``, add wav2vec 2.0's optional diversity term, and read the indices
    and code perplexity from the fairseq-style output dict.
    """

    inner: nn.Module
    diversity_weight: float

    def set_num_updates(self, num_updates: int) -> None:
        self.inner.set_num_updates(num_updates)

    def codebook(self) -> torch.Tensor:
        return self.inner.codebook_vectors()[0].to(next(self.inner.parameters()).dtype)

    def features(self, z_e: torch.Tensor) -> torch.Tensor:
        return to_sequence(z_e).reshape(-1, self.dim)

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        # selection statistics always on here (one top-2 and one std over the logits per position);
        # the speech path keeps them opt-in so that fairseq sees the stock output keys
        self.inner.diagnostics = True
        res = self.inner(to_sequence(z_e), produce_targets=True)
        loss = self.diversity_weight * (self.num_codes - res["prob_perplexity"]) / self.num_codes
        b, _, h, w = z_e.shape
        idx = res["targets"].view(b, h, w)
        selection = {k: res[k].detach() for k in SELECTION_KEYS}
        return VQOutput(from_sequence(res["x"], z_e.shape), loss, idx, res["code_perplexity"].detach(), selection)
