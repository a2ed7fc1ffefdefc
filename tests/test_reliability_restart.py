"""Restarts: SIGKILL mid-run, resume from ``checkpoint_last.pt``, and never half a checkpoint.

The run is the real ``fairseq-hydra-train`` on the tiny corpus with the task
``hypervq_audio_pretraining`` (reproducible masks and crops). It saves every 3 updates and is
killed with SIGKILL right after update 5; the restart must load the update-3 checkpoint and
repeat the killed run's updates 4 and 5 exactly: same loss (so the weights and Adam's moments
came back), same temperature, same batch and mask sizes (so the data position came back).
"""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from hypervq_fairseq import files as atomic_files
from helpers.runs import after_update, run, train_command

OVERRIDES = ["task._name=hypervq_audio_pretraining", "optimization.max_update=7",
             "checkpoint.save_interval_updates=3", "checkpoint.keep_interval_updates=1"]
COMPARED = ("loss", "loss_0", "loss_1", "loss_2", "temp", "lr", "ntokens", "nsentences", "prob_perplexity",
            "code_perplexity", "accuracy")


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_speech_manifest, tmp_path_factory):
    work = tmp_path_factory.mktemp("restart")
    save = work / "ckpt"
    cmd = train_command(str(tiny_speech_manifest), str(save), OVERRIDES)
    killed = run(cmd, cwd=str(work), timeout=400, kill_when=after_update(5))
    at_kill = {p: torch.load(save / p, map_location="cpu", weights_only=False)
               for p in os.listdir(save) if p.endswith(".pt")}
    resumed = run(cmd, cwd=str(work), timeout=400)
    return killed, at_kill, resumed, save


@pytest.mark.slow
def test_the_first_run_was_killed_by_sigkill(killed_and_resumed):
    killed, at_kill, _, _ = killed_and_resumed
    assert killed.returncode == -signal.SIGKILL
    assert max(killed.updates) in (5, 6) and "checkpoint_last.pt" in at_kill


@pytest.mark.slow
def test_checkpoints_left_by_the_kill_are_whole(killed_and_resumed):
    _, at_kill, _, _ = killed_and_resumed
    last = at_kill["checkpoint_last.pt"]
    assert last["optimizer_history"][-1]["num_updates"] == 3
    assert last["extra_state"]["train_iterator"]["iterations_in_epoch"] == 3
    adam = last["last_optimizer_state"]["state"]
    assert adam and all(int(s["step"]) == 3 for s in adam.values())


@pytest.mark.slow
def test_resume_repeats_the_killed_runs_updates_exactly(killed_and_resumed):
    killed, _, resumed, _ = killed_and_resumed
    assert resumed.returncode == 0, resumed.tail()
    assert "Loaded checkpoint" in resumed.text and "(epoch 1 @ 3 updates)" in resumed.text
    assert sorted(resumed.updates) == [4, 5, 6, 7]       # continues, does not start over
    for n in (4, 5):
        before, after = killed.updates[n], resumed.updates[n]
        assert {k: before[k] for k in COMPARED} == {k: after[k] for k in COMPARED}, n


@pytest.mark.slow
def test_resumed_run_finishes_with_a_loadable_checkpoint(killed_and_resumed):
    _, _, resumed, save = killed_and_resumed
    state = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 7
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert not [p for p in os.listdir(save) if p.endswith(".tmp")]


# -- atomic copies: kill during the copy ---------------------------------------------------------

COPIER = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("atomic_files", sys.argv[3])  # no torch import: fast start
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    atomic_copy = module.atomic_copy
    src, dst = sys.argv[1:3]
    print("ready", flush=True)
    while True:
        atomic_copy(src, dst)
""")


def test_kill_during_checkpoint_copy_leaves_old_or_new_file(tmp_path):
    src, dst = tmp_path / "checkpoint_1_400.pt", tmp_path / "checkpoint_last.pt"
    new = os.urandom(24 * 1024 * 1024)
    src.write_bytes(new)
    dst.write_bytes(b"old checkpoint")
    seen_partial_tmp = 0
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", COPIER, str(src), str(dst), atomic_files.__file__],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:           # kill while a temporary copy is half written
            tmps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            if tmps and 0 < _size(tmps[0]) < len(new):
                proc.send_signal(signal.SIGKILL)
                seen_partial_tmp += 1
                break
        else:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        content = dst.read_bytes()
        assert content in (b"old checkpoint", new), f"attempt {attempt}: destination holds {len(content)} bytes"
        for p in tmp_path.iterdir():                 # what a kill leaves is a stray temporary, never dst
            if p.name.endswith(".tmp"):
                p.unlink()
    assert seen_partial_tmp >= 1                     # the kill did land mid-copy


def _size(path):
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_fairseq_checkpoint_copies_go_through_the_atomic_copy(tmp_path):
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    from hypervq_fairseq.fairseq.patches import patch_atomic_checkpoint_copy

    original = PathManager.__dict__["copy"]
    try:
        PathManager.copy = staticmethod(original.__func__ if hasattr(original, "__func__") else original)
        patch_atomic_checkpoint_copy()
        assert checkpoint_utils.PathManager is PathManager and getattr(PathManager.copy, "_hypervq_patch", False)
        (tmp_path / "a.pt").write_bytes(b"x" * 1000)
        assert PathManager.copy(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), overwrite=True)
        assert (tmp_path / "b.pt").read_bytes() == b"x" * 1000
        assert not PathManager.copy(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), overwrite=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]
    finally:
        PathManager.copy = original


# -- a plugin checkpoint where the plugin is not importable --------------------------------------

BLOCKER = textwrap.dedent("""
    import sys, importlib.abc
    class NoPlugin(importlib.abc.MetaPathFinder):   # an environment without hypervq-fairseq
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("hypervq_fairseq", "hydra_plugins"):
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, NoPlugin())
    from fairseq import checkpoint_utils
    checkpoint_utils.load_model_ensemble_and_task([sys.argv[1]])
