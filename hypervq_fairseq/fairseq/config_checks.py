"""Config checks that fail before fairseq builds anything, naming the config key.

Why: ``HyperVQWav2Vec2Model`` first builds fairseq's stock wav2vec 2.0 and then swaps the
quantizer, so some bad values never reach HyperVQ's own checks: groups that do not divide
``vq_dim`` stop at an ``assert`` inside fairseq's ``GumbelVectorQuantizer``, the stock quantizer
accepts a negative temperature and trains, and the values that do reach HyperVQ are reported by
argument name (``curvature``), not by the config key the user typed (``model.hyperbolic_curvature``).
The model calls :func:`check_model_config` first, whatever the task, so the message is in the
user's terms and comes before any tensor is allocated.

Precision: on a machine without CUDA, ``common.fp16=true`` makes fairseq's ``FP16Optimizer``
put a flat fp32 copy of the parameters on ``torch.cuda.current_device()`` and die with "Found
no NVIDIA driver"; its unflattened path (``common.fp16_no_flatten_grads=true``) and
``common.memory_efficient_fp16=true`` run on CPU, so :func:`check_precision` says so.
"""
from __future__ import annotations

import ast
import math
from typing import Any

import torch

from ..errors import ConfigError, InputError
from ..quantizers.hyperbolic_vq import DEFAULT_CLIP_RADIUS, DEFAULT_CURVATURE, DEFAULT_LOGIT_SCALE


def _get(cfg: Any, key: str, default=None):
    try:
        value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    except Exception:  # an unresolvable interpolation outside a full fairseq config
        return default
    return default if value is None else value


def _flag(cfg: Any, key: str) -> bool:
    value = _get(cfg, key, False)
    return value if isinstance(value, bool) else False


def vq_dim_of(cfg: Any) -> int:
    """The quantizer width wav2vec 2.0 uses: latent_dim, else final_dim, else encoder_embed_dim."""
    for key in ("latent_dim", "final_dim", "encoder_embed_dim"):
        value = int(_get(cfg, key, 0) or 0)
        if value > 0:
            return value
    return 0


