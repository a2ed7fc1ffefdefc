"""Every change ``hypervq_fairseq/fairseq/patches.py`` makes to fairseq still applies.

For each patch, two kinds of test: fairseq's own code still has the call site the patch relies on
(a new fairseq that calls something else would silently leave the patch without effect), and after
``import hypervq_fairseq`` and ``import fairseq`` (in either order, in a fresh interpreter) the
patched behaviour is what fairseq's code reaches.
"""
import argparse
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import hypervq_fairseq  # noqa: F401  (registers the glue once fairseq is imported)
from fairseq import checkpoint_utils, utils
from fairseq.data import data_utils
from fairseq.distributed import utils as dist_utils
from fairseq.file_io import PathManager
from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Model

from hypervq_fairseq.fairseq import patches
from hypervq_fairseq.safe_load import load_checkpoint_file


def source(obj) -> str:
    return inspect.getsource(obj)


# -- fairseq's call sites ----------------------------------------------------------------------------

def test_save_checkpoint_still_copies_through_pathmanager():
    body = source(checkpoint_utils.save_checkpoint)
    assert "PathManager.copy(" in body                   # every name after the first is a copy
    assert checkpoint_utils.PathManager is PathManager   # the class we patch is the one it calls


def test_torch_persistent_save_still_writes_name_dot_tmp_then_renames():
    body = source(checkpoint_utils.torch_persistent_save)
    assert 'filename + ".tmp"' in body and "PathManager.rename(" in body   # the leftovers we clean up


def test_fairseq_programs_still_look_up_import_user_module_at_call_time():
    import fairseq_cli.train
    import fairseq_cli.validate

    for program in (fairseq_cli.train, fairseq_cli.validate):
        assert "utils.import_user_module(" in source(program)
        assert program.utils is utils                    # the module attribute we replace


def test_train_still_resumes_through_checkpoint_utils_load_checkpoint():
    import fairseq_cli.train

    assert "checkpoint_utils.load_checkpoint(" in source(fairseq_cli.train.main)
    assert fairseq_cli.train.checkpoint_utils is checkpoint_utils
    # the default restore_file the patch takes over is the one fairseq treats as "resume from last"
    module = source(checkpoint_utils)
    assert 'cfg.restore_file == "checkpoint_last.pt"' in module and '"checkpoint_last{}.pt".format(suffix)' in module


def test_every_checkpoint_fairseq_opens_still_goes_through_load_checkpoint_to_cpu():
    import fairseq.trainer
    from fairseq.models.wav2vec import wav2vec2_asr

    # the module's own loader finds the function through its globals, which the patch rebinds
    assert "load_checkpoint_to_cpu(filename, arg_overrides)" in source(checkpoint_utils.load_model_ensemble_and_task)
    assert "checkpoint_utils.load_checkpoint_to_cpu(" in source(fairseq.trainer.Trainer.load_checkpoint)
    assert "checkpoint_utils.load_checkpoint_to_cpu(cfg.w2v_path" in source(wav2vec2_asr.Wav2VecEncoder.__init__)
    # the constructors that evaluate the strings the loader makes safe
    assert "eval(cfg.conv_feature_layers)" in source(Wav2Vec2Model.__init__)
    # the steps the replacement repeats, besides the load itself
    for step in ("_upgrade_state_dict(state)", "overwrite_args_by_name(", "OmegaConf.create("):
        assert step in source(patches.fairseq_load_checkpoint_to_cpu)


def test_compute_mask_indices_still_draws_from_numpys_default_rng():
    body = source(data_utils.compute_mask_indices)
    assert "np.random.default_rng(" in body and data_utils.np is np    # what seeded_numpy rebinds


def test_apply_mask_still_writes_mask_emb_by_index():
    body = source(Wav2Vec2Model.apply_mask)
    assert "index_put(x, mask_indices, self.mask_emb)" in body     # refuses a half x and a float32 mask_emb


def test_distributed_utils_still_assume_cuda_where_the_cpu_patch_replaces_them():
    import fairseq.trainer

    module = source(dist_utils)                                   # fairseq's file, as written
    assert "cfg.device_id = cfg.distributed_rank % torch.cuda.device_count()" in module
    assert "torch.cuda.ByteTensor(buffer_size)" in module
    assert "_infer_torch_distributed_launch_init(cfg)" in source(dist_utils.infer_init_method)   # module lookup
    assert "distributed_utils.all_gather_list(" in source(fairseq.trainer.Trainer._all_gather_list_sync)
    assert fairseq.trainer.distributed_utils is dist_utils


# -- in effect after import ---------------------------------------------------------------------------

