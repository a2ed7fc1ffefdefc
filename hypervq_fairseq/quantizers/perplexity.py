"""Codebook-usage statistics shared by every quantizer in the project.

The definitions are wav2vec 2.0's, so that curves from HyperVQ and the stock
``GumbelVectorQuantizer`` are directly comparable:

- code perplexity: ``exp(entropy)`` of the batch-averaged *hard* one-hot assignment,
  one value per group, summed over groups in the fairseq output;
- prob perplexity: the same on the batch-averaged softmax of the logits (differentiable;
  wav2vec 2.0's diversity loss is ``(num_vars·G − prob_perplexity)/(num_vars·G)``).

The ``1e-7`` inside the logarithm is fairseq's own constant, kept for identical numbers.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..core.guards import compute_dtype

_LOG_EPS = 1e-7  # fairseq's constant; see module docstring


def perplexity_of(probs: torch.Tensor) -> torch.Tensor:
    """``exp(-Σ p log p)`` over the last dimension of an averaged distribution ``(..., V)``."""
    return torch.exp(-torch.sum(probs * torch.log(probs + _LOG_EPS), dim=-1))


def code_usage(indices: torch.Tensor, num_vars: int, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fraction of rows that picked each code: ``indices (N, G)`` → ``(G, V)`` float32.

    ``valid (N,)``: count only these rows (None: all). No row at all gives zeros, not ``0/0``.
    """
    groups = indices.shape[-1]
    flat = indices.reshape(-1, groups)
    weights = torch.ones_like(flat, dtype=torch.float32)
    if valid is not None:
        weights = weights * valid.reshape(-1, 1).to(torch.float32)
        flat = flat.masked_fill(~valid.reshape(-1, 1), 0)          # any index in range; its weight is 0
    counts = torch.zeros(groups, num_vars, dtype=torch.float32, device=indices.device)
    counts.scatter_add_(1, flat.t().long(), weights.t())
    return counts / weights[:, 0].sum().clamp_min(1)


def group_perplexities(logits: torch.Tensor, indices: torch.Tensor, valid: Optional[torch.Tensor] = None):
    """Per-group code and prob perplexities from ``logits (N, G, V)`` and hard ``indices (N, G)``.

    Returns ``(code_perplexity (G,), prob_perplexity (G,))``; the first carries no gradient and is
    float32, the second is float32 (float64 for float64 logits). ``valid (N,)``: rows to count
    (None: all). With no row to count both are 1 per group (the perplexity of an all-zero
    average), finite, and the second still carries a (zero) gradient.
    """
    with torch.no_grad():
        code_ppl = perplexity_of(code_usage(indices, logits.shape[-1], valid))
    probs = torch.softmax(logits.to(compute_dtype(logits.dtype)), dim=-1)
    if valid is None:
        avg_probs = probs.mean(dim=0) if probs.shape[0] else probs.sum(dim=0)   # empty batch: zeros, not 0/0
    else:
        weights = valid.to(probs.dtype)
        avg_probs = (probs * weights[:, None, None]).sum(dim=0) / weights.sum().clamp_min(1)
    return code_ppl, perplexity_of(avg_probs)
