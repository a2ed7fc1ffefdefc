"""``hypervq-align``'s work: phone alignments for the manifests of a folder, cached by audio fingerprint.

For each ``SPLIT.tsv`` named, the transcripts come from ``SPLIT.wrd`` (one line per manifest
line, as ``hypervq-labels`` and ``recipes/librispeech/06_labels.sh`` write it) or, without one,
from the LibriSpeech-style ``*.trans.txt`` files under the manifest's audio root. Every
utterance is then either aligned (:class:`~.sphinx.SphinxAligner`) or skipped with its reason:

- ``missing_words``: a word of its transcript is not in the pronunciation dictionary (the
  words are listed; nothing is guessed);
- ``failed``: the aligner could not fit the transcript to the audio;
- ``not_selected``: its speaker is not among those asked for (``speakers=``; in the demo
  corpus, by default, every voice but the English and synthetic ones, whose transcripts are
  translations).

``SPLIT.phn`` (format in :mod:`.phn`) and its sidecar ``SPLIT.phn.json`` are written together,
atomically. The sidecar keeps, per utterance, a fingerprint (sha256) of the audio file, the
transcript and the outcome, so a second run re-aligns only files whose audio or transcript
changed and reuses everything else (alignments made by flite, :mod:`.synthetic`, included).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from ...errors import ManifestError
from ...files import atomic_write_all, check_writable_folder
from ..labels import transcripts_for as librispeech_transcripts
from ..manifest import read_manifest
from .phn import HEADER, AlignmentError, Segment, format_segments, phn_path, read_phn, read_sidecar, sidecar_path
from .phones import PHONES, SILENCE
from .speakers import english_speakers, speaker_of

FORMAT = "hypervq-align 1"
PHONE_SET = f"ARPAbet without stress ({len(PHONES)} phones) and {SILENCE} for silence"


@dataclasses.dataclass
class AlignReport:
    """What one split's alignment did."""

    split: str
    phn: Path
    utterances: int
    aligned: int = 0  # newly aligned in this run
    reused: int = 0  # taken from the previous SPLIT.phn (audio and transcript unchanged)
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)  # utterance -> reason
    missing_words: Counter = dataclasses.field(default_factory=Counter)

    @property
    def with_phones(self) -> int:
        return self.utterances - len(self.skipped)

    def summary(self) -> str:
        kinds = Counter(reason.split(":", 1)[0] for reason in self.skipped.values())
        lines = [f"{self.phn}: {self.with_phones} of {self.utterances} utterances aligned "
                 f"({self.aligned} now, {self.reused} reused)"]
        if kinds:
            lines.append("  skipped: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in kinds.most_common()))
        if self.missing_words:
            shown = ", ".join(f"{w} ({n})" for w, n in self.missing_words.most_common(20))
            more = len(self.missing_words) - 20
            lines.append(f"  words not in the dictionary: {shown}{f', ... {more} more' if more > 0 else ''}")
        return "\n".join(lines)


def audio_fingerprint(path) -> str:
    """sha256 of the audio file's bytes (first 16 hex digits): a changed file is re-aligned."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def transcripts_of(manifest: Path, keys: List[str]) -> List[str]:
    """One transcript per manifest line: ``SPLIT.wrd`` if present, else LibriSpeech ``*.trans.txt`` files."""
    wrd = manifest.with_suffix(".wrd")
    if wrd.is_file():
        lines = wrd.read_text(encoding="utf-8").splitlines()
        if len(lines) != len(keys):
            raise AlignmentError(f"{wrd} has {len(lines)} lines but {manifest} lists {len(keys)} files: "
                                 f"rewrite it with hypervq-labels")
        return [" ".join(line.split()) for line in lines]
    try:
        return librispeech_transcripts(manifest)
    except ManifestError as e:  # names the missing transcript file or line
        raise AlignmentError(f"no transcripts for {manifest}: no {wrd.name} (hypervq-labels writes it), and {e}") from None


def _entry(fingerprint: str, text: str, status: str, source: str, reason: Optional[str] = None) -> dict:
    out = {"audio": fingerprint, "text": text, "status": status, "source": source}
    if reason:
        out["reason"] = reason
    return out


def write_alignment(phn: Path, manifest_name: str, keys: Iterable[str], segments: Dict[str, List[Segment]],
                    entries: Dict[str, dict]) -> None:
    """``SPLIT.phn`` (manifest order) and its sidecar, both or neither."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sphinx_version = version("pocketsphinx")
    except PackageNotFoundError:
        sphinx_version = None
    lines = [HEADER]
    for key in keys:
        lines += format_segments(key, segments.get(key, []))
    meta = {"format": FORMAT, "phone_set": PHONE_SET, "manifest": manifest_name,
            "aligners": {"pocketsphinx": sphinx_version, "pocketsphinx_model": "en-us (bundled)",
                         "flite": "flite -psdur (voices slt, rms, awb)"},
            "utterances": entries}
    atomic_write_all({phn: lines, sidecar_path(phn): json.dumps(meta, indent=1) + "\n"})


def align_split(manifest_dir, split: str = "valid", *, speakers: Optional[Iterable[str]] = None,
                force: bool = False, progress: bool = True) -> AlignReport:
    """Write ``SPLIT.phn`` for ``manifest_dir/SPLIT.tsv``; see the module docstring."""
    from tqdm import tqdm

    from ..audio import read_audio

    manifest_dir = Path(manifest_dir)
    manifest = manifest_dir / f"{split}.tsv"
    root, rows = read_manifest(manifest)
    check_writable_folder(manifest_dir, what="manifest folder")
    keys = [k for k, _ in rows]
    texts = transcripts_of(manifest, keys)
    phn = phn_path(manifest)
    chosen = {str(s) for s in speakers} if speakers is not None else english_speakers(root)

    # 1. what a previous run left: segments and per-utterance outcomes
    old_meta = None if force else read_sidecar(phn)
    old_entries = old_meta["utterances"] if old_meta else {}
    old_segments = read_phn(phn) if old_meta and phn.is_file() else {}

    report = AlignReport(split, phn, len(keys))
    entries: Dict[str, dict] = {}
    segments: Dict[str, List[Segment]] = {}
    aligner = None
    bar = tqdm(list(zip(keys, texts)), desc=f"align {split}", unit="utt", disable=not progress)
    for key, text in bar:
        path = os.path.join(root, key)
        fingerprint = audio_fingerprint(path)
        speaker = speaker_of(key)
        if chosen is not None and speaker not in chosen:
            reason = f"not_selected: speaker {speaker} (transcripts of other voices are not what they say)"
            entries[key] = _entry(fingerprint, text, "skipped", "-", reason)
            report.skipped[key] = reason
            continue

        # 2. reuse an unchanged utterance's outcome
        old = old_entries.get(key)
        if old and old.get("audio") == fingerprint and old.get("text") == text and old.get("status") in (
                "aligned", "skipped") and not str(old.get("reason", "")).startswith("not_selected"):
            if old["status"] == "aligned" and key in old_segments:
                entries[key], segments[key] = old, old_segments[key]
                report.reused += 1
                continue
            if old["status"] == "skipped":
                entries[key] = old
                report.skipped[key] = old["reason"]
                report.reused += 1
                for w in old.get("missing_words", []):
                    report.missing_words[w] += 1
                continue

        # 3. align it (the decoder is loaded only when something needs aligning)
        if aligner is None:
            from .sphinx import SphinxAligner

            aligner = SphinxAligner()
        missing = aligner.missing_words(text)
        if missing:
            reason = f"missing_words: {' '.join(missing)}"
            entries[key] = {**_entry(fingerprint, text, "skipped", "pocketsphinx", reason), "missing_words": missing}
            report.skipped[key] = reason
            report.missing_words.update(missing)
            continue
        try:
            found = aligner.align(read_audio(path), text)
        except AlignmentError as e:
            reason = f"failed: {e}"
            entries[key] = _entry(fingerprint, text, "skipped", "pocketsphinx", reason)
            report.skipped[key] = reason
            continue
        entries[key], segments[key] = _entry(fingerprint, text, "aligned", "pocketsphinx"), found
        report.aligned += 1
        bar.set_postfix(aligned=report.aligned + report.reused, skipped=len(report.skipped))
    bar.close()

    # 4. the alignment and its sidecar, together
    write_alignment(phn, manifest.name, keys, segments, entries)
    return report


def align_manifest_dir(manifest_dir, splits=("valid",), **kwargs) -> List[AlignReport]:
    """:func:`align_split` for each split; every manifest is checked before the first is aligned."""
    manifest_dir = Path(manifest_dir)
    if not manifest_dir.is_dir():
        raise AlignmentError(f"{manifest_dir} is not a folder of manifests")
    missing = [s for s in splits if not (manifest_dir / f"{s}.tsv").is_file()]
    if missing:
        present = sorted(p.stem for p in manifest_dir.glob("*.tsv"))
        raise AlignmentError(f"no manifest {', '.join(f'{s}.tsv' for s in missing)} in {manifest_dir} "
                             f"(it holds: {', '.join(present) or 'no .tsv files'})")
    return [align_split(manifest_dir, s, **kwargs) for s in splits]
