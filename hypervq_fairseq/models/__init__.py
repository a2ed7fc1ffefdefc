"""fairseq glue: importing this package registers ``hypervq_wav2vec2`` with fairseq.

fairseq imports it through ``common.user_dir`` / ``--user-dir``; the installed Hydra plugin
(``hydra_plugins/hypervq_fairseq_searchpath``) imports it inside fairseq's own programs; to
load a checkpoint from Python, ``import hypervq_fairseq.models`` first.
"""
from . import _user_dir_guard
from .hypervq_wav2vec2 import HyperVQWav2Vec2Config, HyperVQWav2Vec2Model

_user_dir_guard.install()

__all__ = ["HyperVQWav2Vec2Config", "HyperVQWav2Vec2Model"]
