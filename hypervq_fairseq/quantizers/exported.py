"""The quantizer of a checkpoint exported to transformers (``hypervq-export-hf``), without fairseq.

transformers' ``Wav2Vec2Model`` has no HyperVQ, so the export writes the pretraining quantizer
beside the model: ``quantizer.safetensors`` (its tensors, named as in this package's modules) and
``quantizer.json`` (what its forward needs: groups, codes, curvature, clipping, logit scale,
projection depth; and the frame stride, sample rate and the fingerprint token files record).

The quantizer reads ``extract_features`` of the exported model: the layer-normed CNN features,
``B × T × C``, exactly what fairseq's wav2vec 2.0 hands its quantizer (``layer_norm`` of the
feature extractor's output, before ``post_extract_proj``). In eval mode it picks codes by argmax,
so the ids equal ``hypervq-tokenize``'s::

    from transformers import Wav2Vec2Model
    from hypervq_fairseq.quantizers.exported import load_exported_quantizer

    model = Wav2Vec2Model.from_pretrained("export/hypervq").eval()
    quantizer = load_exported_quantizer("export/hypervq")
    ids = quantizer.tokens(model(wave[None]).extract_features)[0]     # (T, G), as hypervq-tokenize writes them

One utterance at a time (or unpadded batches of equal length): the group-norm CNN of
``extractor_mode: default`` normalises over the whole padded input in transformers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

from ..errors import HyperVQError, InputError
from .euclidean_gumbel_vq import EuclideanGumbelQuantizer
from .hyperbolic_vq import HyperbolicVectorQuantizer

WEIGHTS = "quantizer.safetensors"
CONFIG = "quantizer.json"
FORMAT = "hypervq-quantizer"


class ExportedQuantizerError(HyperVQError, RuntimeError):
    """A folder without a usable quantizer export; the message names the file."""


@dataclass
class ExportedQuantizer:
    """An exported quantizer in eval mode, and what its ``quantizer.json`` says."""

    module: nn.Module
    config: dict

    @property
    def groups(self) -> int:
        return int(self.config["groups"])

    @property
    def num_vars(self) -> int:
        return int(self.config["num_vars"])

    @property
    def fingerprint(self) -> str:
        """``quantizer_fingerprint`` of the sidecar ``hypervq-tokenize`` writes for the same checkpoint."""
        return str(self.config.get("fingerprint", ""))

    @torch.no_grad()
    def tokens(self, extract_features: torch.Tensor) -> torch.Tensor:
        """Code ids ``(B, T, G)`` (int64) for features ``(B, T, C)``; ``(T, C)`` gives ``(T, G)``."""
        if not isinstance(extract_features, torch.Tensor):
            raise InputError(f"extract_features must be a tensor, got {type(extract_features).__name__}")
        squeeze = extract_features.dim() == 2
        x = extract_features[None] if squeeze else extract_features
        device = next(self.module.parameters()).device
        _, idx = self.module.forward_idx(x.to(device))
        idx = idx.long()
        return idx[0] if squeeze else idx


def _build(config: dict) -> nn.Module:
    common = dict(dim=int(config["dim"]), num_vars=int(config["num_vars"]), temp=tuple(config["temp"]),
                  groups=int(config["groups"]), combine_groups=bool(config.get("combine_groups", False)),
                  vq_dim=int(config["vq_dim"]), time_first=True,
                  weight_proj_depth=int(config.get("weight_proj_depth", 1)),
                  weight_proj_factor=int(config.get("weight_proj_factor", 1)))
    if config.get("activation", "gelu") != "gelu":
        raise ExportedQuantizerError(f"quantizer activation {config['activation']!r}: only gelu is known")
    if config["type"] == "hyperbolic":
        return HyperbolicVectorQuantizer(
            **common, curvature=float(config["curvature"]), learn_curvature=bool(config["learn_curvature"]),
            clip_radius=config["clip_radius"], clip_mode=str(config["clip_mode"]),
            logit_scale=float(config["logit_scale"]), learn_logit_scale=bool(config["learn_logit_scale"]),
            r_init=tuple(config.get("r_init", (0.1, 0.5))))
    if config["type"] == "gumbel":
        return EuclideanGumbelQuantizer(**common)
    raise ExportedQuantizerError(f"quantizer type {config['type']!r}: expected hyperbolic or gumbel")


def load_exported_quantizer(folder: Union[str, Path], device: str = "cpu") -> ExportedQuantizer:
    """The quantizer ``hypervq-export-hf`` wrote into ``folder``, in eval mode on ``device``."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ExportedQuantizerError(f"{path} not found: only exports of pretraining checkpoints hold the "
                                         f"quantizer (hypervq-export-hf CHECKPOINT OUT)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportedQuantizerError(f"{config_path} is not JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ExportedQuantizerError(f"{config_path} is not a quantizer config of hypervq-export-hf")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ExportedQuantizerError("reading quantizer.safetensors needs safetensors: pip install "
                                     "'hypervq-fairseq[hf]'") from None
    module = _build(config)
    tensors = load_file(str(weights_path))
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ExportedQuantizerError(f"{weights_path} does not fit {config_path}: {e}") from None
    return ExportedQuantizer(module.eval().to(device), config)
