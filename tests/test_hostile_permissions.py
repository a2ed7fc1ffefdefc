"""Every file the console scripts write gets the mode a plain ``open()`` would give under the user's umask.

Files written through a temporary name and a rename used to come out 0600 while fairseq's own
checkpoints were 0644, so collaborators on a shared machine could read some outputs of a run and
not others. Each program runs here under umask 027 (a group-readable setting): every file it
writes must be 0640. (Manifests: ``test_manifest.py``; fairseq checkpoints: ``test_reliability_restart.py``.)
"""
import os
import subprocess

import pytest

from helpers.runs import BIN, quiet_env

UMASK, MODE = 0o027, "0o640"


def run_under_umask(tool, *args, cwd, env=None):
    proc = subprocess.run([os.path.join(BIN, tool), *map(str, args)], cwd=cwd, env=env or quiet_env(),
                          preexec_fn=lambda: os.umask(UMASK), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def modes(folder):
    return {p.name: oct(p.stat().st_mode & 0o777) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_token_files_sidecars_and_reports(pretrained_checkpoint, tiny_speech_manifest, tmp_path):
    out = tmp_path / "tokens"
    run_under_umask("hypervq-tokenize", pretrained_checkpoint, tiny_speech_manifest / "valid.tsv", "--out",
                    out / "valid.tok", "--no-progress", cwd=tmp_path)
    run_under_umask("hypervq-codebook-report", "--tokens", out / "valid.tok", "--out", tmp_path / "report", cwd=tmp_path)
    written = {**modes(out), **modes(tmp_path / "report")}
    assert {"valid.tok", "valid.tok.json", "report.json", "report.tsv", "usage_g0.png"} <= set(written), written
    assert set(written.values()) == {MODE}, written


@pytest.mark.slow
def test_vision_checkpoint_and_metrics(tmp_path):
    env = dict(quiet_env(), HYPERVQ_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "vision"
    run_under_umask("hypervq-vision", "train", "--quantizer", "hypervq", "--steps", "2", "--out", out,
                    "--dataset", "fashion-mnist", "--subset", "64", "--test-subset", "32", "--batch-size", "16",
                    "--quiet", "--threads", "1", "--num-codes", "8", "--embedding-dim", "4", "--hidden", "8",
                    "--res-blocks", "1", "--res-hidden", "4", cwd=tmp_path, env=env)
    written = modes(out)
    assert {"checkpoint.pt", "metrics.json"} <= set(written), written
    assert set(written.values()) == {MODE}, written
