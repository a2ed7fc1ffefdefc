"""Loading a pretraining checkpoint outside fairseq's trainer, with errors a user can act on.

``hypervq-tokenize``, ``hypervq-codebook-report`` and ``hypervq-unit-eval`` need the pretrained
model with its quantizer. fairseq's loader reports a truncated file as torch's zip error
("failed finding central directory"), and a fine-tuned checkpoint simply has no quantizer; here
each case is a :class:`~hypervq_fairseq.errors.CheckpointError` that names the file and says what
to use instead.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import CheckpointError, HyperVQError
from ..safe_load import parse_layer_spec
from .patches import loadable, safe_load_checkpoint_to_cpu

FINETUNED_MODELS = ("wav2vec_ctc", "wav2vec_seq2seq", "wav2vec2_ctc")


class NoQuantizerError(CheckpointError):
    """The checkpoint holds a model without a (target) quantizer."""


@dataclass
class PretrainedModel:
    """A pretrained wav2vec 2.0 model in eval mode, and what token files record about it."""

    model: nn.Module
    groups: int
    num_vars: int
    frame_stride: int  # input samples per output frame
    normalize: bool  # the task normalised each waveform (zero mean, unit variance)
    fingerprint: str  # sha256 of the quantizer's weights, to refuse mixing ids of two models
    model_name: str
    path: str
    sample_rate: int = 16000  # the pretraining task's
    updates: int = 0  # training updates the checkpoint had seen

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.frame_stride

    @property
    def num_layers(self) -> int:
        return len(self.model.encoder.layers)


def quantizer_fingerprint(quantizer: nn.Module) -> str:
    return tensors_fingerprint(quantizer.state_dict())


def tensors_fingerprint(tensors) -> str:
    """sha256 (16 hex digits) of named tensors, in name order: the quantizer's fingerprint from its state dict."""
    h = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def read_checkpoint(path) -> dict:
    """The state dict of a fairseq checkpoint file; a named error for a missing or damaged one."""
    path = str(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} not found")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder; give the .pt file inside it (checkpoint_best.pt, ...)")
    if not loadable(path):
        raise CheckpointError(f"checkpoint {path} is incomplete or damaged (cut short during a save, or a partial "
                              f"copy): use another checkpoint of the run, e.g. checkpoint_best.pt or checkpoint_N_U.pt")
    try:
        state = safe_load_checkpoint_to_cpu(path)
    except HyperVQError:  # already names the file (not plain data, an interpolation, a code string)
        raise
    except Exception as e:  # torch's unpickling errors have many types
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("cfg") is None or state["cfg"].get("model") is None:
        raise CheckpointError(f"{path} is not a fairseq checkpoint (no 'cfg' with a 'model' section)")
    return state


def load_pretrained(path, device: str = "cpu") -> PretrainedModel:
    """Build the pretrained model stored in ``path`` and load its weights, quantizer included.

    Raises :class:`NoQuantizerError` for fine-tuned checkpoints, models built without quantized
    targets, and checkpoints whose quantizer weights were removed.
    """
    import fairseq.models

    path = str(path)
    state = read_checkpoint(path)
    cfg = state["cfg"]
    name = cfg.model.get("_name")
    if name in FINETUNED_MODELS:
        hint = ""
        w2v_path = cfg.model.get("w2v_path")
        if w2v_path:
            hint = f" It was fine-tuned from {w2v_path}: use that pretraining checkpoint."
        raise NoQuantizerError(
            f"{path} holds a fine-tuned '{name}' model: fine-tuning removes the quantizer "
            f"(remove_pretraining_modules), so it has no code ids to give.{hint}")
    weights = state["model"]
    if not any(k.startswith("quantizer.") for k in weights):
        raise NoQuantizerError(
            f"{path} has no quantizer weights (model '{name}'): it was saved without pretraining modules "
            f"or trained with quantize_targets=false. Use a pretraining checkpoint with a quantizer.")
    try:
        model = fairseq.models.build_model(cfg.model, task=None, from_checkpoint=True)
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"cannot build model '{name}' of {path}: {e!r}") from e
    if getattr(model, "quantizer", None) is None or not hasattr(model, "feature_extractor"):
        raise NoQuantizerError(f"{path}: model '{name}' has no target quantizer (quantize_targets=false?)")
    model.load_state_dict(weights, strict=True)
    history = state.get("optimizer_history") or [{}]
    model.set_num_updates(int(history[-1].get("num_updates", 0)))  # the Gumbel temperature it ended with
    model.eval().to(device)

    stride = 1
    for layer in parse_layer_spec(cfg.model.conv_feature_layers):  # (dim, kernel, stride), read, never run
        stride *= layer[-1]
    task = cfg.get("task") or {}
    return PretrainedModel(
        model=model,
        groups=int(model.quantizer.groups),
        num_vars=int(model.quantizer.num_vars),
        frame_stride=stride,
        normalize=bool(task.get("normalize", False)),
        fingerprint=quantizer_fingerprint(model.quantizer),
        model_name=name,
        path=path,
        sample_rate=int(task.get("sample_rate", 16000)),
        updates=int(history[-1].get("num_updates", 0)),
    )


def device_of(pm: PretrainedModel) -> torch.device:
    return next(pm.model.parameters()).device
