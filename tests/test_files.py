"""The one atomic writer: old file or new file, never a prefix; all of a set or none; plain permissions."""
import os
import subprocess
import sys

import pytest

from hypervq_fairseq import files
from hypervq_fairseq.errors import OutputError


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("new but cut")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        files.atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    files.atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_a_set_is_replaced_together_or_not_at_all(tmp_path):
    for name in ("a.tsv", "c.tsv"):
        (tmp_path / name).write_text(f"old {name}")
    (tmp_path / "b.tsv").mkdir()                              # in the way of the second of three
    with pytest.raises(IsADirectoryError, match="b.tsv: a folder of that name is in the way"):
        files.atomic_write_all({tmp_path / "a.tsv": "new a", tmp_path / "b.tsv": ["x"], tmp_path / "c.tsv": b"new c"})
    assert (tmp_path / "a.tsv").read_text() == "old a.tsv" and (tmp_path / "c.tsv").read_text() == "old c.tsv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv", "b.tsv", "c.tsv"]
    (tmp_path / "b.tsv").rmdir()
    done = files.atomic_write_all({tmp_path / "a.tsv": "new a", tmp_path / "b.tsv": ["x", "y"], tmp_path / "c.tsv": b"c"})
    assert [p.name for p in done] == ["a.tsv", "b.tsv", "c.tsv"] and (tmp_path / "b.tsv").read_text() == "x\ny\n"


def test_stale_temporaries_are_replaced_or_removed(tmp_path):
    stale = files.temporary_path(tmp_path / "checkpoint_last.pt")
    assert stale.name == ".checkpoint_last.pt.tmp"
    stale.write_bytes(b"x" * 1000)                            # what a SIGKILL mid-write leaves
    (tmp_path / ".other.json.tmp").write_text("{")
    files.atomic_write_bytes(tmp_path / "checkpoint_last.pt", b"new")      # the next write reuses the name
    assert not stale.exists()
    stale.write_bytes(b"x")
    removed = files.remove_stale_temporaries(tmp_path, "checkpoint*")
    assert removed == [stale] and (tmp_path / ".other.json.tmp").exists()


def test_check_writable_folder_names_what_is_wrong_and_creates_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"--out .*file/a/b: cannot be created, .*file is a file, not a folder"):
        files.check_writable_folder(tmp_path / "file" / "a" / "b", what="--out")
    assert files.check_writable_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()
    if os.geteuid() != 0:                                     # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(OutputError, match="cannot be created: .*ro is not writable"):
            files.check_writable_folder(tmp_path / "ro" / "out")


@pytest.mark.slow
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_permissions_follow_the_umask_like_a_plain_open(tmp_path, umask, mode):
    code = ("import sys; from hypervq_fairseq import files; "
            "files.atomic_write_text(sys.argv[1] + '/a.txt', 'x'); "
            "files.atomic_write_all({sys.argv[1] + '/b.txt': 'y'}); "
            "files.atomic_copy(sys.argv[1] + '/a.txt', sys.argv[1] + '/c.txt'); "
            "import os, tempfile\n"
            "with files.atomic_folder(sys.argv[1] + '/d') as s:\n"
            "    fd, name = tempfile.mkstemp(dir=s); os.close(fd)\n"           # 0600, as safetensors leaves its files
            "open(sys.argv[1] + '/plain.txt', 'w').close()")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, preexec_fn=lambda: os.umask(umask))
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir() if p.is_file()}
    modes.update({f"d/{p.name[:3]}": p.stat().st_mode & 0o777 for p in (tmp_path / "d").iterdir()})
    assert modes == {"a.txt": mode, "b.txt": mode, "c.txt": mode, "plain.txt": mode, "d/tmp": mode}


def test_atomic_folder_replaces_on_success_and_keeps_the_old_folder_on_error(tmp_path):
    from hypervq_fairseq.files import atomic_folder, temporary_path

    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out) as staging:
            (staging / "new.txt").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"] and (out / "old.txt").read_text() == "old"
    with atomic_folder(out) as staging:
        assert staging == temporary_path(out) and not any(staging.iterdir())
        (staging / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and not temporary_path(out).exists()


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    """A real ENOSPC (writing to /dev/full) names no file; the writers name the destination."""
    from hypervq_fairseq.errors import OutputError
    from hypervq_fairseq.files import atomic_folder, atomic_write, disk_full_error

    def fill(tmp):
        with open("/dev/full", "w") as f:
            f.write("x" * 100_000)
            f.flush()

    with pytest.raises(OutputError, match=r"cannot write .*out\.bin: no space left on its device"):
        atomic_write(tmp_path / "out.bin", fill)
    with pytest.raises(OutputError, match=r"cannot write .*export: no space left"):
        with atomic_folder(tmp_path / "export"):
            fill(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # a writer's own wrapper of the OS error (safetensors' SafetensorError reads like this)
    wrapped = RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: ... })")
    assert isinstance(disk_full_error(wrapped, "model.safetensors"), OutputError)
    assert disk_full_error(RuntimeError("other"), "x") is None
