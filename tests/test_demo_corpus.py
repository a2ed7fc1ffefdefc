"""The offline demo corpus: LibriSpeech layout, real 16 kHz speech, determinism, limits, top-up."""
import json
import re

import numpy as np
import pytest
import soundfile as sf

from hypervq_fairseq.data.demo_corpus import (DEMO_LANGUAGES, build_demo_corpus, decode_g722, find_voice_folders,
                                              normalize_text, synthesize_flite)

UTT = re.compile(r"^(\d+)-(\d+)-(\d{4})\.flac$")


def test_layout_is_librispeech(tiny_speech_corpus):
    flacs = sorted(tiny_speech_corpus.rglob("*.flac"))
    assert len(flacs) == 40
    for f in flacs:
        subset, speaker, chapter, name = f.relative_to(tiny_speech_corpus).parts
        m = UTT.match(name)
        assert subset in ("train-demo", "dev-demo") and m and m.group(1) == speaker and m.group(2) == chapter
        trans = f.parent / f"{speaker}-{chapter}.trans.txt"
        entries = dict(line.split(" ", 1) for line in trans.read_text().splitlines())
        assert re.fullmatch(r"[A-Z' ]+", entries[f.stem])
        info = sf.info(f)
        assert info.samplerate == 16000 and info.channels == 1 and 0.5 * 16000 <= info.frames <= 3 * 16000


def test_every_voice_is_a_speaker_in_both_subsets(tiny_speech_corpus):
    voices = [v for v in find_voice_folders() if v.name.split("_")[0] in DEMO_LANGUAGES]
    meta = json.loads((tiny_speech_corpus / "demo_corpus.json").read_text())
    assert len(meta["speakers"]) == len(voices) >= 1
    assert not any("es_MX" in description for description in meta["speakers"].values())  # the en speaker again
    train = {p.name for p in (tiny_speech_corpus / "train-demo").iterdir()}
    dev = {p.name for p in (tiny_speech_corpus / "dev-demo").iterdir()}
    assert train == dev == set(meta["speakers"])
    assert meta["subsets"]["dev-demo"]["utterances"] == 4 and meta["subsets"]["train-demo"]["utterances"] == 36


def test_audio_is_real_decoded_speech(tiny_speech_corpus):
    audio, sr = sf.read(next(tiny_speech_corpus.rglob("9001-100-0000.flac")), dtype="int16")
    assert sr == 16000
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert rms > 300  # speech, not silence or near-silent noise
    # speech energy is mostly below 4 kHz
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    assert spectrum[freqs < 4000].sum() > 0.8 * spectrum.sum()


def test_build_is_deterministic_and_reused(tmp_path):
    a = build_demo_corpus(tmp_path / "a", max_utterances=12, max_seconds=2.5, valid_every=4)
    b = build_demo_corpus(tmp_path / "b", max_utterances=12, max_seconds=2.5, valid_every=4)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    for rel in files_a:
        if rel.suffix == ".flac":
            assert np.array_equal(sf.read(tmp_path / "a" / rel)[0], sf.read(tmp_path / "b" / rel)[0])
    assert not a.reused and build_demo_corpus(tmp_path / "a", max_utterances=12, max_seconds=2.5, valid_every=4).reused
    assert a.subsets == b.subsets and a.subsets["dev-demo"]["utterances"] == 4


def test_max_minutes_limits_the_audio(tmp_path):
    c = build_demo_corpus(tmp_path / "c", max_minutes=0.5, max_seconds=4.0)
    assert 30 <= c.total_seconds <= 34


def test_synthetic_top_up_only_beyond_the_real_voices(tmp_path):
    real_only = build_demo_corpus(tmp_path / "r", languages=("en",), max_utterances=6, max_seconds=2.0,
                                  valid_every=3)
    assert set(real_only.speakers) == {"9001"}
    topped = build_demo_corpus(tmp_path / "t", languages=("xx",), target_minutes=0.2, max_seconds=4.0, valid_every=3)
    assert all(s.startswith("91") for s in topped.speakers) and topped.total_seconds >= 8
    clip = next((tmp_path / "t").rglob("*.flac"))
    assert sf.info(clip).samplerate == 16000


def test_helpers():
    assert normalize_text("Press 1, or *, to Don't-stop.") == "PRESS ONE OR TO DON'T STOP"
    samples = decode_g722(str(next(find_voice_folders()[0].glob("*.g722"))))
    assert samples.dtype == np.int16 and len(samples) > 1000
    assert synthesize_flite("slt", "hello world").dtype == np.int16


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo corpus"):
        build_demo_corpus(tmp_path / "mine", max_utterances=4)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
