"""Word n-gram language models in ARPA format, and the letter lexicon a CTC beam search needs.

The LM: interpolated modified Kneser-Ney (Chen and Goodman, 1998), the estimate KenLM's
``lmplz`` makes, counted on the training transcripts (``train.wrd``) and written as an ARPA file
that KenLM (hence flashlight's decoder) loads. Why our own counter: the pip ``kenlm`` package has
query bindings only (no ``lmplz``), and ``arpabo`` 0.3.0 writes models whose probabilities do not
sum to one (its Good-Turing and Kneser-Ney back-off weights are fixed at 1, so for a seen history
the next-word probabilities add up to more than 1), which a decoder's LM weight cannot undo.
The whole estimate is the few functions below, checked against a hand-computed model in
``tests/test_decode.py``. Every n-gram is kept in memory (Python dicts), so memory grows with the
number of distinct n-grams (docs/asr.md has a measurement): meant for fine-tuning transcripts, not
for LibriSpeech's LM text corpus (use the official ``4-gram.arpa`` for that).

Estimate, for an n-gram ``h w`` (history ``h``, n-1 words) of order n:

    a(h w)   its count at the highest order; at lower orders the number of distinct words seen
             just before it (its continuation count), except for n-grams that start with <s>
             (nothing precedes <s>), which keep their count
    D_n(k)   three discounts per order, for a = 1, 2 and >= 3, from the count-of-counts t_1..t_4 of
             the a's of that order: Y = t1 / (t1 + 2 t2), D(k) = k - (k + 1) Y t_(k+1) / t_k;
             where that is undefined or out of [0, k] (tiny corpora), lmplz's fallback 0.5, 1, 1.5
    p(w|h)   = (a(h w) - D_n(a(h w))) / sum_x a(h x)  +  gamma(h) p(w|h')     (h' = h minus its first word)
    gamma(h) = sum_k D_n(k) N_k(h) / sum_x a(h x)     (N_k(h): words x with a(h x) = k, k = 3 meaning >= 3)

and at order 1 the lower-order distribution is uniform over the vocabulary (words, </s> and
<unk>). The ARPA file holds p(w|h) for every n-gram seen and log10 gamma(h) as the back-off
weight of each history, which gives the same probabilities for unseen n-grams.

The lexicon: one line per word, ``WORD<TAB>W O R D |``: the word, then its spelling in the
fine-tuning letter dictionary (``dict.ltr.txt``), letters separated by spaces and ending with the
word boundary ``|`` exactly as the ``.ltr`` targets spell words (flashlight's lexicon format:
the word, then one spelling's tokens, whitespace-separated).
"""
from __future__ import annotations

import collections
import gzip
import math
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from ..errors import InputError
from ..files import atomic_write

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
WORD_BOUNDARY = "|"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
NO_PROB = -99.0  # log10 probability written for <s>, which the model never predicts

Ngram = Tuple[str, ...]


class LMError(InputError):
    """Transcripts, an ARPA file, a lexicon or a dictionary that cannot be used."""


# ----------------------------------------------------------------------------- counting


def read_sentences(paths: Iterable) -> List[List[str]]:
    """Word lists, one per non-empty line of each transcript file (``.wrd``: words separated by spaces)."""
    out = []
    for path in paths:
        if not os.path.isfile(path):
            raise LMError(f"transcript file {path} not found")
        with open(path, encoding="utf-8") as f:
            out.extend(line.split() for line in f if line.strip())
    if not out:
        raise LMError(f"no words in {', '.join(map(str, paths))}: nothing to count")
    return out


def raw_counts(sentences: Iterable[Sequence[str]], order: int) -> List[collections.Counter]:
    """``counts[n-1][ngram]``: how often each n-gram occurs, sentences wrapped in <s> ... </s>."""
    if order < 1:
        raise LMError(f"LM order must be >= 1, got {order}")
    counts = [collections.Counter() for _ in range(order)]
    for words in sentences:
        for w in words:
            if w in (BOS, EOS, UNK):
                raise LMError(f"the transcripts contain {w!r}, which the LM reserves")
        toks = (BOS, *words, EOS)
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(toks) - n + 1):
                c[toks[i:i + n]] += 1
    del counts[0][(BOS,)]  # <s> is a history only, never predicted
    return counts


