"""hypervq-pretrain: update_freq arithmetic, resume, and the exact torchrun / srun command lines."""
import shlex

import pytest

from hypervq_fairseq.tools.launch import LaunchError, build_command, build_parser, main, update_freq_for


@pytest.mark.parametrize("gpus, freq", [(1, 64), (2, 32), (8, 8), (16, 4), (64, 1)])
def test_update_freq_emulates_64_gpus(gpus, freq):
    assert update_freq_for(gpus) == freq and gpus * freq == 64


@pytest.mark.parametrize("gpus", [3, 6, 12, 48, 128])
def test_update_freq_refuses_non_divisors(gpus):
    with pytest.raises(LaunchError, match=f"64 is not divisible by {gpus}.*\\[1, 2, 4, 8, 16, 32, 64\\]"):
        update_freq_for(gpus)


def test_update_freq_for_another_target():
    assert update_freq_for(4, target_gpus=8) == 2
    with pytest.raises(LaunchError):
        update_freq_for(0)


def _command(tmp_path, *extra):
    args = build_parser().parse_args(["--data", str(tmp_path / "manifest"), "--save-dir", str(tmp_path / "ckpt"),
                                      *extra])
    return build_command(args)


def _override(cmd, key):
    return next(a.split("=", 1)[1] for a in cmd if a.startswith(key + "="))


def test_single_node_command(tmp_path):
    cmd, notes = _command(tmp_path, "--gpus", "8")
    assert cmd[0].endswith("fairseq-hydra-train") and "--config-name=hypervq_w2v2" in cmd
    assert _override(cmd, "optimization.update_freq") == "[8]"
    assert _override(cmd, "distributed_training.distributed_world_size") == "8"
    assert _override(cmd, "task.data") == str(tmp_path / "manifest")
    assert _override(cmd, "checkpoint.save_dir") == str(tmp_path / "ckpt")
    assert "starting fresh" in " ".join(notes)


def test_gumbel_baseline_and_user_overrides(tmp_path):
    cmd, _ = _command(tmp_path, "--quantizer", "gumbel", "--gpus", "4", "optimization.max_update=1000")
    assert "--config-name=gumbel_w2v2" in cmd and cmd[-1] == "optimization.max_update=1000"
    assert _override(cmd, "optimization.update_freq") == "[16]"


def test_resume_keeps_the_save_dir_and_says_so(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint_last.pt").write_bytes(b"x")
    cmd, notes = _command(tmp_path, "--gpus", "2")
    assert _override(cmd, "checkpoint.save_dir") == str(tmp_path / "ckpt")
    assert _override(cmd, "checkpoint.restore_file") == "checkpoint_last.pt"
    assert any("resuming from" in n and "checkpoint_last.pt" in n for n in notes)


def test_torchrun_multi_node(tmp_path):
    cmd, _ = _command(tmp_path, "--gpus", "8", "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1",
                      "--master-port", "29611")
    i = cmd.index("torch.distributed.run")
    assert cmd[i + 1:i + 6] == ["--nnodes=2", "--nproc-per-node=8", "--node-rank=1", "--master-addr=10.0.0.1",
                                "--master-port=29611"]
    assert cmd[i + 6].endswith("fairseq-hydra-train")
    assert _override(cmd, "distributed_training.distributed_world_size") == "16"
    assert _override(cmd, "optimization.update_freq") == "[4]"


def test_slurm_uses_srun_and_the_distributed_port(tmp_path):
    cmd, _ = _command(tmp_path, "--gpus", "8", "--nnodes", "4", "--slurm", "--master-port", "13356")
    assert cmd[:5] == ["srun", "--nodes=4", "--ntasks-per-node=8", "--gpus-per-node=8", "--cpus-per-task=8"]
    assert _override(cmd, "distributed_training.distributed_port") == "13356"
    assert _override(cmd, "distributed_training.distributed_world_size") == "32"
    assert _override(cmd, "optimization.update_freq") == "[2]"


@pytest.mark.parametrize("extra, message", [
    (["--nnodes", "2"], "needs --master-addr"),
    (["--nnodes", "2", "--node-rank", "2", "--master-addr", "a"], r"node-rank must be in \[0, 1\]"),
    (["--cpu", "--slurm"], "drop --nnodes/--slurm"),
])
def test_bad_launches_are_refused(tmp_path, extra, message):
    with pytest.raises(LaunchError, match=message):
        _command(tmp_path, *extra)


def test_dry_run_prints_the_command(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "m"), "--save-dir", str(tmp_path / "c"), "--gpus", "16", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    printed = shlex.split(out.strip().splitlines()[-1])
    assert "optimization.update_freq=[4]" in printed and "world size 16 x update_freq 4" in err
    assert not (tmp_path / "c").exists()
    assert main(["--data", "m", "--save-dir", "c", "--gpus", "5", "--dry-run"]) == 2
    assert "64 is not divisible by 5" in capsys.readouterr().err
