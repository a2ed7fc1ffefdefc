"""fairseq glue: the ``hypervq_wav2vec2`` model, the ``hypervq_audio_pretraining`` task, and
every change the plugin makes to fairseq's behaviour (:mod:`.patches`).

:func:`register` runs when ``hypervq_fairseq`` is imported in an environment that has fairseq:
after ``import hypervq_fairseq``, ``fairseq.checkpoint_utils.load_model_ensemble_and_task`` loads
any checkpoint this project writes, and fairseq's programs find the model and the task (the
installed Hydra plugin and ``common.user_dir`` / ``--user-dir`` import the package too).

This subpackage imports the real fairseq by absolute imports; its own name only says what it
holds. Nothing outside it (and the tools) imports fairseq.
"""
from __future__ import annotations

_registered = False


def register() -> None:
    """Register the model and the task with fairseq and apply the process-wide patches (idempotent)."""
    global _registered
    if _registered:
        return
    from . import models, patches, tasks  # noqa: F401  (the decorators register them)

    patches.apply_all()
    _registered = True
