"""A small real-speech corpus in LibriSpeech's layout, built offline from Debian packages.

Why: LibriSpeech is 60 GB behind a network; the demo, the tests and a newcomer's laptop need
real 16 kHz speech that installs in seconds. Debian ships the Asterisk telephony prompts as
G.722 (``asterisk-core-sounds-{en,fr,it,ru}-g722``): four real voices, about 2 h in all,
16 kHz wideband. We decode them with the pure-Python ``G722`` package (64 kbit/s mode: every
byte holds two 16 kHz samples, so a clip's duration is known from its size before decoding)
and write them as FLAC in LibriSpeech's tree, so that ``hypervq-manifest`` and fairseq treat
the result exactly like LibriSpeech::

    ROOT/SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac
    ROOT/SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt

Speakers are voices (9001, 9002, ... in the sorted order of the voice folders), chapters are
the prompt folders (100 = top level, 101, ... = ``digits``, ``letters``, ...). Tones, beeps and
the ``silence`` folder are left out. Transcripts come from ``asterisk-core-sounds-en``'s prompt
list, upper-cased like LibriSpeech's; for the fr/it/ru voices that text is the English script
the prompt was translated from, not a verbatim transcript (``demo_corpus.json`` says so).

Only when the real voices cannot supply the requested amount (a machine without the Asterisk
packages, or ``target_minutes`` above what they hold) is the corpus topped up with synthetic
speech from Debian's ``flite`` (16 kHz voices slt, rms, awb, kal16; speakers 9101, ...).

The prompts are CC-BY-SA: the audio is generated at run time and never committed. The build is
deterministic (sorted inputs, round-robin over speakers, no randomness) and atomic (built in a
sibling ``.partial`` folder, then renamed); a finished tree whose parameters match is reused.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import InputError, ManifestError
from ..files import atomic_folder

SAMPLE_RATE = 16000
ASTERISK_SOUNDS = Path(os.environ.get("HYPERVQ_ASTERISK_SOUNDS", "/usr/share/asterisk/sounds"))
ASTERISK_PROMPTS_EN = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
FLITE_VOICES = ("slt", "rms", "awb", "kal16")  # the 16 kHz ones; "kal" is 8 kHz
DEMO_LANGUAGES = ("en", "fr", "it", "ru")  # one speaker each
EXCLUDED_FOLDERS = ("silence",)
METADATA = "demo_corpus.json"
REAL_SPEAKER_BASE = 9001
SYNTHETIC_SPEAKER_BASE = 9101
CHAPTER_BASE = 100
# The speech-recognition demo's split (build_asr_corpus): changing the salt changes which prompts are held apart.
ASR_SPLIT_SALT = "hypervq-asr-split-1"
ASR_SUBSETS = {"train": "train-asr", "dev": "dev-asr", "test": "test-asr"}
ASR_METADATA = "asr_corpus.json"

# Used only when no prompt list is installed: plain sentences for the synthetic voices.
FALLBACK_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please leave your message after the tone.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with a single step.",
    "The weather today is cold and windy with a chance of rain.",
    "Every morning he walks to the station and buys a newspaper.",
    "They painted the old wooden fence a bright shade of green.",
    "Numbers from one to ten are easy to remember.",
    "The library opens at nine and closes at five in the evening.",
    "Our train was late because of snow on the tracks.",
    "Music filled the hall as the orchestra began to play.",
    "He asked for a glass of water and a slice of bread.",
)


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One clip to write: where it comes from, who speaks it, what it says."""

    speaker: int
    chapter: int
    source: str  # a .g722 path, or "flite:VOICE"
    text: str
    seconds: float


@dataclasses.dataclass
class DemoCorpus:
    """What :func:`build_demo_corpus` produced."""

    root: Path
    subsets: dict  # subset name -> {"utterances": n, "seconds": s}
    speakers: dict  # speaker id (str) -> description
    reused: bool = False

    @property
    def total_seconds(self) -> float:
        return sum(s["seconds"] for s in self.subsets.values())


def normalize_text(text: str) -> str:
    """LibriSpeech-style transcript: upper case, letters and apostrophes, single spaces."""
    digits = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
    text = re.sub(r"\d", lambda m: f" {digits[int(m.group())]} ", text)
    text = re.sub(r"[^A-Za-z']+", " ", text).upper()
    return " ".join(text.split())


def load_prompt_texts(path: Path = ASTERISK_PROMPTS_EN) -> dict:
    """Prompt name (``digits/1``, ``vm-login``...) -> English text, from the Debian prompt list."""
    if not path.exists():
        return {}
    texts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            texts[name.strip()] = text.strip()
    return texts


