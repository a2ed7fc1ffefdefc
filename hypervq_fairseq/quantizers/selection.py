"""How much the input decides the code: selection statistics of a Gumbel-softmax quantizer.

With hard Gumbel-softmax the code used in training is ``argmax(logits + g)`` with Gumbel noise
``g`` (standard deviation π/√6 ≈ 1.28), whatever the temperature: the temperature scales the
soft sample only. When the logits of a frame differ by less than the noise, the code the rest of
the network trains on is close to a random draw, and perplexity cannot tell: random codes have
the highest perplexity of all. Three numbers per group say how close to that a quantizer runs:

- ``sample_is_argmax``: fraction of frames whose sampled code is the argmax code (1.0 in eval,
  where no noise is drawn; ``1/V`` if the logits carry no information at all);
- ``logit_gap``: mean difference between the two largest logits of a frame;
- ``logit_std``: mean, over frames, of the standard deviation of the logits across codes.

Every quantizer of the project reports them under these names (HyperVQ and the Euclidean
Gumbel quantizer when asked with ``diagnostics=True``; fairseq's stock quantizer through the
model's hooks), so curves of different quantizers are comparable.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

KEYS = ("sample_is_argmax", "logit_gap", "logit_std")


@torch.no_grad()
def selection_stats(logits: torch.Tensor, sampled: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Per-group statistics, each ``(G,)`` float32, for ``logits (N, G, V)`` and sampled codes ``(N, G)``.

    ``sampled=None`` means the argmax itself was used (eval): ``sample_is_argmax`` is 1. An empty
    batch gives NaN-free zeros for the gap and spread and 1 for the agreement.
    """
    logits = logits.detach()
    logits = logits if logits.dtype == torch.float64 else logits.float()  # float64 logits of huge inputs stay finite
    n, groups, _ = logits.shape
    if n == 0:
        zeros = logits.new_zeros(groups)
        return {"sample_is_argmax": zeros + 1, "logit_gap": zeros, "logit_std": zeros}
    top2 = logits.topk(2, dim=-1).values
    argmax = logits.argmax(dim=-1)
    agree = logits.new_ones(groups) if sampled is None else (sampled.reshape(n, groups) == argmax).float().mean(0)
    return {
        "sample_is_argmax": agree,
        "logit_gap": (top2[..., 0] - top2[..., 1]).mean(0),
        "logit_std": logits.std(dim=-1, unbiased=False).mean(0),
    }


def per_group(stats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``{key_g{i}: value}`` for each group and ``{key: mean over groups}`` (0-dim tensors)."""
    out = {}
    for key, values in stats.items():
        out[key] = values.mean()
        out.update({f"{key}_g{g}": values[g] for g in range(values.numel())})
    return out
