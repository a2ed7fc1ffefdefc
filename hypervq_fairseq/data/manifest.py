"""fairseq audio manifests for LibriSpeech-layout trees, with every file validated.

Why: fairseq's ``audio_pretraining`` task reads a manifest whose first line is the audio root
and whose other lines are ``relative_path<TAB>num_frames``; it trusts those numbers for
batching and only finds a broken, 8 kHz or stereo file when a worker hits it, hours into a run.
So we open every file once, in parallel, and refuse to write a manifest over bad audio unless
asked to skip it. A file is good when soundfile can read its header, its first and its last
block, it is 16 kHz (configurable), mono, and holds at least one frame.

Outputs, written together (:func:`hypervq_fairseq.files.atomic_write_all`: nothing is written
until every file has been inspected, then every output is staged before any is replaced, so an
interrupted or failing run leaves the previous set untouched):

    OUT/train.tsv        the training subsets together (train-clean-100 + -360 + train-other-500)
    OUT/valid.tsv        the validation subsets together (dev-clean + dev-other)
    OUT/SUBSET.tsv       one per subset
    OUT/NAME.trans       (``transcripts=True``) one transcript per manifest line, same order: the
                         hook from which a fine-tuning step derives ``.wrd``/``.ltr`` labels.

All manifests share one root (the LibriSpeech folder), so their paths start with the subset name.
A file name that a manifest line cannot hold (a TAB, a newline, bytes that are not UTF-8) is
refused by name, since fairseq would split it into a broken line.

The same module reads manifests for everyone (:func:`read_manifest`) and checks one before
training (:func:`check_manifest`).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from ..errors import AudioInputError, BadAudioFilesError, ManifestError
from ..files import atomic_write_all
from .audio import DEPTHS, Inspection, inspect_files

TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
VALID_SUBSETS = ("dev-clean", "dev-other")
SAMPLE_RATE = 16000
MAX_LISTED = 20  # bad files named in one error message; the count says how many more
CHECK_MODES = ("none",) + DEPTHS  # task.audio_check: none, header, edges, full


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


def _unusable_name(rel: str) -> Optional[str]:
    """Why a relative path cannot be a manifest entry, or None."""
    if "\t" in rel or "\n" in rel or "\r" in rel:
        return "its name holds a TAB or a line break, which would split its manifest line"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 (fairseq reads manifests as UTF-8 text); rename it"
    return None


def _is_ancestor(target: str, folder: str) -> bool:
    """True when ``target`` is ``folder`` or one of the folders above it (real paths)."""
    return folder == target or folder.startswith(target.rstrip(os.sep) + os.sep)


def find_audio(root: Path, subset: str, ext: str = "flac") -> list:
    """Sorted paths (relative to ``root``) of every ``*.ext`` file under ``root/subset``.

    Symlinked speaker or chapter folders are followed (corpora are often assembled from links);
    a link back to a folder already being walked is not entered again, so a loop ends.
    Raises :class:`ManifestError` naming every file whose name a manifest line cannot hold.
    """
    base = root / subset
    rels = []
    for folder, dirs, names in os.walk(base, followlinks=True):
        here = os.path.realpath(folder)
        # prune links to this folder or one above it (a loop): their contents are already being walked
        dirs[:] = [d for d in dirs if not _is_ancestor(os.path.realpath(os.path.join(folder, d)), here)]
        rel_folder = Path(folder).relative_to(root)
        rels += [(rel_folder / n).as_posix() for n in names
                 if n.endswith(f".{ext}") and os.path.isfile(os.path.join(folder, n))]
    rels.sort()
    bad = [(rel, why) for rel in rels if (why := _unusable_name(rel))]
    if bad:
        listing = "\n".join(f"  {os.fsencode(str(root / rel))!r}: {why}" for rel, why in bad[:MAX_LISTED])
        raise ManifestError(f"{len(bad)} file name(s) under {base} cannot go into a manifest:\n{listing}")
    return rels


def manifest_lines(root: Path, entries: list) -> Iterable[str]:
    """fairseq's format: the root folder, then ``relative_path<TAB>num_frames``."""
    yield str(Path(root).resolve())
    for e in entries:
        yield f"{e.path}\t{e.frames}"


_FRAMES = re.compile(r"[0-9]+")


def read_manifest(path, *, role: str = "manifest") -> Tuple[str, List[Tuple[str, int]]]:
    """``(root, [(relative_path, frames), ...])`` of a fairseq manifest, the one reader of the project.

    Raises :class:`ManifestError` naming the file (and ``file:line``) for a missing, empty, non-UTF-8
    or malformed manifest (a frame count in other than ASCII digits included), an entry that leaves
    the audio root (an absolute path, or ``..``: a manifest reads only under the root it names),
    an audio root that is not a folder, or a manifest without audio files.
    """
    path = str(path)
    if not os.path.isfile(path):
        folder = os.path.dirname(path) or "."
        present = sorted(f for f in os.listdir(folder) if f.endswith(".tsv")) if os.path.isdir(folder) else None
        where = (f"the folder holds {', '.join(present) or 'no .tsv files'}" if present is not None
                 else f"{folder} is not a folder")
        raise ManifestError(f"{role} {path} not found ({where}); write manifests with hypervq-manifest")
    if os.path.getsize(path) == 0:
        raise ManifestError(f"{role} {path} is empty: its first line must be the audio root folder")
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            root = f.readline().rstrip("\n")
            for n, line in enumerate(f, start=2):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 2 or not _FRAMES.fullmatch(parts[1]):  # not isdigit(): it accepts '²'
                    raise ManifestError(f"malformed manifest line: {path}:{n}: expected 'relative_path<TAB>num_frames', "
                                        f"got {line.strip()!r}")
                if os.path.isabs(parts[0]) or ".." in Path(parts[0]).parts:
                    raise ManifestError(f"{path}:{n}: {parts[0]!r} leaves the audio root: entries must be paths "
                                        f"relative to the root on line 1, without '..'")
                rows.append((parts[0], int(parts[1])))
    except UnicodeDecodeError as e:
        raise ManifestError(f"{role} {path} is not UTF-8 text ({e})") from None
    if not root or "\t" in root:
        raise ManifestError(f"{path}:1: the first line must be the audio root folder, got {root!r}")
    if not os.path.isdir(root):
        raise ManifestError(f"{path}:1: audio root {root!r} is not a folder (moved data? rebuild the manifest)")
    if not rows:
        raise ManifestError(f"{role} {path} lists no audio files")
    return root, rows