def find_voice_folders(sounds: Path = ASTERISK_SOUNDS) -> list:
    """Real voice folders holding G.722 prompts, sorted; the ``en``/``en_US`` alias links are skipped."""
    if not sounds.is_dir():
        return []
    folders = []
    for entry in sorted(sounds.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue
        if any(entry.rglob("*.g722")):
            folders.append(entry)
    return folders


def _is_speech(text: str | None) -> bool:
    """Bracketed entries (``[this is a simple beep tone]``) describe tones, not speech."""
    return text is None or not text.startswith("[")


def _real_candidates(folder: Path, speaker: int, texts: dict, min_seconds, max_seconds) -> list:
    """Every usable prompt of one voice, in sorted order, with its chapter and transcript."""
    chapters = {"": CHAPTER_BASE}
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    for i, name in enumerate(n for n in subfolders if n not in EXCLUDED_FOLDERS):
        chapters[name] = CHAPTER_BASE + 1 + i
    out = []
    for path in sorted(folder.rglob("*.g722")):
        rel = path.relative_to(folder)
        sub = rel.parts[0] if len(rel.parts) > 1 else ""
        if sub not in chapters:
            continue
        name = rel.with_suffix("").as_posix()
        text = texts.get(name)
        if not _is_speech(text):
            continue
        seconds = path.stat().st_size * 2 / SAMPLE_RATE  # G.722 at 64 kbit/s: 2 samples per byte
        if not (min_seconds <= seconds <= max_seconds):
            continue
        words = normalize_text(text) if text else normalize_text(name.replace("-", " ").replace("/", " "))
        out.append(Utterance(speaker, chapters[sub], str(path), words or "UNKNOWN", seconds))
    return out


def _round_robin(per_speaker: list) -> list:
    """Interleave speakers so any prefix of the list keeps every voice."""
    out, i = [], 0
    while any(i < len(x) for x in per_speaker):
        out.extend(x[i] for x in per_speaker if i < len(x))
        i += 1
    return out


def decode_g722(path: str) -> np.ndarray:
    """int16 samples at 16 kHz from a raw G.722 (64 kbit/s) file."""
    from G722 import G722

    raw = Path(path).read_bytes()
    return np.asarray(G722(SAMPLE_RATE, 64000).decode(raw), dtype=np.int16)


def synthesize_flite(voice: str, text: str) -> np.ndarray:
    """int16 samples at 16 kHz from Debian's ``flite``; fails clearly when it is missing."""
    flite = shutil.which("flite")
    if flite is None:
        raise ManifestError("synthetic top-up needs the 'flite' binary (Debian package flite); install it with apt-get")
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        subprocess.run([flite, "-voice", voice, "-t", text, "-o", wav], check=True, capture_output=True)
        audio, sr = sf.read(wav, dtype="int16")
    if sr != SAMPLE_RATE:
        raise ManifestError(f"flite voice {voice!r} produced {sr} Hz audio; expected {SAMPLE_RATE} Hz")
    return audio if audio.ndim == 1 else audio[:, 0]


def _synthetic_candidates(texts: dict, needed_seconds: float, max_utterances: int | None, max_seconds: float) -> list:
    """flite utterances, round-robin over the 16 kHz voices, until the estimate covers the need."""
    pool = [t for t in (normalize_text(v) for k, v in sorted(texts.items()) if _is_speech(v)) if t]
    pool = pool or [normalize_text(s) for s in FALLBACK_SENTENCES]
    # flite speaks about 2.6 words per second; long prompts are cut to stay under max_seconds.
    max_words = max(1, int(max_seconds * 2.6))
    out, total, i = [], 0.0, 0
    while total < needed_seconds and (max_utterances is None or len(out) < max_utterances):
        voice_index = i % len(FLITE_VOICES)
        words = pool[(i // len(FLITE_VOICES)) % len(pool)].split()[:max_words]
        est = max(0.6, len(words) / 2.6)
        out.append(Utterance(SYNTHETIC_SPEAKER_BASE + voice_index, CHAPTER_BASE, f"flite:{FLITE_VOICES[voice_index]}",
                             " ".join(words), est))
        total += est
        i += 1
    return out


def _select(candidates: list, max_utterances, max_seconds_total) -> list:
    chosen, total = [], 0.0
    for utt in candidates:
        if max_utterances is not None and len(chosen) >= max_utterances:
            break
        if max_seconds_total is not None and total >= max_seconds_total:
            break
        chosen.append(utt)
        total += utt.seconds
    return chosen


def _write_tree(tmp_root: Path, chosen: list, train_subset: str, valid_subset: str, valid_every: int, progress: bool):
    """Write FLAC files and per-chapter transcripts; return per-subset counts."""
    per_speaker = {}
    for utt in chosen:
        per_speaker[utt.speaker] = per_speaker.get(utt.speaker, 0) + 1
    seen_per_speaker, assigned = {}, []
    for utt in chosen:
        k = seen_per_speaker.get(utt.speaker, 0)
        seen_per_speaker[utt.speaker] = k + 1
        n = per_speaker[utt.speaker]
        # every valid_every-th clip of a speaker; a speaker with fewer clips gives its last one
        to_valid = valid_every and ((k + 1) % valid_every == 0 or (2 <= n < valid_every and k == n - 1))
        assigned.append((valid_subset if to_valid else train_subset, utt))
    return _write_clips(tmp_root, assigned, (train_subset, valid_subset), progress)


def _write_clips(tmp_root: Path, assigned: list, subset_names, progress: bool):
    """Write (subset, utterance) pairs as FLAC files and per-chapter transcripts; return per-subset counts."""
    from tqdm import tqdm

    counters, stats, transcripts = {}, {name: [0, 0.0] for name in subset_names}, {}
    for subset, utt in tqdm(assigned, desc="demo corpus", unit="utt", disable=not progress):
        if utt.source.startswith("flite:"):
            audio = synthesize_flite(utt.source.split(":", 1)[1], utt.text)
        else:
            audio = decode_g722(utt.source)
        index = counters.get((subset, utt.speaker, utt.chapter), 0)
        counters[(subset, utt.speaker, utt.chapter)] = index + 1
        uid = f"{utt.speaker}-{utt.chapter}-{index:04d}"
        folder = tmp_root / subset / str(utt.speaker) / str(utt.chapter)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{uid}.flac", audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        transcripts.setdefault(folder / f"{utt.speaker}-{utt.chapter}.trans.txt", []).append(f"{uid} {utt.text}")
        stats[subset][0] += 1
        stats[subset][1] += len(audio) / SAMPLE_RATE
    for path, lines in transcripts.items():
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {name: {"utterances": n, "seconds": round(s, 3)} for name, (n, s) in stats.items()}


def build_demo_corpus(
    root,
    *,
    max_utterances: int | None = None,
    max_minutes: float | None = None,
    target_minutes: float | None = None,
    min_seconds: float = 0.5,
    max_seconds: float = 16.0,
    languages: tuple | None = None,
    valid_every: int = 10,
    train_subset: str = "train-demo",
    valid_subset: str = "dev-demo",
    sounds_dir=None,
    force: bool = False,
    progress: bool = False,
) -> DemoCorpus:
    """Build (or reuse) the demo corpus under ``root``; return what it holds.

    max_utterances / max_minutes: stop after this many clips / this much audio (real voices first).
    target_minutes: top up with flite speech if the real voices give less than this.
    min_seconds / max_seconds: keep clips whose length lies in this range.
    languages: voice-folder prefixes to use (``("en", "fr")``); default the demo's four voices
        (en, fr, it, ru). The Spanish prompts (``es``) are read by the same speaker as the English
        ones, so they are never a new voice: use them only where that speaker is meant.
    valid_every: every n-th clip of each speaker goes to ``valid_subset`` (a speaker with 2..n-1 clips
        gives its last one; 0: no validation subset).
    """
    root = Path(root)
    sounds = Path(sounds_dir) if sounds_dir is not None else ASTERISK_SOUNDS
    params = dict(max_utterances=max_utterances, max_minutes=max_minutes, target_minutes=target_minutes,
                  min_seconds=min_seconds, max_seconds=max_seconds,
                  languages=sorted(languages) if languages else None, valid_every=valid_every,
                  train_subset=train_subset, valid_subset=valid_subset, sounds_dir=str(sounds))
    meta_path = root / METADATA
    reused = None if force else _reuse(meta_path, params)
    if reused is not None:
        return reused
    if max_utterances is not None and max_utterances < 1:
        raise InputError(f"max_utterances must be >= 1, got {max_utterances}")
    if min_seconds > max_seconds:
        raise InputError(f"min_seconds ({min_seconds}) is above max_seconds ({max_seconds})")

    # 1. Real voices, interleaved so that any limit keeps every speaker.
    texts = load_prompt_texts()
    languages = languages or DEMO_LANGUAGES
    folders = [f for f in find_voice_folders(sounds) if f.name.split("_")[0] in languages]
    speakers, per_speaker = {}, []
    for i, folder in enumerate(folders):
        speakers[str(REAL_SPEAKER_BASE + i)] = f"Asterisk prompts, voice {folder.name} (real speech, CC-BY-SA)"
        per_speaker.append(_real_candidates(folder, REAL_SPEAKER_BASE + i, texts, min_seconds, max_seconds))
    max_total = max_minutes * 60 if max_minutes is not None else None
    chosen = _select(_round_robin(per_speaker), max_utterances, max_total)

    # 2. Synthetic top-up, only for what the real voices could not give.
    have = sum(u.seconds for u in chosen)
    wanted = target_minutes * 60 if target_minutes is not None else (0.0 if chosen else 60.0)
    if max_total is not None:
        wanted = min(wanted, max_total)
    room = None if max_utterances is None else max_utterances - len(chosen)
    if have < wanted and (room is None or room > 0):
        synthetic = _synthetic_candidates(texts, wanted - have, room, max_seconds)
        for utt in synthetic:
            speakers.setdefault(str(utt.speaker), f"flite voice {utt.source.split(':')[1]} (synthetic)")
        chosen += synthetic
    if not chosen:
        raise ManifestError(f"no usable speech: no Asterisk G.722 voices under {sounds} and nothing to synthesize")

    # 3. Write into a sibling folder, then swap it in (never over a folder that is not ours).
    if root.exists() and any(root.iterdir()) and not meta_path.exists():
        raise FileExistsError(f"{root} exists and is not a demo corpus (no {METADATA}); choose an empty or new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(root, root.with_name(root.name + ".partial")) as tmp_root:
        subsets = _write_tree(tmp_root, chosen, train_subset, valid_subset, valid_every, progress)
        if valid_every and subsets[valid_subset]["utterances"] == 0:
            raise ManifestError(f"only {len(chosen)} utterances: too few for one validation clip every {valid_every}")
        if not valid_every:
            subsets.pop(valid_subset)
        meta = dict(params=params, subsets=subsets, speakers=speakers,
                    note=("Real voices: Debian asterisk-core-sounds-*-g722, CC-BY-SA; generated at run time. "
                          "Transcripts of non-English voices are the English source text of each prompt, "
                          "not verbatim transcripts."))
        (tmp_root / METADATA).write_text(json.dumps(meta, indent=1) + "\n")
    return DemoCorpus(root, subsets, speakers)


def _reuse(meta_path: Path, params: dict):
    """The finished corpus beside ``meta_path`` when it was built with ``params``, else None."""
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("params") != params:
        return None
    return DemoCorpus(meta_path.parent, meta["subsets"], meta["speakers"], reused=True)


def held_apart_split(text: str, test_percent: int = 10, dev_percent: int = 10) -> str:
    """``"test"``, ``"dev"`` or ``"train"`` for one transcript, fixed by a hash of its words.

    The key is the normalized transcript (not the file name), so prompts that say the same words
    always land together: no test sentence is ever spoken, by the real voice or by flite, in
    training. Bucket = first 8 bytes of SHA-256("ASR_SPLIT_SALT:TEXT") mod 100; buckets below
    ``test_percent`` are test, the next ``dev_percent`` are dev. Independent of machine, order and
    Python's hash seed.
    """
    if not (0 <= test_percent and 0 <= dev_percent and test_percent + dev_percent <= 100):
        raise InputError(f"test_percent + dev_percent must lie in 0..100, got {test_percent} + {dev_percent}")
    key = f"{ASR_SPLIT_SALT}:{normalize_text(text)}".encode("utf-8")
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
    if bucket < test_percent:
        return "test"
    return "dev" if bucket < test_percent + dev_percent else "train"


def build_asr_corpus(
    root,
    *,
    flite_voices: tuple = FLITE_VOICES,
    test_percent: int = 10,
    dev_percent: int = 10,
    min_seconds: float = 0.5,
    max_seconds: float = 16.0,
    max_utterances: int | None = None,
    sounds_dir=None,
    force: bool = False,
    progress: bool = False,
) -> DemoCorpus:
    """The speech-recognition demo's corpus: the English voice's prompts split by :func:`held_apart_split`.

    ``test-asr`` / ``dev-asr``: the real English voice (en_US_f_Allison) speaking the held-apart
    test / dev prompts, verbatim transcripts. ``train-asr``: the same voice's other prompts, plus
    each training transcript (and :data:`FALLBACK_SENTENCES`) spoken by every voice in
    ``flite_voices`` (speakers 9101, ...). Only training transcripts are ever synthesized, so
    pretraining and fine-tuning on ``train-asr`` never hear a dev or test sentence.
    max_utterances: cap per subset (tests); the cap keeps a round-robin prefix over speakers.
    ``asr_corpus.json`` lists the prompts of each subset.
    """
    root = Path(root)
    sounds = Path(sounds_dir) if sounds_dir is not None else ASTERISK_SOUNDS
    unknown = sorted(set(flite_voices) - set(FLITE_VOICES))
    if unknown:
        raise InputError(f"flite voices must be among {', '.join(FLITE_VOICES)} (16 kHz), got {', '.join(unknown)}")
    params = dict(flite_voices=list(flite_voices), test_percent=test_percent, dev_percent=dev_percent,
                  min_seconds=min_seconds, max_seconds=max_seconds, max_utterances=max_utterances,
                  salt=ASR_SPLIT_SALT, sounds_dir=str(sounds))
    meta_path = root / ASR_METADATA
    reused = None if force else _reuse(meta_path, params)
    if reused is not None:
        return reused
    if max_utterances is not None and max_utterances < 1:
        raise InputError(f"max_utterances must be >= 1, got {max_utterances}")
    held_apart_split("", test_percent, dev_percent)  # checks the percentages

    texts = load_prompt_texts()
    folders = [f for f in find_voice_folders(sounds) if f.name.split("_")[0] == "en"]
    if not folders:
        raise ManifestError(f"no English Asterisk G.722 voice under {sounds} (Debian package asterisk-core-sounds-en-g722)")
    folder = folders[0]
    speakers = {str(REAL_SPEAKER_BASE): f"Asterisk prompts, voice {folder.name} (real speech, CC-BY-SA)"}
    real = {"train": [], "dev": [], "test": []}
    prompts = {"train": [], "dev": [], "test": []}
    for utt in _real_candidates(folder, REAL_SPEAKER_BASE, texts, min_seconds, max_seconds):
        split = held_apart_split(utt.text, test_percent, dev_percent)
        real[split].append(utt)
        prompts[split].append(Path(utt.source).relative_to(folder).with_suffix("").as_posix())

    # flite speaks every distinct training transcript (prompt list + fallback sentences), in each voice
    spoken = [normalize_text(v) for _, v in sorted(texts.items()) if _is_speech(v)]
    spoken += [normalize_text(t) for t in FALLBACK_SENTENCES]
    max_words = max(1, int(max_seconds * 2.6))  # flite speaks about 2.6 words per second
    cut = {t: " ".join(t.split()[:max_words]) for t in spoken if t}  # long prompts are cut, as flite would run long
    synthetic_texts = sorted({c for t, c in cut.items()  # the whole sentence and the cut one must both be training text
                              if held_apart_split(t, test_percent, dev_percent) == "train"
                              and held_apart_split(c, test_percent, dev_percent) == "train"})
    synthetic = []
    for i, voice in enumerate(flite_voices):
        speakers[str(SYNTHETIC_SPEAKER_BASE + FLITE_VOICES.index(voice))] = f"flite voice {voice} (synthetic)"
        synthetic.append([Utterance(SYNTHETIC_SPEAKER_BASE + FLITE_VOICES.index(voice), CHAPTER_BASE, f"flite:{voice}",
                                    t, max(0.6, len(t.split()) / 2.6)) for t in synthetic_texts])
    chosen = {"train": _select(_round_robin([real["train"]] + synthetic), max_utterances, None),
              "dev": _select(real["dev"], max_utterances, None), "test": _select(real["test"], max_utterances, None)}
    if not chosen["test"]:
        raise ManifestError("no held-apart test prompt: raise test_percent or max_seconds")

    if root.exists() and any(root.iterdir()) and not meta_path.exists():
        raise FileExistsError(f"{root} exists and is not an ASR demo corpus (no {ASR_METADATA}); choose an empty or new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(root, root.with_name(root.name + ".partial")) as tmp_root:
        assigned = [(ASR_SUBSETS[split], utt) for split in ("train", "dev", "test") for utt in chosen[split]]
        subsets = _write_clips(tmp_root, assigned, tuple(ASR_SUBSETS.values()), progress)
        kept = {split: {u.source for u in chosen[split]} for split in chosen}
        meta = dict(params=params, subsets=subsets, speakers=speakers,
                    prompts={ASR_SUBSETS[split]: [name for name, u in zip(prompts[split], real[split])
                                                  if u.source in kept[split]] for split in prompts},
                    note=("Split by a hash of each transcript (held_apart_split): no dev or test sentence is "
                          "spoken in train-asr, by the real voice or by flite. Real voice: Debian "
                          "asterisk-core-sounds-en-g722, CC-BY-SA; generated at run time."))
        (tmp_root / ASR_METADATA).write_text(json.dumps(meta, indent=1) + "\n")
    return DemoCorpus(root, subsets, speakers)
