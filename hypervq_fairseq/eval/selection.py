"""Does the input or the noise pick the code? Selection statistics of a checkpoint on held-out speech.

Training logs show ``sample_is_argmax`` on the training batches. This measures it on any
manifest, with the quantizer as training uses it: the model's conv features, the quantizer's
logits, and one hard Gumbel-softmax draw per frame (a fixed seed makes it repeatable; the code a
hard draw picks, ``argmax(logits + noise)``, does not depend on the temperature). Works for
HyperVQ and for fairseq's stock Gumbel quantizer.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..quantizers.gumbel_base import project_fp32
from ..quantizers.selection import per_group, selection_stats


def quantizer_logits(quantizer, rows: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, G, V)`` of a quantizer for feature rows ``(N, C)``: HyperVQ's MLR or a Gumbel quantizer's linear layer."""
    with torch.no_grad():
        if hasattr(quantizer, "tangent") and hasattr(quantizer, "logits"):
            return quantizer.logits(quantizer.tangent(rows))
        return project_fp32(quantizer.weight_proj, rows).view(rows.shape[0], quantizer.groups, quantizer.num_vars)


def heldout_selection(pm, manifest, *, seed: int = 0, max_utterances: Optional[int] = None) -> Dict[str, float]:
    """Mean selection statistics (and their ``_g{i}`` per group) over the frames of ``manifest``."""
    from ..data.audio import read_audio
    from ..data.manifest import read_manifest

    model = pm.model
    root, rows = read_manifest(manifest)
    rows = rows[:max_utterances] if max_utterances else rows
    generator = torch.Generator().manual_seed(seed)
    logits_all, sampled_all = [], []
    with torch.no_grad():
        for rel, _ in rows:
            wav = torch.from_numpy(read_audio(os.path.join(root, rel), expected_rate=pm.sample_rate))
            if pm.normalize:
                wav = F.layer_norm(wav, wav.shape)
            features = model.layer_norm(model.feature_extractor(wav[None]).transpose(1, 2))[0]
            logits = quantizer_logits(model.quantizer, features).float()
            gumbels = -torch.empty_like(logits).exponential_(generator=generator).log()
            sampled = (logits + gumbels).argmax(-1)  # the code a hard Gumbel-softmax sample uses
            logits_all.append(logits)
            sampled_all.append(sampled)
    stats = per_group(selection_stats(torch.cat(logits_all), torch.cat(sampled_all)))
    return {k: float(v) for k, v in stats.items()}
