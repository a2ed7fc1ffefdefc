"""A synthetic English evaluation set whose phone labels are exact: audio, manifest, words and ``.phn`` together.

``hypervq-align --synthesize OUT`` (and the tests) build, with flite's voices slt, rms and awb
(:mod:`.flite`), each voice saying the same sentences, so that every triphone context occurs
in several voices (ABX across speakers)::

    OUT/corpus/SUBSET/SPEAKER/100/SPEAKER-100-UTT.flac (+ SPEAKER-100.trans.txt)
    OUT/valid.tsv, OUT/SUBSET.tsv        fairseq manifests (hypervq-manifest's writer)
    OUT/valid.wrd, OUT/valid.ltr, OUT/dict.ltr.txt   (hypervq-labels' writer)
    OUT/valid.phn, OUT/valid.phn.json    flite's own phone boundaries, reused by hypervq-align

Speakers are numbered like the demo corpus's synthetic voices (9101 = slt, 9102 = rms,
9103 = awb). The sentences default to the English prompt list of the demo corpus (Debian's
Asterisk prompts) when installed, else a fixed list of plain sentences.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import soundfile as sf

from ...errors import InputError
from .align import AlignReport, _entry, audio_fingerprint, write_alignment
from .flite import EXACT_VOICES, SAMPLE_RATE, synthesize_with_phones

SUBSET = "synthetic-flite"
CHAPTER = 100
MIN_WORDS, MAX_WORDS = 4, 14


def default_sentences(count: int) -> List[str]:
    """``count`` sentences of 4-14 words: the demo corpus's English prompts, or its fallback sentences."""
    from ..demo_corpus import FALLBACK_SENTENCES, load_prompt_texts, normalize_text

    prompts = [normalize_text(t) for _, t in sorted(load_prompt_texts().items()) if not t.startswith("[")]
    pool = [p for p in dict.fromkeys(prompts) if MIN_WORDS <= len(p.split()) <= MAX_WORDS]
    pool = pool or [normalize_text(s) for s in FALLBACK_SENTENCES]
    return [pool[i % len(pool)] for i in range(count)] if len(pool) < count else pool[:count]


def speaker_id(voice: str) -> int:
    from ..demo_corpus import FLITE_VOICES, SYNTHETIC_SPEAKER_BASE

    return SYNTHETIC_SPEAKER_BASE + FLITE_VOICES.index(voice)


def synthesize_aligned(out_dir, *, sentences: Optional[Sequence[str]] = None, per_voice: int = 20,
                       voices: Iterable[str] = EXACT_VOICES, progress: bool = True) -> AlignReport:
    """Build the synthetic set in ``out_dir`` (see the module docstring); returns the ``valid`` split's report."""
    from tqdm import tqdm

    from ..labels import write_labels
    from ..manifest import build_manifests

    out_dir = Path(out_dir)
    voices = list(voices)
    bad = [v for v in voices if v not in EXACT_VOICES]
    if bad or not voices:
        raise InputError(f"voices {bad or voices}: choose among {', '.join(EXACT_VOICES)}")
    from ..demo_corpus import normalize_text

    # flite reads the same normalized words the transcript holds (digits spelled out, no punctuation)
    texts = [normalize_text(t) for t in (sentences or default_sentences(per_voice))]
    if not all(texts):
        raise InputError("every sentence must hold at least one word")

    # 1. audio and transcripts in LibriSpeech's layout, in a sibling folder swapped in at the end
    corpus = out_dir / "corpus"
    partial = out_dir / "corpus.partial"
    shutil.rmtree(partial, ignore_errors=True)
    labelled = {}
    jobs = [(v, i, t) for v in voices for i, t in enumerate(texts)]
    try:
        for voice, i, text in tqdm(jobs, desc="synthesize", unit="utt", disable=not progress):
            spk = speaker_id(voice)
            folder = partial / SUBSET / str(spk) / str(CHAPTER)
            folder.mkdir(parents=True, exist_ok=True)
            uid = f"{spk}-{CHAPTER}-{i:04d}"
            audio, segments = synthesize_with_phones(text, voice)
            sf.write(folder / f"{uid}.flac", audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            with open(folder / f"{spk}-{CHAPTER}.trans.txt", "a", encoding="utf-8") as f:
                f.write(f"{uid} {text}\n")
            labelled[f"{SUBSET}/{spk}/{CHAPTER}/{uid}.flac"] = (text, segments)
        shutil.rmtree(corpus, ignore_errors=True)
        os.replace(partial, corpus)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise

    # 2. manifests and word labels with the project's writers, then flite's phones
    build_manifests(corpus, out_dir, train_subsets=[], valid_subsets=[SUBSET], workers=1, progress=False)
    write_labels(out_dir, ["valid"], dict_split="valid")
    keys = sorted(labelled)
    entries = {k: _entry(audio_fingerprint(corpus / k), labelled[k][0], "aligned", "flite") for k in keys}
    write_alignment(out_dir / "valid.phn", "valid.tsv", keys, {k: labelled[k][1] for k in keys}, entries)
    return AlignReport("valid", out_dir / "valid.phn", len(keys), aligned=len(keys))
