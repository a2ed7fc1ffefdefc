"""fairseq models of the plugin (registered by name when imported)."""
from .hypervq_wav2vec2 import HyperVQWav2Vec2Config, HyperVQWav2Vec2Model

__all__ = ["HyperVQWav2Vec2Config", "HyperVQWav2Vec2Model"]
