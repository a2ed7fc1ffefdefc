"""bench/gpu_check.sh keeps working before a GPU arrives: its CPU smoke run passes every step, and a
step that fails (here: GPU steps on a machine without one) is a row of the table, not an abort."""
import json
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
STEPS = ["env", "quantizer_precision", "quantizer_speed", "w2v2_step_fp16", "w2v2_step_bf16",
         "train_fp16_kill_resume", "tokenize_device_vs_cpu", "compile_quantizer"]


def run_check(tmp_path, *args):
    out = tmp_path / "check.md"
    done = subprocess.run(["bash", str(SCRIPT), "--out", str(out), "--work", str(tmp_path / "work"), *args],
                          capture_output=True, text=True, timeout=900)
    return done, out


@pytest.mark.slow
def test_cpu_smoke_runs_every_step_and_passes(tmp_path):
    done, out = run_check(tmp_path, "--cpu-smoke")
    table = out.read_text()
    rows = json.loads(out.with_suffix(".json").read_text())
    assert list(rows) == STEPS
    assert done.returncode == 0, table
    assert all(row["ok"] for row in rows.values()), table
    for step in STEPS:
        assert f"| {step} | ok |" in table
    assert rows["compile_quantizer"]["data"]["core_breaks"] == 0
    assert "resumed from 2 (expected 2), finished at 6" in rows["train_fp16_kill_resume"]["result"]
    assert table in done.stdout                                          # printed and written


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="shows what happens without a GPU")
def test_a_failing_step_is_a_row_not_an_abort(tmp_path):
    done, out = run_check(tmp_path, "--steps", "env", "quantizer_precision", "compile_quantizer")
    rows = json.loads(out.with_suffix(".json").read_text())
    assert done.returncode == 1 and list(rows) == ["env", "quantizer_precision", "compile_quantizer"]
    assert not any(row["ok"] for row in rows.values())
    assert "no CUDA device" in rows["env"]["result"]
    table = out.read_text()
    assert "| quantizer_precision | FAIL |" in table and "| compile_quantizer | FAIL |" in table
