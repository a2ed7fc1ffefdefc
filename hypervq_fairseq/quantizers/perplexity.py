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

import torch

from ..core.guards import compute_dtype

_LOG_EPS = 1e-7  # fairseq's constant; see module docstring


def perplexity_of(probs: torch.Tensor) -> torch.Tensor:
    """``exp(-Σ p log p)`` over the last dimension of an averaged distribution ``(..., V)``."""
    return torch.exp(-torch.sum(probs * torch.log(probs + _LOG_EPS), dim=-1))


def code_usage(indices: torch.Tensor, num_vars: int) -> torch.Tensor:
    """Fraction of rows that picked each code: ``indices (N, G)`` → ``(G, V)`` float32."""
    groups = indices.shape[-1]
    counts = torch.zeros(groups, num_vars, dtype=torch.float32, device=indices.device)
    counts.scatter_add_(1, indices.reshape(-1, groups).t().long(), torch.ones_like(indices.reshape(-1, groups).t(), dtype=torch.float32))
    return counts / max(indices.reshape(-1, groups).shape[0], 1)


def group_perplexities(logits: torch.Tensor, indices: torch.Tensor):
    """Per-group code and prob perplexities from ``logits (N, G, V)`` and hard ``indices (N, G)``.

    Returns ``(code_perplexity (G,), prob_perplexity (G,))``; the first carries no gradient and is
    float32, the second is float32 (float64 for float64 logits).
    """
    with torch.no_grad():
        code_ppl = perplexity_of(code_usage(indices, logits.shape[-1]))
    avg_probs = torch.softmax(logits.to(compute_dtype(logits.dtype)), dim=-1).mean(dim=0)
    return code_ppl, perplexity_of(avg_probs)
