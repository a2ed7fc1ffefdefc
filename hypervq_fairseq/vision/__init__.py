"""Vision trainers reproducing the paper's image experiments on the shared quantizer core.

Layout: ``model.py`` (the VQ-VAE) and ``quantizers/`` (one method per file, one factory by
name); ``loop.py`` (the one training loop) with ``batches.py`` and ``checkpoint.py``; one file
per experiment (``train``, ``probe``, ``codebook``, ``disentangle``, ``prior``, ``compare``);
``cli.py`` and ``options.py`` (the ``hypervq-vision`` command); ``vqsa/`` (paper §5.4).

From the rest of the package it imports only ``core``, ``quantizers``, ``files``, ``errors``
and ``cli``; never fairseq or the fairseq glue, so it installs and runs without fairseq
(``tests/test_vision_imports.py`` checks every module).
"""
from .model import VQVAE, VQVAEConfig
from .quantizers import QUANTIZERS, build_quantizer, register

__all__ = ["QUANTIZERS", "VQVAE", "VQVAEConfig", "build_quantizer", "register"]