def fix_hint(manifest: str) -> str:
    return (f"Fix the files, or rebuild {os.path.basename(manifest)} without them "
            f"(hypervq-manifest AUDIO_ROOT --out {os.path.dirname(manifest) or '.'} --skip-bad); "
            f"+task.audio_check=none turns these start-up checks off.")


def check_manifest(manifest: str, *, sample_rate: int = 16000, mode: str = "header",
                   workers: Optional[int] = None, progress: bool = False) -> List[Tuple[str, int]]:
    """Check a manifest and every file it lists at depth ``mode`` (see ``data.audio``); return its rows.

    ``mode`` is ``none`` (the manifest's syntax only), ``header``, ``edges`` or ``full``. Raises
    :class:`AudioInputError` naming the manifest line, or listing every bad file with its reason
    (missing, unreadable, empty, wrong rate, not mono, frame count off, damaged data).
    """
    if mode not in CHECK_MODES:
        raise ValueError(f"audio check mode must be one of {', '.join(CHECK_MODES)}, got {mode!r}")
    try:
        root, rows = read_manifest(manifest)
    except ManifestError as e:
        raise AudioInputError(str(e)) from None
    if mode == "none":
        return rows
    found = inspect_files(root, [rel for rel, _ in rows], sample_rate=sample_rate, depth=mode, workers=workers,
                          progress=progress, desc=os.path.basename(manifest))
    listed = dict(rows)
    bad = []
    for f in found:
        if f.ok and f.frames != listed[f.path]:
            f = Inspection(f.path, f.frames, reason=f"holds {f.frames} frames but the manifest says {listed[f.path]} "
                                                    f"(truncated file or stale manifest)")
        if not f.ok:
            bad.append(f)
    if bad:
        names = "\n".join(f"  {os.path.join(root, b.path)}: {b.reason}" for b in bad[:MAX_LISTED])
        more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise BadAudioFilesError(f"{len(bad)} bad audio file(s) in {manifest}:\n{names}{more}\n{fix_hint(manifest)}",
                                 [(os.path.join(root, b.path), b.reason) for b in bad])
    return rows


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
    verify: str = "edges",
    workers: int | None = None,
    progress: bool = True,
) -> ManifestReport:
    """Inspect LibriSpeech-layout subsets under ``root`` and write manifests into ``out_dir``.

    train_subsets / valid_subsets: subset folder names; default: whichever of LibriSpeech's
    training (validation) subsets are present. Named subsets must exist.
    verify: how deep each file is checked (``header``, ``edges`` or ``full``: see ``data.audio``).
    Raises :class:`ManifestError` listing every bad file unless ``skip_bad``; the output folder is
    checked first, so a folder that cannot be written fails before the (long) scan.
    """
    from ..files import check_writable_folder

    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise ManifestError(f"audio root {root} is not a folder")
    check_writable_folder(out_dir, what="--out")
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
        inspected = inspect_files(root, rels, sample_rate=sample_rate, depth=verify, workers=workers,
                                  progress=progress, desc=subset)
        results[subset] = [r for r in inspected if r.ok]
        summary = SubsetSummary(subset, len(results[subset]), sum(r.frames for r in results[subset]))
        summary.bad = len(inspected) - summary.utterances
        summaries[subset] = summary
        bad += [r for r in inspected if not r.ok]
    if bad and not skip_bad:
        listing = "\n".join(f"  {root / b.path}: {b.reason}" for b in bad)
        raise ManifestError(f"{len(bad)} bad audio file(s) (use --skip-bad to leave them out):\n{listing}")

    # 2. Manifests (and transcripts), all replaced together or none.
    plan = {name: results[name] for name in summaries}
    for split in ("train", "valid"):
        if groups[split]:
            plan[split] = [e for s in groups[split] for e in results[s]]
    lookup = TranscriptLookup(root) if transcripts else None
    labels = {}
    if lookup is not None:  # resolve all transcripts first: a missing one fails before any write
        labels = {name: [lookup(e.path) for e in entries] for name, entries in plan.items()}
    outputs = {}
    for name, entries in plan.items():
        outputs[out_dir / f"{name}.tsv"] = list(manifest_lines(root, entries))
        if lookup is not None:
            outputs[out_dir / f"{name}.trans"] = labels[name]
    written = atomic_write_all(outputs)
    return ManifestReport(written, list(summaries.values()), bad)
