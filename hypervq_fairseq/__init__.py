"""hypervq_fairseq: HyperVQ (hyperbolic MLR vector quantization) for fairseq and vision.

The quantizer core (``core``, ``quantizers``) needs torch and geoopt only. Where fairseq is
installed, the fairseq glue (``hypervq_fairseq.fairseq``: the ``hypervq_wav2vec2`` model, the
``hypervq_audio_pretraining`` task and the plugin's fixes to fairseq) registers itself as soon as
fairseq is imported, before or after this package: ``import hypervq_fairseq`` is all a user needs
before loading a checkpoint, and code that never imports fairseq never pays for it.
"""
from ._after_import import after_import as _after_import
from .core import expmap0, logmap0, unidirectional_mlr_logits
from .quantizers import EuclideanGumbelQuantizer, HyperbolicVectorQuantizer

__version__ = "0.2.0"

__all__ = [
    "EuclideanGumbelQuantizer",
    "HyperbolicVectorQuantizer",
    "expmap0",
    "logmap0",
    "unidirectional_mlr_logits",
]


def _register_with_fairseq() -> None:
    from .fairseq import register

    register()


_after_import("fairseq", _register_with_fairseq)
