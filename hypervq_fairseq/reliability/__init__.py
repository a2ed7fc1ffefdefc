"""Reliability helpers for the fairseq glue: audio and manifest checks, config checks,
atomic checkpoint copies, and precision guards.

Why: a LibriSpeech-scale run always meets a bad file, gets killed and resumed, and is tried in
16-bit precision; stock fairseq reports most of these with an assertion or a CUDA error deep in
its own code (or, for stereo and NaN audio, says nothing at all). The task
``hypervq_audio_pretraining`` (``hypervq_fairseq/tasks``) wires these helpers in; each is a
plain function so that it can be tested and reused on its own. See RELIABILITY.md.
"""
from .audio_checks import AudioInputError, check_manifest, check_waveform
from .config_checks import ConfigError, check_model_config, check_precision
from .atomic_checkpoint import atomic_copy, install_atomic_checkpoint_copy

__all__ = [
    "AudioInputError",
    "ConfigError",
    "atomic_copy",
    "check_manifest",
    "check_model_config",
    "check_precision",
    "check_waveform",
    "install_atomic_checkpoint_copy",
]