def adjusted_counts(counts: List[collections.Counter]) -> List[Dict[Ngram, int]]:
    """Kneser-Ney's a(): raw counts at the top order and for n-grams starting with <s>, else continuation counts."""
    order = len(counts)
    adjusted = [dict() for _ in range(order)]
    adjusted[-1] = dict(counts[-1])
    for n in range(order - 1, 0, -1):  # n-grams of order n, from the (n+1)-grams' distinct left words
        cont = collections.Counter(g[1:] for g in counts[n])
        adjusted[n - 1] = {g: (c if g[0] == BOS else cont[g]) for g, c in counts[n - 1].items()}
    return adjusted


def discounts(adjusted: Dict[Ngram, int]) -> Tuple[float, float, float]:
    """Modified Kneser-Ney's D(1), D(2), D(3+) of one order, or the fallback where the estimate fails."""
    t = collections.Counter(min(a, 4) for a in adjusted.values() if a <= 4)
    try:
        y = t[1] / (t[1] + 2 * t[2])
        d = tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))
    except ZeroDivisionError:
        return FALLBACK_DISCOUNTS
    if any(not (0.0 < dk <= k) for k, dk in zip((1, 2, 3), d)):
        return FALLBACK_DISCOUNTS
    return d


class NgramLM:
    """An interpolated modified Kneser-Ney model: ``prob[n-1][ngram]`` and ``backoff[n-1][history]``."""

    def __init__(self, order: int, prob: List[Dict[Ngram, float]], backoff: List[Dict[Ngram, float]],
                 discounts: List[Tuple[float, float, float]]):
        self.order, self.prob, self.backoff, self.discounts = order, prob, backoff, discounts

    def p(self, word: str, history: Sequence[str] = ()) -> float:
        """p(word | history), backing off as an ARPA reader does (history truncated to order - 1 words)."""
        h = tuple(history)[max(0, len(history) - self.order + 1):] if self.order > 1 else ()
        weight = 1.0
        while True:
            g = h + (word,)
            if g in self.prob[len(g) - 1]:
                return weight * self.prob[len(g) - 1][g]
            if not h:
                return weight * self.prob[0][(UNK,)]
            weight *= self.backoff[len(h) - 1].get(h, 1.0)
            h = h[1:]

    @property
    def vocabulary(self) -> List[str]:
        return sorted(g[0] for g in self.prob[0] if g[0] not in (BOS, EOS, UNK))


def kneser_ney(sentences: Iterable[Sequence[str]], order: int) -> NgramLM:
    """Estimate the model of ``sentences`` (lists of words) up to ``order``."""
    adjusted = adjusted_counts(raw_counts(sentences, order))
    prob: List[Dict[Ngram, float]] = [dict() for _ in range(order)]
    backoff: List[Dict[Ngram, float]] = [dict() for _ in range(order)]
    ds = [discounts(a) for a in adjusted]
    for n in range(1, order + 1):
        a, d = adjusted[n - 1], ds[n - 1]
        # per history: sum of a, and the discounted mass that goes to the lower order
        total = collections.Counter()
        mass = collections.Counter()
        for g, c in a.items():
            total[g[:-1]] += c
            mass[g[:-1]] += d[min(c, 3) - 1]
        gamma = {h: mass[h] / total[h] for h in total}
        if n == 1:
            vocab = len(a) + (0 if (UNK,) in a else 1)
            prob[0] = {g: (c - d[min(c, 3) - 1]) / total[()] + gamma[()] / vocab for g, c in a.items()}
            prob[0][(UNK,)] = gamma[()] / vocab
        else:
            for g, c in a.items():
                h = g[:-1]
                prob[n - 1][g] = (c - d[min(c, 3) - 1]) / total[h] + gamma[h] * _backed_off(prob, backoff, g[1:])
            backoff[n - 2] = gamma
    return NgramLM(order, prob, backoff, ds)


def _backed_off(prob, backoff, g: Ngram) -> float:
    """p(g[-1] | g[:-1]) from the orders already estimated (g is one order below the one being built)."""
    weight = 1.0
    while g not in prob[len(g) - 1]:
        h = g[:-1]
        weight *= backoff[len(h) - 1].get(h, 1.0) if h else 1.0
        g = g[1:]
    return weight * prob[len(g) - 1][g]


# ----------------------------------------------------------------------------- ARPA files


