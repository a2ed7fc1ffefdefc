"""Two-process pretraining on CPU: ``torchrun --nproc_per_node 2 fairseq-hydra-train`` with gloo.

Stock fairseq 0.12 cannot do this on a machine without CUDA (ZeroDivisionError in its launcher
inference, then ``torch.cuda.ByteTensor`` in ``all_gather_list``); the plugin's
``hypervq_fairseq/fairseq/patches.py`` fixes both when ``hypervq_fairseq`` is imported, which
the installed Hydra plugin does. The run must train, log the usual metrics aggregated over both
processes, and save a checkpoint that loads.
"""
import math
import os
import socket
import sys

import pytest
import torch

from helpers.runs import quiet_env, run, train_command


pytestmark = pytest.mark.slow  # every test here shares one real training run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tiny_speech_manifest, tmp_path_factory):
    work = tmp_path_factory.mktemp("ddp")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    launcher = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    program = launcher + [os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train")]
    overrides = ["task._name=hypervq_audio_pretraining", "optimization.max_update=3",
                 "distributed_training.distributed_world_size=2", "distributed_training.distributed_backend=gloo"]
    log = run(train_command(str(tiny_speech_manifest), str(work / "ckpt"), overrides, program=program),
              cwd=str(work), timeout=500, env=quiet_env())
    return log, work / "ckpt"


def test_two_cpu_processes_train_and_log(two_process_run):
    log, _ = two_process_run
    assert log.returncode == 0, log.tail(60)
    assert "distributed init (rank 0)" in log.text and "distributed init (rank 1)" in log.text
    assert "initialized host" in log.text and "as rank 1" in log.text
    updates = log.updates
    assert sorted(updates) == [1, 2, 3]                                  # one log line per update: rank 0 only
    for rec in updates.values():
        for key in ("loss", "prob_perplexity", "code_perplexity", "temp", "code_perplexity_g0", "hyperbolic_radius"):
            assert math.isfinite(float(rec[key])), key
        # perplexities are averaged over the two workers, not summed: each stays below G*V = 64
        assert float(rec["prob_perplexity"]) <= 64 and float(rec["code_perplexity"]) <= 64
    assert math.isfinite(float(log.records["valid"][-1]["valid_loss"]))


def test_each_update_gathers_one_batch_from_each_process(two_process_run, tiny_speech_manifest, tmp_path):
    """fairseq shards the shuffled batches round-robin, so update k of the 2-process run sees the
    batches of updates 2k-1 and 2k of a 1-process run with the same seed: its sentence count is
    their sum (the logging outputs of both workers were gathered)."""
    log, _ = two_process_run
    single = run(train_command(str(tiny_speech_manifest), str(tmp_path / "ckpt"),
                               ["task._name=hypervq_audio_pretraining", "optimization.max_update=4"]),
                 cwd=str(tmp_path), timeout=400)
    assert single.returncode == 0, single.tail()
    one = {n: int(r["nsentences"]) for n, r in single.updates.items()}
    two = {n: int(r["nsentences"]) for n, r in log.updates.items()}
    assert two[1] == one[1] + one[2] and two[2] == one[3] + one[4]


def test_checkpoint_of_the_two_process_run_loads(two_process_run):
    import hypervq_fairseq  # noqa: F401
    from fairseq import checkpoint_utils

    _, save = two_process_run
    state = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["cfg"]["distributed_training"]["distributed_world_size"] == 2
    assert state["optimizer_history"][-1]["num_updates"] == 3
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(save / "checkpoint_last.pt")])
    model = models[0].eval()
    with torch.no_grad():
        out = model(source=torch.randn(1, 16000), mask=False, features_only=True)
    assert torch.isfinite(out["x"]).all()
