"""Drive real console programs (``fairseq-hydra-train``, ``fairseq-validate``, ours) for the tests.

Why one module: the training, restart, precision, bad-config and distributed checks all start
the real program in a subprocess (no mocks), read its JSON log lines or TensorBoard files and
sometimes kill it at a chosen moment; the tests and ``bench/reliability_*.py`` share this code.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

TINY_CONFIG = "hypervq_w2v2_tiny"
_JSON = re.compile(r"\]\[(train_inner|train|valid)\]\[INFO\] - (\{.*\})\s*$")


BIN = os.path.dirname(sys.executable)


def trainer_program() -> List[str]:
    """``fairseq-hydra-train`` of this interpreter's environment."""
    exe = os.path.join(BIN, "fairseq-hydra-train")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "fairseq_cli.hydra_train"]


def train_command(data: str, save_dir: str, overrides: Sequence[str] = (), *, config: str = TINY_CONFIG,
                  program: Optional[Sequence[str]] = None) -> List[str]:
    return list(program or trainer_program()) + [
        "--config-name", config, f"task.data={data}", f"checkpoint.save_dir={save_dir}",
        f"hydra.run.dir={os.path.join(save_dir, 'hydra')}", *overrides]


def quiet_env(threads: int = 1) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@dataclass
class RunLog:
    """What a run printed: return code, the text, and its JSON records by kind."""

    returncode: int
    text: str
    records: Dict[str, List[dict]] = field(default_factory=dict)

    @property
    def updates(self) -> Dict[int, dict]:
        """``train_inner`` records by ``num_updates``."""
        return {int(r["num_updates"]): r for r in self.records.get("train_inner", [])}

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.text.splitlines()[-n:])


def parse_records(text: str) -> Dict[str, List[dict]]:
    out: Dict[str, List[dict]] = {}
    for line in text.splitlines():
        m = _JSON.search(line)
        if m:
            out.setdefault(m.group(1), []).append(json.loads(m.group(2)))
    return out


def run(cmd: Sequence[str], *, cwd: str, timeout: float = 600, env=None,
        kill_when: Optional[Callable[[str], bool]] = None) -> RunLog:
    """Run ``cmd``; with ``kill_when``, SIGKILL it as soon as an output line satisfies it."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env or quiet_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: List[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            if kill_when is not None and kill_when(line):
                proc.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{' '.join(cmd)} ran past {timeout} s:\n{''.join(lines[-30:])}")
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    text = "".join(lines)
    return RunLog(proc.returncode, text, parse_records(text))


def after_update(n: int) -> Callable[[str], bool]:
    """A ``kill_when`` predicate: true on the ``train_inner`` line of update ``n``."""
    def hit(line: str) -> bool:
        m = _JSON.search(line)
        return bool(m and m.group(1) == "train_inner" and int(json.loads(m.group(2))["num_updates"]) >= n)
    return hit


# ----------------------------------------------------------------------------- one-shot console programs


def run_tool(tool: str, args, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a console script of this environment (``fairseq-hydra-train``, ``hypervq-tokenize``, ...) on one thread."""
    env = quiet_env()
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([os.path.join(BIN, tool), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (f"exit {proc.returncode}\n--- stderr tail ---\n{proc.stderr[-4000:]}"
                                  f"\n--- stdout tail ---\n{proc.stdout[-2000:]}")


def run_console(tool: str, *args, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """:func:`run_tool` that fails the test with the log's tail unless the program succeeds."""
    proc = run_tool(tool, args, cwd, timeout)
    check_ok(proc)
    return proc


def hydra_train(config_name: str, manifest, workdir, max_update: int, *extra, config_dir=None,
                tensorboard: bool = True) -> subprocess.CompletedProcess:
    """``fairseq-hydra-train --config-name NAME`` on a manifest folder, outputs under ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    args = ([] if config_dir is None else ["--config-dir", config_dir]) + [
        "--config-name", config_name, f"task.data={manifest}", f"checkpoint.save_dir={os.path.join(workdir, 'ckpt')}",
        f"optimization.max_update={max_update}", f"hydra.run.dir={os.path.join(workdir, 'hydra')}", *extra]
    if tensorboard:
        args.append(f"common.tensorboard_logdir={os.path.join(workdir, 'tb')}")
    return run_tool("fairseq-hydra-train", args, cwd=workdir)


def json_records(proc: subprocess.CompletedProcess, split: str = "train_inner") -> List[dict]:
    """fairseq's JSON log records of one split, in order (hydra logs go to stderr)."""
    return parse_records(proc.stdout + proc.stderr).get(split, [])


def tensorboard_scalars(logdir, split: str = "train_inner") -> Dict[str, list]:
    """``{tag: [(step, value), ...]}`` from fairseq's tensorboardX event files."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(os.path.join(str(logdir), split), size_guidance={SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