def _arpa_lines(lm: NgramLM):
    yield "\\data\\"
    sizes = [len(p) + (1 if n == 0 else 0) for n, p in enumerate(lm.prob)]  # + <s> among the unigrams
    for n, size in enumerate(sizes, 1):
        yield f"ngram {n}={size}"
    for n in range(1, lm.order + 1):
        yield ""
        yield f"\\{n}-grams:"
        entries = dict(lm.prob[n - 1])
        if n == 1:
            entries[(BOS,)] = None
        for g in sorted(entries):
            p = entries[g]
            logp = NO_PROB if p is None else math.log10(p)
            line = f"{logp:.7g}\t{' '.join(g)}"
            if n < lm.order:
                bo = lm.backoff[n - 1].get(g)
                if bo is not None:
                    line += f"\t{math.log10(bo):.7g}"
            yield line
    yield ""
    yield "\\end\\"


def arpa_writer(lm: NgramLM):
    """A writer for :mod:`hypervq_fairseq.files`: ``writer(path)`` writes ``lm`` as ARPA text to ``path``."""
    def write(path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for line in _arpa_lines(lm):
                f.write(line + "\n")
    return write


def write_arpa(lm: NgramLM, path) -> Path:
    """Write ``lm`` as an ARPA file, atomically."""
    return atomic_write(path, arpa_writer(lm))


def _open_text(path):
    path = str(path)
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def arpa_words(path) -> List[str]:
    """The words of an ARPA file's unigram section (without <s>, </s>, <unk>); reads no further."""
    if not os.path.isfile(path):
        raise LMError(f"ARPA file {path} not found")
    words, inside = [], False
    with _open_text(path) as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                parts = line.split()
                if len(parts) < 2:
                    raise LMError(f"{path}: bad unigram line {line!r}")
                if parts[1] not in (BOS, EOS, UNK):
                    words.append(parts[1])
    if not inside:
        raise LMError(f"{path} is not an ARPA file (no \\1-grams: section)")
    return words


# ----------------------------------------------------------------------------- lexicon


def read_letters(dict_path) -> List[str]:
    """The symbols of a fairseq letter dictionary (``dict.ltr.txt``: ``SYMBOL COUNT`` per line)."""
    if not os.path.isfile(dict_path):
        raise LMError(f"letter dictionary {dict_path} not found (hypervq-labels writes dict.ltr.txt beside the manifests)")
    with open(dict_path, encoding="utf-8") as f:
        symbols = [line.split()[0] for line in f if line.strip()]
    if WORD_BOUNDARY not in symbols:
        raise LMError(f"{dict_path} has no word boundary symbol {WORD_BOUNDARY!r}: not a letter dictionary")
    return symbols


def spell(word: str) -> List[str]:
    """``"CAT"`` -> ``["C", "A", "T", "|"]``: a word as the ``.ltr`` targets spell it."""
    return [*word, WORD_BOUNDARY]


def lexicon_lines(words: Iterable[str], letters: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(``WORD\\tW O R D |`` lines, words left out because a letter is not in the dictionary)."""
    known = set(letters)
    lines, missing = [], []
    for word in sorted(set(words)):
        if word in (BOS, EOS, UNK):
            continue
        if all(ch in known for ch in word):
            lines.append(f"{word}\t{' '.join(spell(word))}")
        else:
            missing.append(word)
    return lines, missing


def read_lexicon(path, letters: Sequence[str]) -> Dict[str, List[List[str]]]:
    """``{word: [spelling, ...]}`` from a lexicon file; every spelling's symbols must be in ``letters``."""
    if not os.path.isfile(path):
        raise LMError(f"lexicon {path} not found")
    known = set(letters)
    lexicon: Dict[str, List[List[str]]] = {}
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise LMError(f"{path} line {number}: {line.strip()!r} has a word but no spelling")
            bad = [s for s in parts[1:] if s not in known]
            if bad:
                raise LMError(f"{path} line {number}: symbols {bad} are not in the letter dictionary "
                              f"(a phone lexicon? this decoder needs letter spellings ending with '{WORD_BOUNDARY}')")
            if parts[-1] != WORD_BOUNDARY or WORD_BOUNDARY in parts[1:-1]:
                # without it every utterance decodes as one long word, with exit 0
                raise LMError(f"{path} line {number}: {line.strip()!r}: a spelling must end with the word "
                              f"boundary '{WORD_BOUNDARY}' and hold it nowhere else (as the .ltr targets spell words)")
            lexicon.setdefault(parts[0], []).append(parts[1:])
    if not lexicon:
        raise LMError(f"lexicon {path} is empty")
    return lexicon
