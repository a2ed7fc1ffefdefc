"""Helpers for the fairseq tests: run fairseq's console scripts in a subprocess, read their logs.

Not a conftest: the shared ``tests/conftest.py`` provides ``tiny_speech_manifest``; these are
plain functions the ``test_fairseq_*`` modules import.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JSON_RECORD = re.compile(r"\]\[(train_inner|valid|train)\]\[INFO\] - (\{.*\})\s*$")


def run_tool(tool: str, args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a console script of this environment (``fairseq-hydra-train``, ...) on one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([str(BIN / tool), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def hydra_train(config_name: str, manifest: Path, workdir: Path, max_update: int, *extra,
                config_dir=None, tensorboard: bool = True) -> subprocess.CompletedProcess:
    """``fairseq-hydra-train --config-name NAME`` on the tiny corpus, outputs under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = ([] if config_dir is None else ["--config-dir", config_dir]) + [
        "--config-name", config_name,
        f"task.data={manifest}",
        f"checkpoint.save_dir={workdir / 'ckpt'}",
        f"optimization.max_update={max_update}",
        f"hydra.run.dir={workdir / 'hydra'}",
        *extra,
    ]
    if tensorboard:
        args.append(f"common.tensorboard_logdir={workdir / 'tb'}")
    return run_tool("fairseq-hydra-train", args, cwd=workdir)


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stderr tail ---\n{proc.stderr[-4000:]}\n--- stdout tail ---\n{proc.stdout[-2000:]}"


def json_records(proc: subprocess.CompletedProcess, split: str = "train_inner"):
    """fairseq's JSON log records of one split, in order (hydra logs go to stderr)."""
    out = []
    for line in (proc.stdout + proc.stderr).splitlines():
        match = JSON_RECORD.search(line)
        if match and match.group(1) == split:
            out.append(json.loads(match.group(2)))
    return out


def tensorboard_scalars(logdir: Path, split: str = "train_inner"):
    """``{tag: [(step, value), ...]}`` from fairseq's tensorboardX event files."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(logdir / split), size_guidance={SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
