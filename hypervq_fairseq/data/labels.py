"""Fine-tuning labels from LibriSpeech transcripts, in the files fairseq's ``audio_finetuning`` reads.

Why: wav2vec 2.0 is fine-tuned with CTC on characters. fairseq's ``audio_finetuning`` task
pairs each manifest ``NAME.tsv`` with a label file ``NAME.LABELS`` (same lines, same order)
and a dictionary ``dict.LABELS.txt`` in the manifest folder. This module writes, for every
manifest named:

    NAME.wrd      the transcript, words separated by single spaces (WER is computed on these)
    NAME.ltr      its letters separated by spaces, every word followed by ``|`` (the word
                  boundary symbol of fairseq's ``post_process: letter``):
                  ``C A L L | F O R W A R D |``
    NAME.spm      (optional) sentencepiece pieces separated by spaces (``post_process: sentencepiece``)
    dict.ltr.txt  ``SYMBOL COUNT`` per line, most frequent first, counted on the training manifest
    dict.spm.txt, spm.model, spm.vocab   (optional) likewise, for the sentencepiece units

Transcripts are looked up the LibriSpeech way: ``SPK/CH/SPK-CH-UTT.flac`` is line ``SPK-CH-UTT``
of ``SPK/CH/SPK-CH.trans.txt``, under the manifest's root (its first line). A missing transcript
stops everything before anything is written; all files are replaced together or not at all.
Console script: ``hypervq-labels`` (:mod:`hypervq_fairseq.tools.labels`).
"""
from __future__ import annotations

import collections
import os
import re
import tempfile
from pathlib import Path

from ..errors import ManifestError
from ..files import atomic_write_all
from .manifest import TranscriptLookup, read_manifest

WORD_BOUNDARY = "|"
_ALLOWED = re.compile(r"^[A-Z' ]*$")


class LabelError(ManifestError):
    """Bad input: a transcript with unexpected characters, a missing manifest or transcript."""


def words_of(text: str) -> str:
    """LibriSpeech transcript -> words separated by single spaces (upper case, letters and ')."""
    return " ".join(text.upper().split())


def letters_of(words: str) -> str:
    """``"CALL FORWARD"`` -> ``"C A L L | F O R W A R D |"`` (fairseq's letter targets)."""
    if not words:
        return WORD_BOUNDARY
    return " ".join(" ".join(word) + " " + WORD_BOUNDARY for word in words.split())


def letter_dictionary(letter_lines) -> list:
    """``[(symbol, count)]``, most frequent first (ties by symbol), over space-separated letter lines."""
    counts = collections.Counter(sym for line in letter_lines for sym in line.split())
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def transcripts_for(manifest) -> list:
    """The transcript of every manifest line, in order; fails naming the file on a missing one."""
    root, rows = read_manifest(manifest)
    lookup = TranscriptLookup(Path(root))
    out = []
    for rel, _frames in rows:
        try:
            words = words_of(lookup(rel))
        except LabelError:
            raise
        except ManifestError as e:
            raise LabelError(f"{manifest}: {e}") from None
        if not _ALLOWED.match(words):
            bad = sorted(set(c for c in words if not _ALLOWED.match(c)))
            raise LabelError(f"transcript of {rel} (under {root}) has characters {bad!r}; expected LibriSpeech-style "
                             f"upper-case letters, apostrophes and spaces")
        out.append(words)
    return out


def train_sentencepiece(word_lines: list, out_prefix: Path, vocab_size: int, model_type: str = "unigram") -> Path:
    """Train a sentencepiece model on ``word_lines``; return the ``.model`` path (written atomically)."""
    import sentencepiece as spm

    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_prefix.parent) as tmp:
        text = os.path.join(tmp, "text.txt")
        Path(text).write_text("\n".join(word_lines) + "\n", encoding="utf-8")
        prefix = os.path.join(tmp, "spm")
        try:
            spm.SentencePieceTrainer.train(
                input=text, model_prefix=prefix, vocab_size=vocab_size, model_type=model_type,
                character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2,
                hard_vocab_limit=False)  # small corpora: stop below vocab_size instead of failing
        except RuntimeError as e:
            raise LabelError(f"sentencepiece training failed (vocab_size={vocab_size}): {e}") from None
        for ext in ("model", "vocab"):
            os.replace(f"{prefix}.{ext}", f"{out_prefix}.{ext}")
    return Path(f"{out_prefix}.model")


def write_labels(manifest_dir, splits=("train", "valid"), *, dict_split: str = "train",
                 sentencepiece: int | None = None, spm_model_type: str = "unigram") -> dict:
    """Write ``.wrd``/``.ltr`` (and ``.spm``) for each ``SPLIT.tsv`` plus the dictionaries; return paths."""
    manifest_dir = Path(manifest_dir)
    if dict_split not in splits:
        raise LabelError(f"the dictionary split {dict_split!r} must be one of the splits {list(splits)}")
    missing = [s for s in splits if not (manifest_dir / f"{s}.tsv").is_file()]
    if missing:
        raise LabelError(f"no manifest {', '.join(str(manifest_dir / (s + '.tsv')) for s in missing)}")

    # 1. every transcript first: a missing one fails before any write
    words = {s: transcripts_for(manifest_dir / f"{s}.tsv") for s in splits}
    letters = {s: [letters_of(w) for w in lines] for s, lines in words.items()}

    # 2. words, letters, the letter dictionary
    outputs = {}
    for s in splits:
        outputs[f"{s}.wrd"], outputs[f"{s}.ltr"] = words[s], letters[s]
    outputs["dict.ltr.txt"] = [f"{sym} {n}" for sym, n in letter_dictionary(letters[dict_split])]

    # 3. optional sentencepiece units, trained on the dictionary split's words
    model = None
    if sentencepiece:
        import sentencepiece as spm

        model = train_sentencepiece(words[dict_split], manifest_dir / "spm", sentencepiece, spm_model_type)
        sp = spm.SentencePieceProcessor(model_file=str(model))
        pieces = {s: [" ".join(sp.encode(w, out_type=str)) for w in lines] for s, lines in words.items()}
        for s in splits:
            outputs[f"{s}.spm"] = pieces[s]
        outputs["dict.spm.txt"] = [f"{sym} {n}" for sym, n in letter_dictionary(pieces[dict_split])]

    atomic_write_all({manifest_dir / name: lines for name, lines in outputs.items()})
    written = {name: manifest_dir / name for name in outputs}
    if model is not None:
        written["spm.model"] = model
    return written
