"""fairseq audio manifests for LibriSpeech-layout trees, with every file validated.

Why: fairseq's ``audio_pretraining`` task reads a manifest whose first line is the audio root
and whose other lines are ``relative_path<TAB>num_frames``; it trusts those numbers for
batching and only finds a broken, 8 kHz or stereo file when a worker hits it, hours into a run.
So we open every file once, in parallel, and refuse to write a manifest over bad audio unless
asked to skip it. A file is good when soundfile can read its header, its first and its last
block, it is 16 kHz (configurable), mono, and holds at least one frame.

Outputs, all written atomically (temporary file in the same folder, then ``os.replace``; nothing
is written until every file has been inspected, so an interrupted run leaves no manifest):

    OUT/train.tsv        the training subsets together (train-clean-100 + -360 + train-other-500)
    OUT/valid.tsv        the validation subsets together (dev-clean + dev-other)
    OUT/SUBSET.tsv       one per subset
    OUT/NAME.trans       (``transcripts=True``) one transcript per manifest line, same order: the
                         hook from which a fine-tuning step derives ``.wrd``/``.ltr`` labels.

All manifests share one root (the LibriSpeech folder), so their paths start with the subset name.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Iterable

import soundfile as sf

TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
VALID_SUBSETS = ("dev-clean", "dev-other")
SAMPLE_RATE = 16000
_EDGE = 1024  # frames read at the start and at the end of each file to prove it decodes


class ManifestError(RuntimeError):
    """Bad input: missing subsets, bad audio files, missing transcripts."""


@dataclasses.dataclass(frozen=True)
class Inspection:
    """The result of opening one file: its frame count, or why it is rejected."""

    path: str  # relative to the root
    frames: int = 0
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclasses.dataclass
class SubsetSummary:
    name: str
    utterances: int = 0
    frames: int = 0
    bad: int = 0

    @property
    def hours(self) -> float:
        return self.frames / SAMPLE_RATE / 3600


@dataclasses.dataclass
class ManifestReport:
    """What :func:`build_manifests` wrote and found."""

    written: list  # paths of the files written
    subsets: list  # SubsetSummary per subset, in manifest order
    bad: list  # rejected Inspection objects

    def summary_table(self) -> str:
        rows = [f"{'subset':<20}{'utterances':>12}{'hours':>10}{'bad':>6}"]
        for s in self.subsets:
            rows.append(f"{s.name:<20}{s.utterances:>12}{s.hours:>10.2f}{s.bad:>6}")
        total = SubsetSummary("total", sum(s.utterances for s in self.subsets), sum(s.frames for s in self.subsets),
                              sum(s.bad for s in self.subsets))
        rows.append(f"{total.name:<20}{total.utterances:>12}{total.hours:>10.2f}{total.bad:>6}")
        return "\n".join(rows)


def inspect_audio(root: str, rel: str, sample_rate: int = SAMPLE_RATE) -> Inspection:
    """Open ``root/rel`` and check it is readable, ``sample_rate`` Hz, mono and not empty."""
    path = os.path.join(root, rel)
    try:
        if os.path.getsize(path) == 0:
            return Inspection(rel, reason="empty file (0 bytes)")
        with sf.SoundFile(path) as f:
            frames, sr, channels = f.frames, f.samplerate, f.channels
            if frames > 0:
                first = f.read(min(_EDGE, frames), dtype="int16")
                f.seek(max(0, frames - _EDGE))
                last = f.read(dtype="int16")
                if len(first) == 0 or len(last) != frames - max(0, frames - _EDGE):
                    return Inspection(rel, reason=f"unreadable: header says {frames} frames but the data ends early")
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        return Inspection(rel, reason=f"unreadable: {e}")
    if frames == 0:
        return Inspection(rel, reason="empty: no audio frames")
    if sr != sample_rate:
        return Inspection(rel, frames, reason=f"sample rate {sr} Hz, expected {sample_rate} Hz")
    if channels != 1:
        return Inspection(rel, frames, reason=f"{channels} channels, expected mono")
    return Inspection(rel, frames)


def _inspect_star(args) -> Inspection:
    return inspect_audio(*args)


def find_audio(root: Path, subset: str, ext: str = "flac") -> list:
    """Sorted paths (relative to ``root``) of every ``*.ext`` file under ``root/subset``."""
    base = root / subset
    return sorted(p.relative_to(root).as_posix() for p in base.rglob(f"*.{ext}") if p.is_file())


def inspect_files(root: Path, rels: list, *, sample_rate=SAMPLE_RATE, workers=None, progress=True, desc="inspect"):
    """Inspect files in parallel (processes), in input order, with a tqdm bar."""
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    jobs = [(str(root), rel, sample_rate) for rel in rels]
    bar = tqdm(total=len(jobs), desc=desc, unit="file", disable=not progress)
    try:
        if workers == 1 or len(jobs) < 64:
            out = []
            for job in jobs:
                out.append(_inspect_star(job))
                bar.update()
            return out
        chunk = max(1, min(256, len(jobs) // (workers * 8)))
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            out = []
            for result in pool.map(_inspect_star, jobs, chunksize=chunk):
                out.append(result)
                bar.update()
            return out
    finally:
        bar.close()


def write_lines_atomic(path, lines: Iterable[str]) -> None:
    """Write ``lines`` (each without newline) to ``path`` through a temp file + ``os.replace``.

    If writing fails or is interrupted part way, the temp file is removed and ``path`` keeps its
    previous content (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def manifest_lines(root: Path, entries: list) -> Iterable[str]:
    """fairseq's format: the root folder, then ``relative_path<TAB>num_frames``."""
    yield str(Path(root).resolve())
    for e in entries:
        yield f"{e.path}\t{e.frames}"


def read_manifest(path) -> tuple:
    """(root, [(relative_path, frames), ...]) from a manifest file."""
    with open(path, encoding="utf-8") as f:
        root = f.readline().rstrip("\n")
        rows = []
        for n, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].isdigit():
                raise ManifestError(f"{path}:{n}: expected 'relative_path<TAB>num_frames', got {line.strip()!r}")
            rows.append((parts[0], int(parts[1])))
    return root, rows