""")


@pytest.mark.slow
def test_loading_without_the_plugin_says_how_to_get_it(killed_and_resumed, tmp_path):
    save = killed_and_resumed[3]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(save / "checkpoint_last.pt")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "hypervq_audio_pretraining" in last
    assert "pip install hypervq-fairseq" in last and "common.user_dir=" in last
    assert "'import hypervq_fairseq'" in last


@pytest.mark.slow
def test_loading_with_the_plugin_imported_works(killed_and_resumed):
    import hypervq_fairseq  # noqa: F401  (all a user needs)
    from fairseq import checkpoint_utils

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(killed_and_resumed[3] / "checkpoint_last.pt")])
    assert type(models[0]).__name__ == "HyperVQWav2Vec2Model" and type(task).__name__ == "HyperVQAudioPretrainingTask"


# -- what makes the resume exact: reproducible masks and crops -----------------------------------

def test_masks_follow_seed_and_update_and_numpy_is_restored():
    import numpy as np
    from fairseq.data import data_utils

    from hypervq_fairseq.fairseq.patches import seeded_numpy

    def masks():
        return data_utils.compute_mask_indices((4, 200), None, 0.65, 10, min_masks=2)

    with seeded_numpy(1, 5):
        a = masks()
    with seeded_numpy(1, 5):
        b = masks()
    with seeded_numpy(1, 6):
        c = masks()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert data_utils.np is np                                           # the module's numpy is back
    assert not np.array_equal(masks(), masks())                          # stock: fresh entropy per call


def test_crops_follow_seed_epoch_and_batch(tiny_speech_manifest):
    from omegaconf import OmegaConf

    from hypervq_fairseq.fairseq.tasks import HyperVQAudioPretrainingConfig, HyperVQAudioPretrainingTask

    cfg = OmegaConf.structured(HyperVQAudioPretrainingConfig(data=str(tiny_speech_manifest), max_sample_size=8000))
    root = OmegaConf.create({"common": {"tpu": False, "seed": 1, "fp16": False, "fp16_no_flatten_grads": False,
                                        "memory_efficient_fp16": False}, "task": cfg})
    task = HyperVQAudioPretrainingTask.setup_task(root.task)
    task.load_dataset("valid")
    ds = task.datasets["valid"]
    samples = [ds[i] for i in range(len(ds))]
    first = ds.collater(samples)["net_input"]["source"]
    assert first.shape[1] == 8000                                        # cropped
    assert torch.equal(first, ds.collater(samples)["net_input"]["source"])
    ds.set_epoch(2)
    assert not torch.equal(first, ds.collater(samples)["net_input"]["source"])


# -- killed during a save: resume from the complete checkpoint with the most updates, leave no debris ----

# fairseq-hydra-train in this interpreter, killed with SIGKILL by itself at one exact point of a save:
# inside the copy to checkpoint_last.pt (half of it written), or just before fairseq renames its
# NAME.pt.tmp into place. Everything else is the real program.
KILL_AT = textwrap.dedent("""
    import os, signal, sys
    where, target = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "copy":
        from hypervq_fairseq import files
        real_copy = files.atomic_copy

        def atomic_copy(src, dst):
            if os.path.basename(dst) == target:
                data = open(src, "rb").read()
                with open(files.temporary_path(dst), "wb") as f:
                    f.write(data[: len(data) // 2])
                die()
            return real_copy(src, dst)

        files.atomic_copy = atomic_copy
    else:
        from fairseq.file_io import PathManager
        real_rename = PathManager.rename

        def rename(src, dst):
            if os.path.basename(src) == target:
                die()
            return real_rename(src, dst)

        PathManager.rename = staticmethod(rename)
    sys.argv = ["fairseq-hydra-train"] + sys.argv[3:]
    from fairseq_cli.hydra_train import cli_main
    cli_main()
""")
SAVES = ["task._name=hypervq_audio_pretraining", "checkpoint.save_interval_updates=3",
         "checkpoint.keep_interval_updates=-1"]


def _killed_at(where, target, data, save, max_update, cwd):
    args = train_command(data, str(save), SAVES + [f"optimization.max_update={max_update}"], program=["-"])[1:]
    return run([sys.executable, "-c", KILL_AT, where, target] + args, cwd=cwd, timeout=400)


def _debris(save):
    return sorted(p.name for p in save.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def killed_in_first_save(tiny_speech_manifest, tmp_path_factory):
    work = tmp_path_factory.mktemp("first_save")
    save = work / "ckpt"
    killed = _killed_at("copy", "checkpoint_last.pt", str(tiny_speech_manifest), save, 6, str(work))
    left = sorted(p.name for p in save.iterdir())
    resumed = run(train_command(str(tiny_speech_manifest), str(save), SAVES + ["optimization.max_update=6"]),
                  cwd=str(work), timeout=400)
    return killed, left, resumed, save


@pytest.mark.slow
def test_kill_during_the_first_save_resumes_from_its_checkpoint_not_from_update_0(killed_in_first_save):
    killed, left, resumed, save = killed_in_first_save
    assert killed.returncode == -signal.SIGKILL and max(killed.updates) == 3
    # the save had written checkpoint_1_3.pt and its copy checkpoint_best.pt; fairseq alone would start over
    assert left == [".checkpoint_last.pt.tmp", "checkpoint_1_3.pt", "checkpoint_best.pt", "hydra"]
    assert resumed.returncode == 0, resumed.tail()
    assert re.search(r"removed \S*\.checkpoint_last\.pt\.tmp, left by a save that was interrupted", resumed.text)
    assert re.search(r"resuming from \S*checkpoint_1_3\.pt: it is the complete checkpoint with the most updates .*"
                     r"there is no checkpoint_last", resumed.text), resumed.tail()
    assert "(epoch 1 @ 3 updates)" in resumed.text and sorted(resumed.updates) == [4, 5, 6]
    assert _debris(save) == []


@pytest.mark.slow
def test_truncated_checkpoint_last_resumes_from_the_complete_one_with_most_updates(killed_in_first_save, tiny_speech_manifest,
                                                                        tmp_path):
    save = killed_in_first_save[3]
    last = save / "checkpoint_last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])                           # what a torn copy used to leave
    resumed = run(train_command(str(tiny_speech_manifest), str(save), SAVES + ["optimization.max_update=8"]),
                  cwd=str(tmp_path), timeout=400)
    assert resumed.returncode == 0, resumed.tail()
    assert re.search(r"checkpoint_last\.pt is incomplete or damaged .*not resuming from it", resumed.text)
    assert re.search(r"resuming from \S*checkpoint_1_6\.pt: it is the complete checkpoint with the most updates .*"
                     r"checkpoint_last is damaged", resumed.text), resumed.tail()
    assert "(epoch 1 @ 6 updates)" in resumed.text and sorted(resumed.updates) == [7, 8]
    assert torch.load(last, map_location="cpu", weights_only=False)["optimizer_history"][-1]["num_updates"] == 8
    assert _debris(save) == []


@pytest.mark.slow
def test_kill_before_fairseq_renames_its_temporary_leaves_nothing_after_the_resume(tiny_speech_manifest, tmp_path):
    save = tmp_path / "ckpt"
    killed = _killed_at("rename", "checkpoint_1_6.pt.tmp", str(tiny_speech_manifest), save, 6, str(tmp_path))
    assert killed.returncode == -signal.SIGKILL
    assert _debris(save) == ["checkpoint_1_6.pt.tmp"]                   # full size, never renamed
    resumed = run(train_command(str(tiny_speech_manifest), str(save), SAVES + ["optimization.max_update=6"]),
                  cwd=str(tmp_path), timeout=400)
    assert resumed.returncode == 0, resumed.tail()
    assert re.search(r"removed \S*checkpoint_1_6\.pt\.tmp, left by a save that was interrupted", resumed.text)
    assert "(epoch 1 @ 3 updates)" in resumed.text and sorted(resumed.updates) == [4, 5, 6]
    assert _debris(save) == [] and (save / "checkpoint_1_6.pt").exists()


@pytest.mark.slow
def test_every_file_of_a_run_honours_the_umask(tiny_speech_manifest, tmp_path):
    """fairseq's own checkpoint_E_U.pt and our atomic copies (checkpoint_last/best) get the same mode."""
    save = tmp_path / "ckpt"
    cmd = train_command(str(tiny_speech_manifest), str(save), SAVES + ["optimization.max_update=3",
                                                                      "checkpoint.no_epoch_checkpoints=false"])
    proc = subprocess.run(cmd, cwd=tmp_path, preexec_fn=lambda: os.umask(0o027), capture_output=True, text=True,
                          timeout=400, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in save.iterdir() if p.is_file()}
    assert {"checkpoint_1_3.pt", "checkpoint_last.pt", "checkpoint_best.pt"} <= set(modes), modes
    assert set(modes.values()) == {"0o640"}, modes
