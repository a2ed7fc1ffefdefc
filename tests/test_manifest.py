"""hypervq-manifest over a small LibriSpeech-layout tree with good and bad files."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from hypervq_fairseq.data.audio import inspect_files
from hypervq_fairseq.data.manifest import ManifestError, build_manifests, read_manifest
from hypervq_fairseq.tools.manifest import main as manifest_main


def _copy_subset(src_root, src_subset, dst_root, dst_subset, limit=None):
    files = sorted((src_root / src_subset).rglob("*.flac"))[:limit]
    for f in files:
        rel = f.relative_to(src_root / src_subset)
        (dst_root / dst_subset / rel.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst_root / dst_subset / rel)
        trans = f.parent / f"{f.stem.rsplit('-', 1)[0]}.trans.txt"
        shutil.copy2(trans, dst_root / dst_subset / rel.parent / trans.name)
    return len(files)


@pytest.fixture
def libri_tree(tmp_path, tiny_speech_corpus):
    """train-clean-100 (real clips + 4 bad files), dev-clean and dev-other (real clips)."""
    root = tmp_path / "LibriSpeech"
    n_train = _copy_subset(tiny_speech_corpus, "train-demo", root, "train-clean-100", limit=12)
    _copy_subset(tiny_speech_corpus, "dev-demo", root, "dev-clean", limit=2)
    _copy_subset(tiny_speech_corpus, "dev-demo", root, "dev-other")
    bad_dir = root / "train-clean-100" / "77" / "5"
    bad_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (bad_dir / "77-5-0000.flac").write_bytes(rng.bytes(4000))  # corrupt
    sf.write(bad_dir / "77-5-0001.flac", rng.normal(0, 0.1, 8000), 8000)  # 8 kHz
    sf.write(bad_dir / "77-5-0002.flac", rng.normal(0, 0.1, (16000, 2)), 16000)  # stereo
    (bad_dir / "77-5-0003.flac").write_bytes(b"")  # empty
    bad = {"77-5-0000.flac": "unreadable", "77-5-0001.flac": "sample rate 8000 Hz, expected 16000",
           "77-5-0002.flac": "2 channels, expected mono", "77-5-0003.flac": "empty file"}
    return root, n_train, bad


def test_bad_files_fail_the_run_naming_each(libri_tree, tmp_path, capsys):
    root, _, bad = libri_tree
    out = tmp_path / "out"
    assert manifest_main([str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "4 bad audio file(s)" in err
    for name, reason in bad.items():
        line = next(l for l in err.splitlines() if name in l)
        assert reason in line and str(root / "train-clean-100" / "77" / "5" / name) in line
    assert not out.exists() or list(out.iterdir()) == []


def test_skip_bad_writes_manifests_without_them(libri_tree, tmp_path, capsys):
    root, n_train, bad = libri_tree
    out = tmp_path / "out"
    assert manifest_main([str(root), "--out", str(out), "--skip-bad", "--workers", "1", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev-clean.tsv", "dev-other.tsv", "train-clean-100.tsv",
                                                      "train.tsv", "valid.tsv"]
    manifest_root, rows = read_manifest(out / "train.tsv")
    assert manifest_root == str(root.resolve())
    assert len(rows) == n_train and not any(name in path for path, _ in rows for name in bad)
    for path, frames in rows:
        assert path.startswith("train-clean-100/")
        assert sf.info(os.path.join(manifest_root, path)).frames == frames > 0
    _, valid = read_manifest(out / "valid.tsv")
    _, dev_clean = read_manifest(out / "dev-clean.tsv")
    _, dev_other = read_manifest(out / "dev-other.tsv")
    assert valid == dev_clean + dev_other and len(dev_clean) == 2
    captured = capsys.readouterr()
    assert "skipped 4 bad file(s)" in captured.err
    summary = {l.split()[0]: l.split()[1:] for l in captured.out.splitlines() if l.startswith(("train", "dev", "total"))}
    assert summary["train-clean-100"][0] == str(n_train) and summary["train-clean-100"][2] == "4"
    hours = sum(f for _, f in rows) / 16000 / 3600
    assert float(summary["train-clean-100"][1]) == pytest.approx(hours, abs=0.006)


def test_transcripts_follow_manifest_order(libri_tree, tmp_path):
    root, _, _ = libri_tree
    out = tmp_path / "out"
    build_manifests(root, out, skip_bad=True, transcripts=True, workers=1, progress=False)
    _, rows = read_manifest(out / "valid.tsv")
    lines = (out / "valid.trans").read_text().splitlines()
    assert len(lines) == len(rows)
    for (path, _), text in zip(rows, lines):
        uid = os.path.basename(path)[: -len(".flac")]
        trans = (root / path).parent / f"{uid.rsplit('-', 1)[0]}.trans.txt"
        assert f"{uid} {text}" in trans.read_text().splitlines()


def test_missing_transcript_fails_before_writing(libri_tree, tmp_path):
    root, _, _ = libri_tree
    out = tmp_path / "out"
    victim = next((root / "dev-other").rglob("*.trans.txt"))
    victim.unlink()
    with pytest.raises(ManifestError, match="no transcript file .*" + victim.name):
        build_manifests(root, out, skip_bad=True, transcripts=True, workers=1, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_parallel_inspection_matches_serial(tiny_speech_corpus, tmp_path):
    src = sorted(tiny_speech_corpus.rglob("*.flac"))
    for i in range(80):  # above the size where inspection goes to a process pool
        os.link(src[i % len(src)], tmp_path / f"{i:03d}.flac")
    rels = sorted(p.name for p in tmp_path.glob("*.flac"))
    parallel = inspect_files(tmp_path, rels, workers=2, progress=False)
    serial = inspect_files(tmp_path, rels, workers=1, progress=False)
    assert parallel == serial and all(r.ok and r.frames > 0 for r in parallel)


def test_missing_subsets_are_named(tmp_path, tiny_speech_corpus):
    with pytest.raises(ManifestError, match="no LibriSpeech subsets.*train-demo"):
        build_manifests(tiny_speech_corpus, tmp_path / "out", progress=False)
    with pytest.raises(ManifestError, match="train-clean-360"):
        build_manifests(tiny_speech_corpus, tmp_path / "out", train_subsets=["train-clean-360"], progress=False)


def test_ctrl_c_during_a_run_leaves_no_manifest(tiny_speech_corpus, tmp_path):
    import signal
    import subprocess
    import sys

    root = tmp_path / "LibriSpeech"
    src = sorted(tiny_speech_corpus.rglob("*.flac"))
    for i in range(2000):  # hard links: a few seconds of inspection
        folder = root / "dev-clean" / "1" / str(i // 100)
        folder.mkdir(parents=True, exist_ok=True)
        os.link(src[i % len(src)], folder / f"1-{i // 100}-{i:04d}.flac")
    out = tmp_path / "out"
    out.mkdir()
    (out / "valid.tsv").write_text("/old\nx.flac\t1\n")
    proc = subprocess.Popen([sys.executable, "-m", "hypervq_fairseq.tools.manifest", str(root), "--out", str(out),
                             "--workers", "1"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = ""
    while "dev-clean:" not in seen:  # the progress bar has started
        ch = proc.stderr.read(1)
        assert ch, f"manifest run ended before it could be interrupted: {seen[-500:]}"
        seen += ch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "no manifest was written or changed" in err
    assert sorted(p.name for p in out.iterdir()) == ["valid.tsv"]
    assert (out / "valid.tsv").read_text() == "/old\nx.flac\t1\n"
