"""fairseq tasks of the plugin (registered by name when imported)."""
from .hypervq_audio_pretraining import (
    CheckedFileAudioDataset,
    HyperVQAudioPretrainingConfig,
    HyperVQAudioPretrainingTask,
)

__all__ = ["CheckedFileAudioDataset", "HyperVQAudioPretrainingConfig", "HyperVQAudioPretrainingTask"]
