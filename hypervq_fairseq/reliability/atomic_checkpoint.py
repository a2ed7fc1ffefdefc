"""Atomic checkpoint copies: a killed run never leaves a half-written ``checkpoint_last.pt``.

What fairseq 0.12 does (``checkpoint_utils.save_checkpoint`` and ``file_io.PathManager``): the
first checkpoint of a save (e.g. ``checkpoint_1_400.pt`` or ``checkpoint_best.pt``) is written to
``NAME.tmp`` and renamed, which is atomic; every other name of the same save, and in practice
that is almost always ``checkpoint_last.pt``, is produced by ``PathManager.copy``, i.e.
``shutil.copyfile`` (or iopath's equivalent) straight onto the destination. A SIGKILL, OOM kill
or pre-emption during that copy leaves a truncated ``checkpoint_last.pt``, and the restart then
fails in ``torch.load`` ("failed finding central directory") instead of resuming.

:func:`install_atomic_checkpoint_copy` replaces ``PathManager.copy`` for local destinations with
:func:`atomic_copy`: copy to a temporary file in the destination's folder, flush and fsync it,
then ``os.replace`` it onto the destination. A reader (or a restart) sees the old file or the new
one, never a prefix. Remote destinations (paths served by iopath handlers) keep fairseq's copy.
The task ``hypervq_audio_pretraining`` installs it in ``setup_task``.
"""
from __future__ import annotations

import os
import shutil
import tempfile

COPY_CHUNK = 16 * 1024 * 1024


def atomic_copy(src: str, dst: str, overwrite: bool = True) -> bool:
    """Copy ``src`` to ``dst`` through a temporary file + fsync + ``os.replace``; True on success."""
    if not overwrite and os.path.exists(dst):
        return False
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.", suffix=".tmp", dir=folder)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, COPY_CHUNK)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def install_atomic_checkpoint_copy() -> None:
    """Route fairseq's local ``PathManager.copy`` through :func:`atomic_copy` (idempotent)."""
    from fairseq.file_io import PathManager

    original = PathManager.copy
    if getattr(original, "_hypervq_atomic", False):
        return

    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if PathManager.path_requires_pathmanager(src_path) or PathManager.path_requires_pathmanager(dst_path):
            return original(src_path, dst_path, overwrite=overwrite)
        return atomic_copy(src_path, dst_path, overwrite=overwrite)

    copy._hypervq_atomic = True
    copy.__doc__ = atomic_copy.__doc__
    PathManager.copy = staticmethod(copy)
