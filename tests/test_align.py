"""Phone alignments: flite's exact phones, pocketsphinx's forced alignment, the .phn format, caching, hypervq-align."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from hypervq_fairseq.data.alignment import (AlignmentError, Segment, align_manifest_dir, normalize_phone, read_phn,
                                            speaker_of, synthesize_aligned)
from hypervq_fairseq.data.alignment.flite import segments_from_ends, synthesize_with_phones
from hypervq_fairseq.data.manifest import read_manifest
from hypervq_fairseq.errors import InputError

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs the flite program")
# "the cat sat on the mat" in the CMU dictionary's phones (flite writes the schwa of "the" as ax -> AH)
CAT_SAT = "DH AH K AE T S AE T AA N DH AH M AE T".split()


def speech(segments):
    return [s.phone for s in segments if s.phone != "SIL"]


@needs_flite
def test_flite_gives_the_known_phones_of_a_short_sentence_ending_with_its_audio():
    audio, segments = synthesize_with_phones("the cat sat on the mat", "slt")
    assert speech(segments) == CAT_SAT
    assert segments[0].phone == "SIL" and segments[-1].phone == "SIL"  # flite's leading and trailing pauses
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))  # contiguous
    assert segments[-1].end == pytest.approx(len(audio) / 16000, abs=1e-9)  # clipped to the audio


@needs_flite
@pytest.mark.parametrize("voice", ["slt", "rms", "awb"])
def test_pocketsphinx_finds_flites_phones_and_boundaries(voice):
    from hypervq_fairseq.data.alignment.sphinx import SphinxAligner

    audio, truth = synthesize_with_phones("the cat sat on the mat", voice)
    found = SphinxAligner().align(audio / 32768.0, "THE CAT SAT ON THE MAT")
    got, ref = speech(found), speech(truth)
    # the dictionary has two pronunciations of "on" (AA N, AO N); everything else must match
    assert [p.replace("AO", "AA") for p in got] == CAT_SAT == ref
    starts = lambda segs: np.array([s.start for s in segs if s.phone != "SIL"])  # noqa: E731
    diff = np.abs(starts(found) - starts(truth))
    # measured here: mean 9-12 ms, max 34-46 ms over the three voices (10 ms frames)
    assert diff.mean() < 0.025 and diff.max() < 0.08


def test_a_voice_whose_printed_times_drift_from_its_audio_is_refused():
    ends = [("pau", 0.2), ("k", 0.3), ("ae", 0.5), ("t", 3.329)]
    with pytest.raises(AlignmentError, match="not the waveform's"):
        segments_from_ends(ends, 3.207, voice="kal16")
    ok = segments_from_ends(ends, 3.325, voice="slt")
    assert [s.phone for s in ok] == ["SIL", "K", "AE", "T"] and ok[-1].end == 3.325
    with pytest.raises(AlignmentError, match="slt, rms, awb"):
        synthesize_with_phones("hello", "kal16")


def test_phones_map_to_arpabet_without_stress():
    assert [normalize_phone(p) for p in ("AH0", "ih1", "ax", "axr", "dx", "pau", "SIL", "+NSN+", "en")] == \
        ["AH", "IH", "AH", "ER", "T", "SIL", "SIL", "SIL", "N"]
    with pytest.raises(InputError, match="not ARPAbet"):
        normalize_phone("Q")


def test_phn_reader_normalizes_and_refuses_bad_lines_by_file_and_line(tmp_path):
    good = tmp_path / "valid.phn"
    good.write_text("# comment\na.flac\t0.0\t0.1\tAH0\na.flac\t0.1\t0.25\tpau\nb.flac\t0\t0.2\tk\n")
    assert read_phn(good) == {"a.flac": [Segment(0.0, 0.1, "AH"), Segment(0.1, 0.25, "SIL")],
                              "b.flac": [Segment(0.0, 0.2, "K")]}
    for body, message in [("a.flac\t0.0\t0.1\n", ":1: expected"), ("a.flac\t0\tx\tAH\n", ":1: could not convert"),
                          ("a.flac\t0\t0.1\tQ\n", ":1: phone 'Q'"),
                          ("a.flac\t0\t0.3\tAH\na.flac\t0.2\t0.4\tK\n", "overlaps"),
                          ("a.flac\t0.3\t0.3\tAH\n", "start < end")]:
        bad = tmp_path / "bad.phn"
        bad.write_text(body)
        with pytest.raises(AlignmentError, match=message):
            read_phn(bad)
    with pytest.raises(AlignmentError, match="run hypervq-align"):
        read_phn(tmp_path / "missing.phn")


def test_speakers_come_from_librispeech_names():
    assert speaker_of("dev-clean/1272/128104/1272-128104-0000.flac") == "1272"
    assert speaker_of("dev-demo/9001/100/9001-100-0002.flac") == "9001"
    assert speaker_of("wavs/alice/take1/file.wav") == "alice"


@pytest.fixture
def english_manifest(tiny_speech_corpus, tiny_speech_manifest, tmp_path):
    """A private copy of the tiny corpus and its manifests (4 voices; only the en voice says its transcript).

    The audio is copied too: a test here rewrites a file, which the session's corpus must never see.
    """
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_speech_corpus, corpus)
    for name in ("train.tsv", "valid.tsv"):
        root, *rows = (tiny_speech_manifest / name).read_text().splitlines()
        (tmp_path / name).write_text("\n".join([str(corpus), *rows]) + "\n")
    return tmp_path


@pytest.mark.slow
def test_align_keeps_the_english_voice_caches_and_realigns_changed_audio(english_manifest):
    report, = align_manifest_dir(english_manifest, ["train"], progress=False)
    root, rows = read_manifest(english_manifest / "train.tsv")
    english = [k for k, _ in rows if speaker_of(k) == "9001"]
    assert english and report.with_phones == len(english) and report.aligned == len(english)
    assert all(r.startswith("not_selected") for r in report.skipped.values())
    phones = read_phn(english_manifest / "train.phn")
    assert sorted(phones) == sorted(english)
    meta = json.loads((english_manifest / "train.phn.json").read_text())
    assert meta["utterances"][english[0]]["status"] == "aligned" and len(meta["utterances"]) == len(rows)

    # unchanged audio: everything reused, nothing aligned again
    again, = align_manifest_dir(english_manifest, ["train"], progress=False)
    assert again.reused == len(english) and again.aligned == 0
    assert read_phn(english_manifest / "train.phn") == phones

    # one file changed (a copy of another, with the same transcript): that one is aligned again
    path = f"{root}/{english[0]}"
    audio, rate = sf.read(path, dtype="int16")
    sf.write(path, audio[: len(audio) * 3 // 4], rate, format="FLAC", subtype="PCM_16")
    third, = align_manifest_dir(english_manifest, ["train"], progress=False)
    assert third.aligned == 1 and third.reused == len(english) - 1
    assert read_phn(english_manifest / "train.phn")[english[0]][-1].end <= len(audio) * 3 / 4 / rate + 0.01


def test_words_missing_from_the_dictionary_skip_the_utterance_and_are_reported(english_manifest):
    _, rows = read_manifest(english_manifest / "valid.tsv")
    words = ["HELLO"] * len(rows)
    words[0] = "HELLO XYZZYQ WORLD"
    (english_manifest / "valid.wrd").write_text("\n".join(words) + "\n")
    report, = align_manifest_dir(english_manifest, ["valid"], speakers=[speaker_of(rows[0][0])], progress=False)
    assert report.skipped[rows[0][0]] == "missing_words: xyzzyq"
    assert report.missing_words == {"xyzzyq": 1}
    assert rows[0][0] not in read_phn(english_manifest / "valid.phn")
    assert "words not in the dictionary: xyzzyq (1)" in report.summary()


def test_align_refuses_a_missing_manifest_and_a_wrd_of_another_length(english_manifest):
    with pytest.raises(AlignmentError, match="no manifest dev.tsv"):
        align_manifest_dir(english_manifest, ["dev"], progress=False)
    (english_manifest / "valid.wrd").write_text("ONE LINE\n")
    with pytest.raises(AlignmentError, match="rewrite it with hypervq-labels"):
        align_manifest_dir(english_manifest, ["valid"], progress=False)
    assert not (english_manifest / "valid.phn").exists()


@needs_flite
@pytest.mark.slow
def test_synthesize_writes_audio_manifest_words_and_flites_phones_that_align_reuses(tmp_path):
    from helpers.runs import run_console

    out = tmp_path / "flite"
    run_console("hypervq-align", "--synthesize", out, "--per-voice", "2", "--quiet", cwd=tmp_path)
    _, rows = read_manifest(out / "valid.tsv")
    assert len(rows) == 6 and {speaker_of(k) for k, _ in rows} == {"9101", "9102", "9103"}
    assert len((out / "valid.wrd").read_text().splitlines()) == 6
    phones = read_phn(out / "valid.phn")
    assert sorted(phones) == sorted(k for k, _ in rows)
    meta = json.loads((out / "valid.phn.json").read_text())
    assert {e["source"] for e in meta["utterances"].values()} == {"flite"}
    done = run_console("hypervq-align", out, "--quiet", cwd=tmp_path)
    assert "6 of 6 utterances aligned (0 now, 6 reused)" in done.stdout
    assert read_phn(out / "valid.phn") == phones


@pytest.mark.parametrize("tool", ["align", "unit_eval"])
def test_help_ends_with_examples(tool, capsys):
    import importlib

    module = importlib.import_module(f"hypervq_fairseq.tools.{tool}")
    with pytest.raises(SystemExit):
        module.main(["--help"])
    out = capsys.readouterr().out
    examples = out.split("\nexamples:\n", 1)[1]
    assert examples.strip().splitlines()[-1].strip().startswith(("hypervq-", "--"))  # a command (or its continuation)
    assert f"hypervq-{tool.replace('_', '-')} " in examples
