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


@pytest.mark.slow
def test_ctrl_c_during_a_run_leaves_no_manifest(tiny_speech_corpus, tmp_path):
    import signal
    import subprocess
    import sys

    root = tmp_path / "LibriSpeech"
    src = sorted(tiny_speech_corpus.rglob("*.flac"))
    for i in range(10000):  # hard links: far more inspection than the time it takes the signal to land
        folder = root / "dev-clean" / "1" / str(i // 100)
        folder.mkdir(parents=True, exist_ok=True)
        os.link(src[i % len(src)], folder / f"1-{i // 100}-{i:04d}.flac")
    out = tmp_path / "out"
    out.mkdir()
    (out / "valid.tsv").write_text("/old\nx.flac\t1\n")
    def as_from_a_shell():  # earlier tests may leave SIGINT blocked or ignored in this process; a shell would not
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "hypervq_fairseq.tools.manifest", str(root), "--out", str(out),
                             "--workers", "1"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            preexec_fn=as_from_a_shell)
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


# -- names a manifest line cannot hold, damage in the middle, outputs that cannot be written ----------

def _small_tree(tmp_path, tiny_speech_corpus, n=3):
    root = tmp_path / "LibriSpeech"
    _copy_subset(tiny_speech_corpus, "dev-demo", root, "dev-clean", limit=n)
    return root, sorted((root / "dev-clean").rglob("*.flac"))


