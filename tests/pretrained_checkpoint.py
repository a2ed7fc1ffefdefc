"""A tiny HyperVQ pretraining checkpoint made by fairseq-hydra-train, shared by the token and fine-tuning tests.

Not a conftest (that file belongs to the recipe tests): ``test_tokenize`` and ``test_finetune``
import :func:`pretrained_checkpoint`. The run happens once per pytest session: its result is
kept under pytest's base temp folder and reused by the second module.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def run_console(tool: str, *args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a console script of this environment on one thread; fail the test with its log tail on error."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([str(BIN / tool), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, (f"{tool} exited {proc.returncode}\n--- stderr ---\n{proc.stderr[-4000:]}"
                                  f"\n--- stdout ---\n{proc.stdout[-2000:]}")
    return proc


@pytest.fixture
def pretrained_checkpoint(tiny_speech_manifest, tmp_path_factory) -> Path:
    """``checkpoint_last.pt`` of 2 updates of ``hypervq_w2v2_tiny`` on the tiny real-speech corpus."""
    work = tmp_path_factory.getbasetemp() / "hypervq_pretrained"
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    if not ckpt.exists():
        work.mkdir(parents=True, exist_ok=True)
        run_console("fairseq-hydra-train", "--config-name", "hypervq_w2v2_tiny", f"task.data={tiny_speech_manifest}",
                    f"checkpoint.save_dir={work / 'ckpt'}", "optimization.max_update=2",
                    f"hydra.run.dir={work / 'hydra'}", cwd=work)
    assert ckpt.exists()
    return ckpt
