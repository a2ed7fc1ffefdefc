"""Reading and checking audio: one reader, one set of errors, for every part of the project.

Why: wav2vec 2.0 training, tokenization, unit evaluation and the manifest builder all read the
same files, and a LibriSpeech-scale run always meets a bad one. Stock fairseq retries a failing
read three times and then says ``Failed to load PATH`` without the cause, averages stereo to mono
silently, and turns NaN samples into a NaN loss; a reader of our own that did less would let
one NaN sample tokenize a whole utterance to code 0. Here every failure is an
:class:`~hypervq_fairseq.errors.AudioInputError` that names the file and the reason:

* :func:`read_audio` decodes a file to float32 mono and checks rate, channels, frame count and
  finite samples (used by the validating task, ``hypervq-tokenize`` and ``hypervq-unit-eval``);
* :func:`inspect_audio` checks a file without keeping the samples, at one of three depths
  (``header``: open and read the header; ``edges``: also decode the first and last block, which
  finds truncated files; ``full``: decode every frame, which also finds damage in the middle and
  non-finite samples), and :func:`inspect_files` runs it over many files in parallel with a
  progress bar.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

from ..errors import AudioInputError

DEPTHS = ("header", "edges", "full")
EDGE_FRAMES = 1024  # frames decoded at each end of a file by the "edges" check
FULL_BLOCK = 1 << 18  # frames decoded at a time by the "full" check (bounded memory)
_SF_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError)


@dataclasses.dataclass(frozen=True)
class Inspection:
    """The result of checking one file: its frame count, or why it is rejected."""

    path: str  # as given (relative to the root, for manifests)
    frames: int = 0
    reason: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _decode_all(f: sf.SoundFile, frames: int) -> Optional[str]:
    """Decode every frame of an open file; the reason it fails, or None."""
    seen = 0
    while True:
        block = f.read(FULL_BLOCK, dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        if not np.isfinite(block).all():
            return f"{int((~np.isfinite(block)).sum())} non-finite (NaN/inf) samples near frame {seen}"
        seen += len(block)
    if seen != frames:
        return f"header says {frames} frames but only {seen} decode (damaged or truncated data)"
    return None


def _decode_edges(f: sf.SoundFile, frames: int) -> Optional[str]:
    first = f.read(min(EDGE_FRAMES, frames), dtype="int16")
    f.seek(max(0, frames - EDGE_FRAMES))
    last = f.read(dtype="int16")
    if len(first) == 0 or len(last) != frames - max(0, frames - EDGE_FRAMES):
        return f"header says {frames} frames but the data ends early"
    return None


def inspect_audio(path: str, *, sample_rate: int = 16000, depth: str = "edges", name: Optional[str] = None) -> Inspection:
    """Check that ``path`` is readable, ``sample_rate`` Hz, mono and not empty, at ``depth``."""
    if depth not in DEPTHS:
        raise ValueError(f"inspection depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
    name = path if name is None else name
    if not os.path.exists(path):
        return Inspection(name, reason="missing file")
    try:
        if os.path.isdir(path):
            return Inspection(name, reason="is a folder, not an audio file")
        if os.path.getsize(path) == 0:
            return Inspection(name, reason="empty file (0 bytes)")
        with sf.SoundFile(path) as f:
            frames, sr, channels = f.frames, f.samplerate, f.channels
            if frames == 0:
                return Inspection(name, reason="empty: no audio frames")
            if sr != sample_rate:
                return Inspection(name, frames, reason=f"sample rate {sr} Hz, expected {sample_rate} Hz")
            if channels != 1:
                return Inspection(name, frames, reason=f"{channels} channels, expected mono")
            problem = None
            if depth == "edges":
                problem = _decode_edges(f, frames)
            elif depth == "full":
                problem = _decode_all(f, frames)
    except _SF_ERRORS as e:
        return Inspection(name, reason=f"unreadable: {e}")
    return Inspection(name, frames, reason=problem and f"unreadable: {problem}")


def _inspect_job(job) -> Inspection:
    root, rel, sample_rate, depth = job
    return inspect_audio(os.path.join(root, rel), sample_rate=sample_rate, depth=depth, name=rel)


def inspect_files(root, rels: Sequence[str], *, sample_rate: int = 16000, depth: str = "edges",
                  workers: Optional[int] = None, progress: bool = True, desc: str = "inspect") -> list:
    """:func:`inspect_audio` on ``root/rel`` for every ``rel``, in input order, with a progress bar.

    Header checks run in threads (libsndfile releases the GIL while it opens files); decoding
    checks run in ``workers`` processes (default: all CPUs).
    """
    from tqdm import tqdm

    jobs = [(str(root), rel, sample_rate, depth) for rel in rels]
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(jobs), desc=desc, unit="file", disable=not progress) as bar:
        if workers == 1 or len(jobs) < 64:
            pool, chunk = None, 1
        elif depth == "header":
            pool, chunk = concurrent.futures.ThreadPoolExecutor(max_workers=8), 1
        else:
            pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
            chunk = max(1, min(256, len(jobs) // (workers * 8)))
        out = []
        results = map(_inspect_job, jobs) if pool is None else pool.map(_inspect_job, jobs, chunksize=chunk)
        try:
            for result in results:
                out.append(result)
                bar.update()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return out


def check_waveform(path: str, wav: np.ndarray, sample_rate: int, *, expected_rate: int,
                   expected_frames: Optional[int] = None) -> None:
    """Raise :class:`AudioInputError` if decoded samples are not what the model needs."""
    channels = 1 if wav.ndim == 1 else wav.shape[1]
    if sample_rate != expected_rate:
        raise AudioInputError(f"{path}: sample rate {sample_rate} Hz, expected {expected_rate} Hz "
                              f"(resample it, e.g. sox IN -r {expected_rate} OUT)")
    if channels != 1:
        raise AudioInputError(f"{path}: {channels} channels, expected mono (mix it down, e.g. sox IN -c 1 OUT)")
    if wav.shape[0] == 0:
        raise AudioInputError(f"{path}: no audio frames")
    if expected_frames is not None and wav.shape[0] != expected_frames:
        raise AudioInputError(f"{path}: decoded {wav.shape[0]} frames but the manifest says {expected_frames} "
                              f"(truncated file or stale manifest)")
    if not np.isfinite(wav).all():
        bad = int((~np.isfinite(wav)).sum())
        raise AudioInputError(f"{path}: {bad} non-finite (NaN/inf) samples")


def read_audio(path: str, *, expected_rate: int = 16000, expected_frames: Optional[int] = None) -> np.ndarray:
    """Decode ``path`` to float32 mono samples and :func:`check_waveform` them; one clear error for any failure."""
    if not os.path.exists(path):
        raise AudioInputError(f"{path}: missing file (listed in the manifest)")
    try:
        wav, sr = sf.read(path, dtype="float32", always_2d=False)
    except _SF_ERRORS as e:
        raise AudioInputError(f"{path}: cannot be decoded ({e}); the file is corrupt or truncated") from None
    check_waveform(path, wav, sr, expected_rate=expected_rate, expected_frames=expected_frames)
    return wav
