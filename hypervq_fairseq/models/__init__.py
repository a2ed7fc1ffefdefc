"""fairseq glue: importing this package registers ``hypervq_wav2vec2`` with fairseq.

fairseq imports it through ``common.user_dir`` / ``--user-dir``; the installed Hydra plugin
(``hydra_plugins/hypervq_fairseq_searchpath``) imports it inside fairseq's own programs; to
load a checkpoint from Python, ``import hypervq_fairseq.models`` first. It also imports
``hypervq_fairseq.tasks``: the shipped configs train with the task ``hypervq_audio_pretraining``,
which the checkpoints then name, so loading one needs both registered.
"""
from . import _user_dir_guard
from .. import tasks as _tasks  # noqa: F401  registers hypervq_audio_pretraining
from .hypervq_wav2vec2 import HyperVQWav2Vec2Config, HyperVQWav2Vec2Model

_user_dir_guard.install()


def _allow_fairseq_dictionary_in_torch_load() -> None:
    """Fine-tuned checkpoints pickle the target ``Dictionary``; torch >= 2.6 loads with
    ``weights_only=True``, which refuses it, so fairseq-validate, inference and fine-tuning
    resume could not read them. Allowlist that one class (plain lists and dicts inside)."""
    import torch.serialization
    from fairseq.data.dictionary import Dictionary

    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals([Dictionary])


_allow_fairseq_dictionary_in_torch_load()

__all__ = ["HyperVQWav2Vec2Config", "HyperVQWav2Vec2Model"]
