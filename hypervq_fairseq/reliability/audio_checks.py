"""Manifest and audio checks with errors that name the file and the reason.

Stock fairseq (``FileAudioDataset``) trusts its manifest: a malformed line is an
``AssertionError`` carrying the raw line, a missing or undecodable file is retried three times
(with sleeps) and then reported as ``Exception("Failed to load PATH")`` without the cause, a
wrong sample rate is ``Exception("sample rate: 8000, need 16000")`` without the file, stereo
audio is silently averaged to mono, and NaN samples become a NaN loss. All of that happens
when a batch first touches the file, possibly hours into a run.

Two layers here:

* :func:`check_manifest` runs once when a split is loaded: manifest syntax (``path:line``),
  the audio root, then every listed file (exists; sample rate, channels, frame count against
  the manifest; with ``mode="full"`` also decodes the first and last block of each file, by
  reusing :func:`hypervq_fairseq.data.manifest.inspect_audio`). Every bad file is listed in one
  :class:`AudioInputError`, with the fix.
* :func:`check_waveform` runs on every read (``CheckedFileAudioDataset``), catching what a
  header cannot show: data that ends early or does not decode, and non-finite samples.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import List, Optional, Tuple

import numpy as np
import soundfile as sf

from ..data.manifest import Inspection, ManifestError, inspect_files, read_manifest

CHECK_MODES = ("full", "header", "none")
MAX_LISTED = 20  # bad files named in one error message; the count says how many more
HEADER_THREADS = 8  # libsndfile releases the GIL, so threads overlap the file opens


class AudioInputError(ManifestError):
    """A manifest or audio file that training cannot use; the message names it and why."""


def fix_hint(manifest: str) -> str:
    return (f"Fix the files, or rebuild {os.path.basename(manifest)} without them "
            f"(hypervq-manifest AUDIO_ROOT --out {os.path.dirname(manifest) or '.'} --skip-bad); "
            f"+task.audio_check=none turns these start-up checks off.")


def read_rows(manifest: str) -> Tuple[str, List[Tuple[str, int]]]:
    """(root, rows) of a fairseq manifest; a clear error for a missing, empty or malformed one."""
    if not os.path.isfile(manifest):
        folder = os.path.dirname(manifest) or "."
        present = sorted(f for f in os.listdir(folder) if f.endswith(".tsv")) if os.path.isdir(folder) else None
        where = (f"the folder holds {', '.join(present) or 'no .tsv files'}" if present is not None
                 else f"{folder} is not a folder")
        raise AudioInputError(f"manifest {manifest} not found ({where}); task.data must be the folder of "
                              f"the {os.path.basename(manifest)} manifest (write one with hypervq-manifest)")
    if os.path.getsize(manifest) == 0:
        raise AudioInputError(f"manifest {manifest} is empty: its first line must be the audio root folder")
    try:
        root, rows = read_manifest(manifest)
    except UnicodeDecodeError as e:
        raise AudioInputError(f"manifest {manifest} is not UTF-8 text ({e})") from None
    except ManifestError as e:
        raise AudioInputError(f"malformed manifest line: {e}") from None
    if not root or "\t" in root:
        raise AudioInputError(f"{manifest}:1: the first line must be the audio root folder, got {root!r}")
    if not os.path.isdir(root):
        raise AudioInputError(f"{manifest}:1: audio root {root!r} is not a folder (moved data? rebuild the manifest)")
    if not rows:
        raise AudioInputError(f"manifest {manifest} lists no audio files")
    return root, rows


def inspect_header(root: str, rel: str, sample_rate: int) -> Inspection:
    """Like ``inspect_audio`` but from the header only (one open, no decoding)."""
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        return Inspection(rel, reason="missing file")
    try:
        if os.path.getsize(path) == 0:
            return Inspection(rel, reason="empty file (0 bytes)")
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        return Inspection(rel, reason=f"unreadable: {e}")
    if info.frames == 0:
        return Inspection(rel, reason="empty: no audio frames")
    if info.samplerate != sample_rate:
        return Inspection(rel, info.frames, reason=f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        return Inspection(rel, info.frames, reason=f"{info.channels} channels, expected mono")
    return Inspection(rel, info.frames)


def _frames_agree(found: Inspection, listed: int) -> Inspection:
    if found.ok and found.frames != listed:
        return Inspection(found.path, found.frames, reason=(
            f"holds {found.frames} frames but the manifest says {listed} (truncated file or stale manifest)"))
    return found


def check_manifest(manifest: str, *, sample_rate: int = 16000, mode: str = "header",
                   workers: Optional[int] = None, progress: bool = False) -> List[Tuple[str, int]]:
    """Check a manifest and (``mode`` header/full) every file it lists; return its rows.

    Raises :class:`AudioInputError` naming the manifest line, or listing every bad file with
    its reason (missing, unreadable, empty, wrong rate, not mono, frame count off).
    """
    if mode not in CHECK_MODES:
        raise ValueError(f"audio check mode must be one of {', '.join(CHECK_MODES)}, got {mode!r}")
    root, rows = read_rows(manifest)
    if mode == "none":
        return rows
    rels = [rel for rel, _ in rows]
    if mode == "full":
        missing = [Inspection(rel, reason="missing file") for rel in rels if not os.path.exists(os.path.join(root, rel))]
        if missing:
            found = missing
        else:
            found = inspect_files(root, rels, sample_rate=sample_rate, workers=workers, progress=progress,
                                  desc=os.path.basename(manifest))
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
            found = list(pool.map(lambda rel: inspect_header(root, rel, sample_rate), rels))
    listed = dict(rows)
    bad = [r for r in (_frames_agree(f, listed[f.path]) for f in found) if not r.ok]
    if bad:
        names = "\n".join(f"  {os.path.join(root, b.path)}: {b.reason}" for b in bad[:MAX_LISTED])
        more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise AudioInputError(f"{len(bad)} bad audio file(s) in {manifest}:\n{names}{more}\n{fix_hint(manifest)}")
    return rows


def check_waveform(path: str, wav: np.ndarray, sample_rate: int, *, expected_rate: int,
                   expected_frames: Optional[int] = None) -> None:
    """Raise :class:`AudioInputError` if a decoded file is not what training needs."""
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


def read_checked(path: str, *, expected_rate: int, expected_frames: Optional[int] = None) -> np.ndarray:
    """Decode ``path`` as float32 and :func:`check_waveform` it; one clear error for any failure."""
    if not os.path.exists(path):
        raise AudioInputError(f"{path}: missing file (listed in the manifest)")
    try:
        wav, sr = sf.read(path, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioInputError(f"{path}: cannot be decoded ({e}); the file is corrupt or truncated") from None
    check_waveform(path, wav, sr, expected_rate=expected_rate, expected_frames=expected_frames)
    return wav

