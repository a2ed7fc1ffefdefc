"""Phone alignment files (``SPLIT.phn``): one line per phone segment, beside the manifest ``SPLIT.tsv``.

Format (UTF-8 text, TAB-separated, ``#`` lines are comments)::

    # phone alignment: utterance<TAB>start<TAB>end<TAB>phone
    dev-demo/9001/100/9001-100-0002.flac	0.0000	0.0700	P
    dev-demo/9001/100/9001-100-0002.flac	0.0700	0.1400	L
    ...

- ``utterance``: the audio path exactly as the manifest lists it (relative to its root line);
- ``start``, ``end``: seconds from the start of the file, ``start < end``; segments of one
  utterance are in time order and do not overlap (gaps are allowed: unaligned time);
- ``phone``: ARPAbet without stress (:data:`~.phones.PHONES`) or ``SIL`` for silence. Files made
  by other aligners may use stress digits, lower case or flite's symbols: they are mapped on
  reading (:func:`~.phones.normalize_phone`).

An utterance without lines has no alignment (skipped: a word missing from the dictionary, a
failed alignment, speech that is not English). ``hypervq-align`` also writes the sidecar
``SPLIT.phn.json`` (why each utterance was skipped, the fingerprint of each aligned file); the
evaluation uses it when present and works from the ``.phn`` alone otherwise, so alignments
from another tool can be converted to this format and used as they are.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from ...errors import ManifestError
from .phones import normalize_phone

HEADER = "# phone alignment: utterance<TAB>start<TAB>end<TAB>phone (seconds; ARPAbet without stress, SIL = silence)"
OVERLAP_TOLERANCE = 1e-6  # seconds: rounding of the 4-decimal times


class AlignmentError(ManifestError):
    """A phone alignment that is missing, malformed, or does not belong to the audio it is used with."""


class Segment(NamedTuple):
    start: float
    end: float
    phone: str


def phn_path(manifest) -> Path:
    """``SPLIT.phn`` beside ``SPLIT.tsv``."""
    return Path(manifest).with_suffix(".phn")


def sidecar_path(phn) -> Path:
    phn = Path(phn)
    return phn.with_name(phn.name + ".json")


def format_segments(key: str, segments: List[Segment]) -> List[str]:
    return [f"{key}\t{s.start:.4f}\t{s.end:.4f}\t{s.phone}" for s in segments]


def check_segments(segments: List[Segment], where: str) -> None:
    """Time order, no overlap, positive length: the properties every reader relies on."""
    previous_end = 0.0
    for s in segments:
        if not (s.start >= 0 and s.end > s.start):
            raise AlignmentError(f"{where}: segment {s.phone} [{s.start}, {s.end}) must have 0 <= start < end")
        if s.start < previous_end - OVERLAP_TOLERANCE:
            raise AlignmentError(f"{where}: segment {s.phone} starting at {s.start} overlaps the previous one "
                                 f"(ends at {previous_end}); segments must be in time order")
        previous_end = s.end


def read_phn(path) -> Dict[str, List[Segment]]:
    """utterance -> segments in time order, from a ``.phn`` file; named errors with ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"no phone alignment {path}: run hypervq-align {path.parent} --splits {path.stem}")
    out: Dict[str, List[Segment]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 4:
                    raise AlignmentError(f"{path}:{n}: expected 'utterance<TAB>start<TAB>end<TAB>phone', got {line.strip()!r}")
                key, start, end, phone = parts
                try:
                    segment = Segment(float(start), float(end), normalize_phone(phone))
                except ValueError as e:  # float() and normalize_phone's InputError
                    raise AlignmentError(f"{path}:{n}: {e}") from None
                out.setdefault(key, []).append(segment)
    except UnicodeDecodeError as e:
        raise AlignmentError(f"{path} is not UTF-8 text ({e})") from None
    for key, segments in out.items():
        check_segments(segments, f"{path}, utterance {key}")
    return out


def read_sidecar(phn) -> Optional[dict]:
    """The ``SPLIT.phn.json`` written by ``hypervq-align``, or None when there is none."""
    meta = sidecar_path(phn)
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlignmentError(f"{meta} is not the JSON sidecar hypervq-align writes ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("utterances"), dict):
        raise AlignmentError(f"{meta} lacks 'utterances': not a sidecar of hypervq-align")
    return data


__all__ = ["AlignmentError", "Segment", "HEADER", "phn_path", "sidecar_path", "read_phn", "read_sidecar",
           "format_segments", "check_segments"]
