"""fairseq tasks of the plugin: importing this package registers ``hypervq_audio_pretraining``.

fairseq imports it through ``common.user_dir`` (every module in ``tasks/``); the installed Hydra
plugin imports it inside ``fairseq-hydra-train``; from Python, ``import hypervq_fairseq.tasks``.
On machines without CUDA, importing it also lets fairseq train with several processes on CPU
(``reliability/cpu_distributed.py``).
"""
from ..reliability import cpu_distributed
from .hypervq_audio_pretraining import (
    CheckedFileAudioDataset,
    HyperVQAudioPretrainingConfig,
    HyperVQAudioPretrainingTask,
)

cpu_distributed.install()  # torchrun on CPU-only machines (no-op where CUDA is visible)

__all__ = ["CheckedFileAudioDataset", "HyperVQAudioPretrainingConfig", "HyperVQAudioPretrainingTask"]
