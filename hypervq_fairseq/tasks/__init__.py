"""fairseq tasks of the plugin: importing this package registers ``hypervq_audio_pretraining``.

fairseq imports it through ``common.user_dir`` (every module in ``tasks/``); the installed Hydra
plugin imports it inside ``fairseq-hydra-train``; from Python, ``import hypervq_fairseq.tasks``.
"""
from .hypervq_audio_pretraining import (
    CheckedFileAudioDataset,
    HyperVQAudioPretrainingConfig,
    HyperVQAudioPretrainingTask,
)

__all__ = ["CheckedFileAudioDataset", "HyperVQAudioPretrainingConfig", "HyperVQAudioPretrainingTask"]
