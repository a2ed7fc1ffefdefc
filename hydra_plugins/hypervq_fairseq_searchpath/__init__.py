"""Hydra search-path plugin: ``fairseq-hydra-train --config-name hypervq_w2v2`` after install.

Hydra imports every module of the ``hydra_plugins`` namespace package when it starts and
asks each ``SearchPathPlugin`` to extend the config search path. We append the YAML files
shipped as ``hypervq_fairseq.configs`` (the repository's ``configs/`` folder), so that no
``--config-dir`` is needed.

Inside fairseq's programs (``fairseq`` already imported) the plugin also imports
``hypervq_fairseq``, which registers the ``hypervq_wav2vec2`` model and the
``hypervq_audio_pretraining`` task: fairseq composes the config before it reads
``common.user_dir``, and an installed plugin should not need one. Outside fairseq nothing is
imported, so other Hydra apps pay nothing.

    fairseq-hydra-train --config-name hypervq_w2v2_tiny task.data=MANIFEST_DIR
"""
import importlib
import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONFIG_PACKAGE = "hypervq_fairseq.configs"


def register_with_fairseq() -> None:
    """Import the fairseq glue if this process runs fairseq (and fairseq finished importing)."""
    fairseq_models = sys.modules.get("fairseq.models")
    if fairseq_models is not None and hasattr(fairseq_models, "register_model"):
        importlib.import_module("hypervq_fairseq.fairseq").register()


class HyperVQSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="hypervq-fairseq", path=f"pkg://{CONFIG_PACKAGE}")
        register_with_fairseq()