@pytest.mark.parametrize("name, why", [
    ("with\ttab.flac", "TAB or a line break"),
    ("with\nnewline.flac", "TAB or a line break"),
    (b"latin1-\xe9t\xe9.flac", "not valid UTF-8"),
])
def test_names_a_manifest_line_cannot_hold_are_refused_by_name(tmp_path, tiny_speech_corpus, capsys, name, why):
    root, files = _small_tree(tmp_path, tiny_speech_corpus)
    folder = files[0].parent
    target = os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) else str(folder / name)
    shutil.copy(files[0], target)
    out = tmp_path / "out"
    assert manifest_main([str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 file name(s) under" in err and why in err and "Traceback" not in err
    shown = repr(os.fsencode(target))                   # the exact bytes, whatever they are
    assert shown in err
    assert not out.exists() or list(out.iterdir()) == []


def test_verify_full_finds_damage_in_the_middle_that_edges_cannot(tmp_path, tiny_speech_corpus, capsys):
    root, files = _small_tree(tmp_path, tiny_speech_corpus)
    raw = files[0].read_bytes()
    mid = len(raw) // 2
    files[0].write_bytes(raw[:mid] + np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
                         + raw[mid + 400:])
    out = tmp_path / "out"
    assert manifest_main([str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 0   # edges: passes
    _, rows = read_manifest(out / "valid.tsv")
    assert len(rows) == len(files)
    capsys.readouterr()
    assert manifest_main([str(root), "--out", str(out), "--verify", "full", "--workers", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{files[0]}: unreadable" in err and "1 bad audio file(s)" in err
    _, rows_after = read_manifest(out / "valid.tsv")
    assert rows_after == rows                            # the failing run replaced nothing


def test_a_folder_in_the_way_of_one_output_replaces_nothing(tmp_path, tiny_speech_corpus, capsys):
    root, _ = _small_tree(tmp_path, tiny_speech_corpus)
    _copy_subset(tiny_speech_corpus, "train-demo", root, "train-clean-100", limit=3)
    out = tmp_path / "out"
    out.mkdir()
    old = {name: f"/old/{name}\nx.flac\t1\n" for name in ("train.tsv", "train-clean-100.tsv", "dev-clean.tsv")}
    for name, text in old.items():
        (out / name).write_text(text)
    (out / "valid.tsv").mkdir()                          # written after train.tsv: a mixed set without staging
    assert manifest_main([str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("hypervq-manifest: error: ") and "valid.tsv" in err and "folder" in err
    assert {name: (out / name).read_text() for name in old} == old
    assert sorted(p.name for p in out.iterdir()) == sorted([*old, "valid.tsv"])     # no temporaries left


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_an_output_folder_that_cannot_be_written_fails_before_the_scan(tmp_path, tiny_speech_corpus, capsys, where):
    if where == "read_only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    root, _ = _small_tree(tmp_path, tiny_speech_corpus)
    if where == "under_a_file":
        (tmp_path / "file").write_text("x")
        out, expected = tmp_path / "file" / "manifests", "is a file, not a folder"
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        out, expected = tmp_path / "ro" / "manifests", "is not writable"
    # the audio is unreadable too: a scan would report that instead, so the folder is checked first
    for f in root.rglob("*.flac"):
        f.write_bytes(b"not audio")
    assert manifest_main([str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and str(out) in err and "bad audio" not in err


@pytest.mark.slow
@pytest.mark.parametrize("umask, mode", [(0o022, "0o644"), (0o027, "0o640")])
def test_files_written_honour_the_umask(tmp_path, tiny_speech_corpus, umask, mode):
    import subprocess
    import sys

    root, _ = _small_tree(tmp_path, tiny_speech_corpus)
    done = subprocess.run([sys.executable, "-m", "hypervq_fairseq.tools.manifest", str(root), "--out",
                           str(tmp_path / "out"), "--transcripts", "--workers", "1", "--no-progress"],
                          preexec_fn=lambda: os.umask(umask), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out").iterdir()}
    assert len(modes) == 4 and set(modes.values()) == {mode}, modes


@pytest.mark.parametrize("entry, message", [
    ("../../etc/passwd\t100", "leaves the audio root"),
    ("a/../../b.flac\t100", "leaves the audio root"),
    ("/etc/passwd\t100", "leaves the audio root"),
    ("a.flac\t²", "malformed manifest line"),           # str.isdigit() accepts it
    ("a.flac\t١٢٣", "malformed manifest line"),          # Arabic-Indic digits
])
def test_entries_outside_the_root_and_non_ascii_counts_are_refused_by_line(tmp_path, entry, message):
    root = tmp_path / "audio"
    root.mkdir()
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"{root}\nok.flac\t16000\n{entry}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"{message}") as info:
        read_manifest(manifest)
    assert f"{manifest}:3" in str(info.value)


def test_paths_inside_the_root_are_read(tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"{root}\nspk/ch/a..b.flac\t16000\n./c.flac\t8\n", encoding="utf-8")  # '..' inside a name
    assert read_manifest(manifest) == (str(root), [("spk/ch/a..b.flac", 16000), ("./c.flac", 8)])


def test_symlinked_speaker_and_chapter_folders_are_followed_and_loops_end(tmp_path):
    from hypervq_fairseq.data.manifest import find_audio

    root, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    for spk, ch, n in (("1", "10", 2), ("2", "20", 3)):
        d = (root / "train-x" / spk / ch)
        d.mkdir(parents=True)
        for i in range(n):
            (d / f"{spk}-{ch}-{i:04d}.flac").write_bytes(b"")
    (elsewhere / "3" / "30").mkdir(parents=True)
    for i in range(4):
        (elsewhere / "3" / "30" / f"3-30-{i:04d}.flac").write_bytes(b"")
    (root / "train-x" / "3").symlink_to(elsewhere / "3")                    # a linked speaker
    (elsewhere / "5").mkdir()
    (elsewhere / "5" / "5-50-0000.flac").write_bytes(b"")
    (root / "train-x" / "1" / "51").symlink_to(elsewhere / "5")             # a linked chapter
    (root / "train-x" / "2" / "20" / "loop").symlink_to(root / "train-x")   # a loop
    found = find_audio(root, "train-x")
    assert len(found) == 2 + 3 + 4 + 1 and len(set(found)) == len(found)
    assert "train-x/3/30/3-30-0003.flac" in found and "train-x/1/51/5-50-0000.flac" in found
