"""Word and character error rates, counted over a whole subset (not averaged per utterance).

    WER = sum of word-level edit distances / number of reference words
    CER = sum of character-level edit distances / number of reference characters, where an
          utterance's characters are its words joined by single spaces (so a split or merged
          word costs one character)

Both in percent, as fairseq and the wav2vec 2.0 paper report them. Edit distances are
Levenshtein distances (substitutions, insertions, deletions all cost 1) from ``editdistance``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import editdistance


@dataclass
class ErrorCounts:
    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0
    utterances: int = 0

    def add(self, reference: str, hypothesis: str) -> "ErrorCounts":
        ref, hyp = reference.split(), hypothesis.split()
        self.word_errors += editdistance.eval(ref, hyp)
        self.words += len(ref)
        self.char_errors += editdistance.eval(" ".join(ref), " ".join(hyp))
        self.chars += len(" ".join(ref))
        self.utterances += 1
        return self

    @property
    def wer(self) -> float:
        return 100.0 * self.word_errors / self.words if self.words else float("nan")

    @property
    def cer(self) -> float:
        return 100.0 * self.char_errors / self.chars if self.chars else float("nan")

    def as_dict(self) -> dict:
        """Counts and rates; a rate is None where the references have no words (JSON has no NaN)."""
        return {**asdict(self), "wer": self.wer if self.words else None, "cer": self.cer if self.chars else None}


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorCounts:
    """Counts and rates of ``hypotheses`` against ``references`` (word strings, one per utterance)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    counts = ErrorCounts()
    for ref, hyp in zip(references, hypotheses):
        counts.add(ref, hyp)
    return counts
