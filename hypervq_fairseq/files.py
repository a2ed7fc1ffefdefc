"""Atomic file writing: a reader, a restart or a kill sees the old file or the new one, never a prefix.

Every file the project writes (manifests, labels, token files and their sidecars, reports,
plots, checkpoints, metrics) goes through :func:`atomic_write`: the content is written to a
temporary file in the destination's folder, flushed and fsynced, given the permissions a plain
``open()`` would give (mode ``0o666`` minus the umask; ``mkstemp`` alone would leave ``0600``),
then moved onto the destination with ``os.replace``, which is atomic on POSIX filesystems.

The temporary file is named ``.NAME.tmp`` beside ``NAME``. A process killed with SIGKILL
cannot clean up after itself, so the name is fixed rather than random: the next write of the
same file replaces it instead of leaving one more full-size leftover each time, and
:func:`remove_stale_temporaries` clears a folder's leftovers at start-up. Two processes must
not write the same destination at the same time (nothing in the project does).

Several files that only make sense together (``train.tsv`` and ``valid.tsv``, say) are written
with :func:`atomic_write_all`: every temporary file is written first, and the renames happen
only when all of them succeeded.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Callable, Iterable, Mapping, Union

PathLike = Union[str, os.PathLike]
Writer = Callable[[str], None]

TMP_SUFFIX = ".tmp"
COPY_CHUNK = 16 * 1024 * 1024


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import (changing the umask is process-wide, so never do it while threads write).
UMASK = _umask()


def temporary_path(path: PathLike) -> Path:
    """Where :func:`atomic_write` stages ``path``: ``.NAME.tmp`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def disk_full_error(e: BaseException, path: PathLike, after: str = "nothing was half-written"):
    """An :class:`OutputError` naming ``path`` for a full disk or quota (``[Errno 28]`` names no file), else None.

    Also for writers that wrap the OS error in their own type (safetensors' ``SafetensorError``
    says ``StorageFull`` / ``code: 28``).
    """
    from .errors import OutputError

    text = str(e)
    full = (isinstance(e, OSError) and e.errno in _DISK_FULL) or (
        not isinstance(e, OSError) and ("StorageFull" in text or "No space left on device" in text))
    if full:
        return OutputError(f"cannot write {path}: no space left on its device ({os.strerror(getattr(e, 'errno', None) or errno.ENOSPC)}); free some "
                           f"space or choose another output folder ({after})")
    return None


def _stage(path: Path, write: Writer) -> Path:
    """Write ``path``'s content to its temporary file, synced and with plain-file permissions."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: a folder of that name is in the way")
    tmp = temporary_path(path)
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        named = disk_full_error(e, path)
        if named is not None:
            raise named from None
        raise
    return tmp


def atomic_write(path: PathLike, write: Writer) -> Path:
    """Call ``write(tmp_path)`` to produce the file, then move it onto ``path``; returns ``path``.

    ``write`` receives a path, so any library that writes to a file name works
    (``torch.save``, ``fig.savefig``, ``sf.write``). If it raises, or the process is interrupted,
    ``path`` keeps its previous content (or stays absent) and the temporary file is removed.
    """
    path = Path(path)
    tmp = _stage(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _text_writer(text: str) -> Writer:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return write


def _bytes_writer(data: bytes) -> Writer:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return write


def _lines_writer(lines: Iterable[str]) -> Writer:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
    return write


def _json_text(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=False) + "\n"


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, _text_writer(text))


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, _bytes_writer(data))


def atomic_write_lines(path: PathLike, lines: Iterable[str]) -> Path:
    """Each line (without its newline) followed by ``\\n``; ``lines`` may be a generator."""
    return atomic_write(path, _lines_writer(lines))


def atomic_write_json(path: PathLike, obj) -> Path:
    return atomic_write(path, _text_writer(_json_text(obj)))


def atomic_copy(src: PathLike, dst: PathLike) -> Path:
    """Copy ``src`` onto ``dst`` atomically (fairseq's ``checkpoint_last.pt`` copies go through this)."""
    def write(tmp: str) -> None:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, COPY_CHUNK)
    return atomic_write(dst, write)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back for a few renames (main thread only; a no-op elsewhere)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def atomic_write_all(files: Mapping[PathLike, Union[Writer, str, bytes, list]]) -> list:
    """Write several files so that either all of them are replaced or none is.

    ``files`` maps each destination to a writer callable, a ``str`` (text), ``bytes`` or a list
    of lines. Every temporary file is written first; if any write fails (a folder in the way, a
    full disk, Ctrl-C) every temporary is removed and no destination has changed. Only then are
    they renamed, one ``os.replace`` each, with Ctrl-C and SIGTERM held back until the last one is
    done. A rename that fails (or a SIGKILL) in that short phase leaves the earlier destinations
    new and the rest untouched.
    """
    staged = []
    try:
        for path, content in files.items():
            path = Path(path)
            if callable(content):
                writer = content
            elif isinstance(content, bytes):
                writer = _bytes_writer(content)
            elif isinstance(content, str):
                writer = _text_writer(content)
            else:
                writer = _lines_writer(content)
            staged.append((_stage(path, writer), path))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    done = []
    with _signals_deferred():  # Ctrl-C waits until the set is consistent again
        try:
            for tmp, path in staged:
                os.replace(tmp, path)
                done.append(path)
        finally:
            for tmp, _ in staged[len(done):]:
                tmp.unlink(missing_ok=True)
    for folder in {p.parent for p in done}:
        _fsync_folder(folder)
    return done


def check_writable_folder(folder: PathLike, *, what: str = "output folder") -> Path:
    """Fail now, naming ``folder``, if it could not be created or written; creates nothing.

    Commands call this before long work (scanning LibriSpeech, encoding a dataset), so that an
    ``--out`` under a file or in a read-only place is reported at once, not after an hour.
    """
    from .errors import OutputError

    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} {folder}: cannot be created, {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        whose = "is not writable" if probe == folder else f"cannot be created: {probe} is not writable"
        raise OutputError(f"{what} {folder} {whose}")
    return folder


def remove_stale_temporaries(folder: PathLike, pattern: str = "*") -> list:
    """Remove ``.NAME.tmp`` leftovers of killed writes in ``folder`` (names matching ``.{pattern}.tmp``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(f".{pattern}{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_folder(path: PathLike, staging: PathLike = None):
    """Build a whole folder, then put it in place: yields the staging folder to fill.

    The staging folder (default ``.NAME.tmp`` beside ``NAME``) starts empty; when the block
    ends without an error it replaces ``path`` (an existing folder there is removed first: the
    one moment a reader can find nothing), and on any error, Ctrl-C included, it is deleted and
    ``path`` is left as it was. Plain files in it get the mode ``open()`` would give (some writers,
    safetensors among them, leave ``0600``), so the whole folder follows the umask.
    """
    path = Path(path)
    staging = Path(staging) if staging is not None else temporary_path(path)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        for item in staging.rglob("*"):
            if item.is_file() and not item.is_symlink():
                os.chmod(item, 0o666 & ~UMASK)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        named = disk_full_error(e, path)
        if named is not None:
            raise named from None
        raise


@contextlib.contextmanager
def exclusive_lock(path: PathLike, *, what: str):
    """Hold an exclusive lock on the file ``path`` for the block (created if needed, removed after).

    For outputs that one run at a time may write: a second run gets an :class:`OutputError` naming
    the process that holds the lock, instead of both appending to the same files. The lock is the
    kernel's (``flock``), so a killed run releases it.
    """
    import fcntl

    from .errors import OutputError

    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(f"{what} is being written by process {holder} (lock {path}): wait for that run to "
                              f"finish, or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still held: no other run is inside the block
    finally:
        os.close(fd)