class TranscriptLookup:
    """LibriSpeech transcripts: ``SPK/CH/SPK-CH-UTT.flac`` -> line of ``SPK-CH.trans.txt``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache = {}

    def __call__(self, rel: str) -> str:
        audio = self.root / rel
        uid = audio.stem
        speaker_chapter = uid.rsplit("-", 1)[0]
        trans = audio.parent / f"{speaker_chapter}.trans.txt"
        if trans not in self._cache:
            if not trans.exists():
                raise ManifestError(f"no transcript file {trans} for {audio}")
            table = {}
            for line in trans.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    key, _, text = line.partition(" ")
                    table[key] = text.strip()
            self._cache[trans] = table
        try:
            return self._cache[trans][uid]
        except KeyError:
            raise ManifestError(f"{trans} has no line for utterance {uid}") from None


def build_manifests(
    root,
    out_dir,
    *,
    train_subsets=None,
    valid_subsets=None,
    ext: str = "flac",
    sample_rate: int = SAMPLE_RATE,
    skip_bad: bool = False,
    transcripts: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ManifestReport:
    """Inspect LibriSpeech-layout subsets under ``root`` and write manifests into ``out_dir``.

    train_subsets / valid_subsets: subset folder names; default: whichever of LibriSpeech's
    training (validation) subsets are present. Named subsets must exist.
    Raises :class:`ManifestError` listing every bad file unless ``skip_bad``.
    """
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise ManifestError(f"audio root {root} is not a folder")
    groups = {}
    for split, chosen, default in (("train", train_subsets, TRAIN_SUBSETS), ("valid", valid_subsets, VALID_SUBSETS)):
        if chosen is None:
            chosen = [s for s in default if (root / s).is_dir()]
        else:
            missing = [s for s in chosen if not (root / s).is_dir()]
            if missing:
                raise ManifestError(f"subset folder(s) {', '.join(str(root / s) for s in missing)} not found")
        groups[split] = list(chosen)
    if not groups["train"] and not groups["valid"]:
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ManifestError(
            f"no LibriSpeech subsets under {root} (looked for {', '.join(TRAIN_SUBSETS + VALID_SUBSETS)}; "
            f"found {', '.join(present) or 'nothing'}); name yours with --train-subsets/--valid-subsets")

    # 1. Inspect everything before writing anything.
    results, summaries, bad = {}, {}, []
    for subset in dict.fromkeys(groups["train"] + groups["valid"]):
        rels = find_audio(root, subset, ext)
        if not rels:
            raise ManifestError(f"no *.{ext} files under {root / subset}")
        inspected = inspect_files(root, rels, sample_rate=sample_rate, workers=workers, progress=progress, desc=subset)
        results[subset] = [r for r in inspected if r.ok]
        summary = SubsetSummary(subset, len(results[subset]), sum(r.frames for r in results[subset]))
        summary.bad = len(inspected) - summary.utterances
        summaries[subset] = summary
        bad += [r for r in inspected if not r.ok]
    if bad and not skip_bad:
        listing = "\n".join(f"  {root / b.path}: {b.reason}" for b in bad)
        raise ManifestError(f"{len(bad)} bad audio file(s) (use --skip-bad to leave them out):\n{listing}")

    # 2. Manifests (and transcripts), each atomically.
    plan = {name: results[name] for name in summaries}
    for split in ("train", "valid"):
        if groups[split]:
            plan[split] = [e for s in groups[split] for e in results[s]]
    lookup = TranscriptLookup(root) if transcripts else None
    labels = {}
    if lookup is not None:  # resolve all transcripts first: a missing one fails before any write
        labels = {name: [lookup(e.path) for e in entries] for name, entries in plan.items()}
    written = []
    for name, entries in plan.items():
        write_lines_atomic(out_dir / f"{name}.tsv", manifest_lines(root, entries))
        written.append(out_dir / f"{name}.tsv")
        if lookup is not None:
            write_lines_atomic(out_dir / f"{name}.trans", labels[name])
            written.append(out_dir / f"{name}.trans")
    return ManifestReport(written, list(summaries.values()), bad)
