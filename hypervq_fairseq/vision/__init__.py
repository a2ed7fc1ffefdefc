"""Vision trainers reproducing the paper's image experiments on the shared quantizer core.

Imports ``hypervq_fairseq.quantizers`` and ``hypervq_fairseq.core`` only, never fairseq or
``hypervq_fairseq.models``. Entry point: ``hypervq-vision`` (see :mod:`.cli`).
"""
from .model import VQVAE, VQVAEConfig
from .quantizers import QUANTIZERS, build_quantizer, register

__all__ = ["QUANTIZERS", "VQVAE", "VQVAEConfig", "build_quantizer", "register"]