def check_model_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` for quantizer settings no model can train with.

    Checked for every wav2vec 2.0 config that quantizes (``quantize_targets`` or
    ``quantize_input``); the hyperbolic options only when ``quantizer_type`` is hyperbolic.
    """
    if not (_flag(cfg, "quantize_targets") or _flag(cfg, "quantize_input")):
        return
    groups = int(_get(cfg, "latent_groups", 1))
    codes = int(_get(cfg, "latent_vars", 2))
    vq_dim = vq_dim_of(cfg)
    if vq_dim < 1:
        raise ConfigError("model.final_dim, model.latent_dim and model.encoder_embed_dim are all <= 0: "
                          "the quantizer needs a width >= 1")
    if codes < 2:
        raise ConfigError(f"model.latent_vars={codes}: a quantizer needs at least 2 codes per group")
    if groups < 1:
        raise ConfigError(f"model.latent_groups={groups}: needs at least 1 group")
    if vq_dim % groups != 0:
        source = next(k for k in ("latent_dim", "final_dim", "encoder_embed_dim") if int(_get(cfg, k, 0) or 0) > 0)
        raise ConfigError(f"model.latent_groups={groups} does not divide the quantizer width "
                          f"model.{source}={vq_dim}: each group gets vq_dim/groups dimensions")
    _check_temp(_get(cfg, "latent_temp", (2.0, 0.5, 0.999995)))
    if str(_get(cfg, "quantizer_type", "gumbel")) != "hyperbolic":
        return
    c = _get(cfg, "hyperbolic_curvature", DEFAULT_CURVATURE)
    c = _as_float(c, f"model.hyperbolic_curvature={c!r}: must be a number > 0")
    if not (math.isfinite(c) and c > 0):
        raise ConfigError(f"model.hyperbolic_curvature={c}: the Poincaré ball needs a finite curvature c > 0 "
                          f"(the ball is {{x : c|x|^2 < 1}})")
    clip = _get(cfg, "hyperbolic_clip_radius", DEFAULT_CLIP_RADIUS)
    if clip is not None and not (_finite(clip) and float(clip) > 0):
        raise ConfigError(f"model.hyperbolic_clip_radius={clip}: must be a number > 0, or null for no clipping")
    _check_r_init(_get(cfg, "hyperbolic_r_init", (0.1, 0.5)))
    scale = _get(cfg, "hyperbolic_logit_scale", DEFAULT_LOGIT_SCALE)
    if not (_finite(scale) and float(scale) > 0):
        raise ConfigError(f"model.hyperbolic_logit_scale={scale}: must be a finite number > 0 (1: the paper's logits)")
    every = _get(cfg, "hyperbolic_reseed_every", 0)
    if isinstance(every, bool) or not (_finite(every) and float(every) >= 0 and float(every) == int(float(every))):
        raise ConfigError(f"model.hyperbolic_reseed_every={every}: must be a whole number of updates >= 0 (0: off)")


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _numbers(value, key: str, count: int) -> tuple:
    text = value
    try:
        if isinstance(value, str):
            value = ast.literal_eval(value)
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError, SyntaxError):
        numbers = ()
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise ConfigError(f"model.{key}={text!r}: expected {count} finite numbers")
    return numbers


def _check_temp(value) -> None:
    """The quantizers' own rule (``parse_temp``), reported under the config key."""
    from ..quantizers.gumbel_base import parse_temp

    try:
        parse_temp(value)
    except InputError as e:
        shown = list(value) if not isinstance(value, str) else value
        raise ConfigError(f"model.latent_temp={shown}: the Gumbel temperature schedule: {e}") from None


def _check_r_init(value) -> None:
    low, high = _numbers(value, "hyperbolic_r_init", 2)
    if low > high or (low, high) == (0.0, 0.0):
        raise ConfigError(f"model.hyperbolic_r_init=({low}, {high}): a range (low, high) with low <= high, "
                          f"other than (0, 0) (every code vector r_k·z_k would start at 0)")


def check_precision(*, fp16: bool, fp16_no_flatten_grads: bool, memory_efficient_fp16: bool,
                    cuda_available: bool = None) -> None:
    """Raise :class:`ConfigError` for ``common.fp16=true`` where fairseq would crash without CUDA."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if fp16 and not cuda_available and not (fp16_no_flatten_grads or memory_efficient_fp16):
        raise ConfigError(
            "common.fp16=true on a machine without CUDA: fairseq's FP16Optimizer keeps a flat fp32 copy of "
            "the parameters on a CUDA device and would fail with 'Found no NVIDIA driver'. To train in fp16 "
            "on CPU add common.fp16_no_flatten_grads=true (or common.memory_efficient_fp16=true); "
            "common.bf16=true also runs on CPU.")


def _as_float(value, message: str) -> float:
    """``float(value)``, or a :class:`ConfigError` with ``message`` for a value that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(message) from None


def check_training_numbers(lr, max_tokens) -> None:
    """Refuse, by key, a learning rate that is not a finite number > 0 and ``dataset.max_tokens`` <= 0."""
    rates = list(lr) if isinstance(lr, (list, tuple)) or (lr is not None and hasattr(lr, "__iter__")
                                                          and not isinstance(lr, str)) else [lr]
    for value in rates:
        if value is None:
            continue
        number = _as_float(value, f"optimization.lr={value!r}: a learning rate must be a number > 0")
        if not (math.isfinite(number) and number > 0):
            raise ConfigError(f"optimization.lr={value!r}: a learning rate must be a finite number > 0 "
                              f"(a negative one trains by gradient ascent)")
    if max_tokens is not None and not isinstance(max_tokens, bool):
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            raise ConfigError(f"dataset.max_tokens={max_tokens!r}: give a number of samples > 0 per batch, or null "
                              f"with dataset.batch_size (fairseq reads 0 as 'no limit' and batches everything at once)")
