"""Code ids and hidden states of a pretrained wav2vec 2.0 model, batched without changing a value.

Code ids follow the model's own ``quantize()`` path (feature extractor -> layer norm ->
``quantizer.forward_idx``) in eval mode, where HyperVQ and the Gumbel quantizer pick codes by
argmax, without noise: the same audio always gives the same ids.

Batching: utterances are padded. The conv feature extractor has no padding, so every frame inside
an utterance's own output length sees only its own samples; the one non-local layer, the
GroupNorm over time of the first conv in ``extractor_mode: default``, is evaluated with
statistics over each utterance's valid frames. Batched ids therefore equal one-at-a-time ids
(tested). Hidden states of a transformer layer are computed one utterance at a time (attention
and the positional convolution see the whole sequence, so padding would change them).
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoints import PretrainedModel, device_of


def masked_group_norm(norm: nn.GroupNorm, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """GroupNorm over (channels of a group, time) using only each item's first ``lengths`` frames."""
    bsz, channels, tsz = x.shape
    g = norm.num_groups
    xf = x.float().view(bsz, g, channels // g, tsz)
    mask = (torch.arange(tsz, device=x.device)[None, :] < lengths[:, None]).to(xf.dtype)  # (B, T)
    mask = mask[:, None, None, :]
    count = mask.sum(dim=(2, 3), keepdim=True) * (channels // g)
    mean = (xf * mask).sum(dim=(2, 3), keepdim=True) / count
    var = (((xf - mean) * mask) ** 2).sum(dim=(2, 3), keepdim=True) / count
    y = ((xf - mean) / torch.sqrt(var + norm.eps)).view(bsz, channels, tsz)
    if norm.affine:
        y = y * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return y.to(x.dtype)


def conv_features(model: nn.Module, wav: torch.Tensor, lengths: torch.Tensor):
    """fairseq's conv feature extractor on a padded batch; returns (B, C, T) and valid frame counts."""
    x = wav.unsqueeze(1)
    for block in model.feature_extractor.conv_layers:
        conv = block[0]
        x = conv(x)
        lengths = torch.div(lengths - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1
        for layer in list(block)[1:]:
            x = masked_group_norm(layer, x, lengths) if isinstance(layer, nn.GroupNorm) else layer(x)
    return x, lengths


def _prepared(pm: PretrainedModel, wave) -> torch.Tensor:
    w = torch.as_tensor(wave, dtype=torch.float32)
    return F.layer_norm(w, w.shape) if pm.normalize else w


@torch.no_grad()
def encode(pm: PretrainedModel, waves: list) -> List[torch.Tensor]:
    """Code ids ``(T_i, G)`` (int64, CPU) for each 1-D float waveform in ``waves``."""
    model = pm.model
    device = device_of(pm)
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = _prepared(pm, w)
    features, frames = conv_features(model, batch.to(device), lengths.to(device))
    features = model.layer_norm(features.transpose(1, 2))
    _, idx = model.quantizer.forward_idx(features)  # (B, T, G), argmax in eval mode
    idx = idx.cpu()
    return [idx[i, : int(n)].long() for i, n in enumerate(frames.cpu())]


@torch.no_grad()
def layer_states(pm: PretrainedModel, wave, layer: int) -> torch.Tensor:
    """Output of transformer layer ``layer`` (1 = first) for one waveform, ``(T, C)`` float32 on CPU."""
    if not 1 <= layer <= pm.num_layers:
        from ..errors import InputError

        raise InputError(f"layer {layer}: {pm.path} has transformer layers 1..{pm.num_layers}")
    source = _prepared(pm, wave)[None].to(device_of(pm))
    out = pm.model.extract_features(source, padding_mask=None, mask=False, layer=layer - 1)
    return out["x"][0].float().cpu()


def frame_geometry(pm: PretrainedModel) -> tuple:
    """``(stride, receptive_field)`` in input samples: output frame ``t`` sees samples ``[t·stride, t·stride + receptive_field)``.

    Read from the conv feature extractor itself (the stock stack: stride 320, receptive field
    400, i.e. 20 ms frames of 25 ms windows at 16 kHz), so phone labels and MFCC baselines can
    be placed on exactly the samples each code was computed from.
    """
    stride, field = 1, 1
    for block in pm.model.feature_extractor.conv_layers:
        conv = block[0]
        field += (conv.kernel_size[0] - 1) * stride
        stride *= conv.stride[0]
    return stride, field