CHECK = """
import json, sys, torch
first = sys.argv[1]
if first == "fairseq":
    import fairseq.checkpoint_utils, fairseq.utils
    import hypervq_fairseq
else:
    import hypervq_fairseq
    import fairseq.checkpoint_utils, fairseq.utils
from fairseq import checkpoint_utils, utils
from fairseq.distributed import utils as dist_utils
from fairseq.file_io import PathManager
from fairseq.tasks import TASK_REGISTRY
from fairseq.models import MODEL_REGISTRY
marked = lambda f: bool(getattr(f, "_hypervq_patch", False))
print(json.dumps({
    "copy": marked(PathManager.copy),
    "user_dir": marked(utils.import_user_module),
    "resume": marked(checkpoint_utils.load_checkpoint),
    "safe_loading": marked(checkpoint_utils.load_checkpoint_to_cpu),
    "cpu_distributed": marked(dist_utils.all_gather_list) and marked(dist_utils._infer_torch_distributed_launch_init),
    "task": "hypervq_audio_pretraining" in TASK_REGISTRY,
    "model": "hypervq_wav2vec2" in MODEL_REGISTRY,
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("first", ["hypervq_fairseq", "fairseq"])
def test_every_process_wide_patch_is_in_effect_after_import(first):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHECK, first], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == {k: True for k in state} and len(state) == 7, state


def test_the_atomic_copy_is_what_fairseq_reaches(tmp_path):
    src, dst = tmp_path / "checkpoint_1_3.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(os.urandom(100_000))
    dst.write_bytes(b"old")
    assert PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == src.read_bytes()
    assert oct(dst.stat().st_mode & 0o777) == oct(0o666 & ~hypervq_fairseq.files.UMASK)
    assert not PathManager.copy(str(src), str(dst), overwrite=False)           # fairseq's contract kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_3.pt", "checkpoint_last.pt"]


def test_a_second_copy_of_the_plugin_as_user_dir_gets_the_fix(tmp_path):
    other = tmp_path / "hypervq_fairseq"
    other.mkdir()
    (other / "__init__.py").write_text("")
    with pytest.raises(patches.UserDirConflictError, match="(?s)second copy of hypervq_fairseq.*drop common.user_dir"):
        utils.import_user_module(argparse.Namespace(user_dir=str(other)))


def test_fairseq_dictionaries_load_weights_only(tmp_path):
    """Fine-tuned checkpoints store the target Dictionary: it is on the loader's allow-list, and torch's
    own process-wide list is left as it was."""
    from fairseq.data.dictionary import Dictionary

    d = Dictionary()
    d.add_symbol("hello")
    torch.save({"dict": d}, tmp_path / "d.pt")
    loaded = load_checkpoint_file(tmp_path / "d.pt")["dict"]
    assert loaded.index("hello") == d.index("hello")
    assert Dictionary not in torch.serialization.get_safe_globals()


@pytest.mark.skipif(torch.cuda.is_available(), reason="GPU machines keep fairseq's own distributed code")
def test_torchrun_inference_and_gathering_work_without_cuda(monkeypatch):
    from omegaconf import OmegaConf

    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    cfg = OmegaConf.create({"distributed_init_method": None, "distributed_world_size": 0, "distributed_rank": 0,
                            "device_id": 5, "distributed_no_spawn": False})
    dist_utils._infer_torch_distributed_launch_init(cfg)          # stock: ZeroDivisionError (0 CUDA devices)
    assert (cfg.distributed_init_method, cfg.distributed_world_size, cfg.distributed_rank, cfg.device_id) == \
        ("env://", 2, 1, 0)


def test_seeded_numpy_governs_the_masks_fairseq_draws():
    def masks():
        return data_utils.compute_mask_indices((2, 100), None, 0.5, 5, min_masks=1)

    with patches.seeded_numpy(3, 7):
        first = masks()
    with patches.seeded_numpy(3, 7):
        assert np.array_equal(first, masks())
    assert data_utils.np is np


def test_masking_is_autocast_safe_on_the_models_the_task_builds():
    from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config

    cfg = Wav2Vec2Config(encoder_layers=1, encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=2,
                         conv_feature_layers="[(16, 10, 5)] + [(16, 3, 2)] * 2", final_dim=8, conv_pos=4,
                         conv_pos_groups=2, mask_prob=0.5, mask_length=2)
    model = patches.make_masking_autocast_safe(Wav2Vec2Model(cfg))
    x = torch.randn(2, 30, 16, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"):
        Wav2Vec2Model.apply_mask(model, x.clone(), None)          # fairseq's own method
    out, _ = model.apply_mask(x, None)                            # the patched one
    assert out.dtype == model.mask_emb.dtype and bool((out == model.mask_emb).all(-1).any())
