"""The speech-recognition demo's corpus: a deterministic held-apart split by transcript, so that no
test (or dev) sentence is ever heard in pretraining or fine-tuning; manifests as recipe 06 writes
them (SET=demo-asr); the greedy decoder's error rates."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hypervq_fairseq.data.demo_corpus import (ASR_METADATA, build_asr_corpus, held_apart_split, load_prompt_texts,
                                              normalize_text)
from hypervq_fairseq.data.manifest import build_manifests

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "librispeech"


def transcripts(manifest: Path) -> list:
    lines = manifest.read_text().splitlines()
    root, out = Path(lines[0]), []
    for line in lines[1:]:
        audio = root / line.split("\t")[0]
        table = dict(t.split(" ", 1) for t in (audio.parent / (audio.stem.rsplit("-", 1)[0] + ".trans.txt"))
                     .read_text().splitlines())
        out.append((audio, table[audio.stem]))
    return out


def test_split_is_fixed_by_the_words_alone():
    # pinned: changing the hash or its salt moves prompts between train and test, and must be deliberate
    assert held_apart_split("Call forward on busy.") == "test"
    assert held_apart_split("CALL FORWARD ON BUSY") == "test"  # the key is the normalized transcript
    assert held_apart_split("Thank you.") == "train"
    assert held_apart_split("anything", test_percent=100, dev_percent=0) == "test"
    assert held_apart_split("anything", test_percent=0, dev_percent=0) == "train"
    texts = [v for v in load_prompt_texts().values() if not v.startswith("[")]
    if len(texts) < 100:
        pytest.skip("the English prompt list (asterisk-core-sounds-en) is not installed")
    shares = {s: sum(held_apart_split(t) == s for t in texts) / len(texts) for s in ("train", "dev", "test")}
    assert 0.05 < shares["test"] < 0.15 and 0.05 < shares["dev"] < 0.2


def test_no_held_apart_sentence_in_training_manifests(tmp_path):
    root = tmp_path / "corpus"
    corpus = build_asr_corpus(root, flite_voices=("slt",), max_seconds=2.0, max_utterances=8)
    meta = json.loads((root / ASR_METADATA).read_text())
    assert corpus.subsets["train-asr"]["utterances"] == 8 and 1 <= corpus.subsets["test-asr"]["utterances"] <= 8
    assert set(meta["speakers"]) == {"9001", "9101"} and len(meta["prompts"]["test-asr"]) == corpus.subsets["test-asr"]["utterances"]

    out = tmp_path / "manifest"  # as recipe 06 with SET=demo-asr: train-asr -> train, dev-asr -> valid, test-asr -> test
    build_manifests(root, out, train_subsets=["train-asr"], valid_subsets=["dev-asr", "test-asr"], workers=1, progress=False)
    train, test = transcripts(out / "train.tsv"), transcripts(out / "test-asr.tsv")
    assert {a.parent.parent.name for a, _ in train} == {"9001", "9101"}  # real voice and flite
    assert {a.parent.parent.name for a, _ in test} == {"9001"}  # test utterances stay real speech
    assert all(held_apart_split(t) == "train" for _, t in train)
    assert all(held_apart_split(t) == "test" for _, t in test)
    assert not {t for _, t in train} & {t for _, t in transcripts(out / "valid.tsv")}
    # the listed test prompts are exactly the test transcripts, normalized
    texts = load_prompt_texts()
    assert sorted(normalize_text(texts[p]) for p in meta["prompts"]["test-asr"]) == sorted(t for _, t in test)

    # deterministic: a second build gives the same files and transcripts; a matching one is reused
    again = build_asr_corpus(tmp_path / "again", flite_voices=("slt",), max_seconds=2.0, max_utterances=8)
    files = lambda r: sorted((p.relative_to(r).as_posix(), p.stat().st_size) for p in r.rglob("*") if p.is_file())
    assert files(root) == files(tmp_path / "again") and again.subsets == corpus.subsets
    assert build_asr_corpus(root, flite_voices=("slt",), max_seconds=2.0, max_utterances=8).reused


@pytest.mark.slow
def test_recipe_06_writes_test_apart_from_valid(tmp_path):
    root = tmp_path / "corpus"
    build_asr_corpus(root, flite_voices=(), max_seconds=2.0, max_utterances=6)
    out = tmp_path / "manifest"
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])  # the venv's tools
    proc = subprocess.run(["bash", str(RECIPES / "06_labels.sh"), "demo-asr", str(root), str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for split, subset in (("train", "train-asr"), ("valid", "dev-asr"), ("test", "test-asr")):
        assert (out / f"{split}.ltr").exists()
        assert [t for _, t in transcripts(out / f"{split}.tsv")] == (out / f"{split}.wrd").read_text().splitlines()
        assert all(a.relative_to(root).parts[0] == subset for a, _ in transcripts(out / f"{split}.tsv"))


@pytest.mark.slow
def test_recipe_09_runs_end_to_end(tmp_path):
    """The whole recognizer recipe on a handful of real-voice prompts and a few updates: every step
    runs, the greedy rows come from fairseq-validate, the LM rows from hypervq-decode with the LM
    weight and word score picked on dev from the recipe's grid."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
               FLITE_VOICES="", MAX_UTTERANCES="8", PRETRAIN_UPDATES="2", FINETUNE_UPDATES="2", SEED="3")
    work = tmp_path / "demo_asr"
    proc = subprocess.run(["bash", str(RECIPES / "09_demo_asr.sh"), str(work)], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert json.loads((work / "corpus" / ASR_METADATA).read_text())  # the corpus it built
    rows = [line.split("\t") for line in (work / "ctc" / "wer.tsv").read_text().splitlines()]
    assert [r[0] for r in rows[1:]] == ["valid", "test"]
    assert all(float(r[2]) >= 0 for r in rows[1:])
    assert (work / "tokens" / "valid.tok").exists()
    report = json.loads((work / "ctc" / "decode_lm" / "wer.json").read_text())
    assert report["tune_subset"] == "valid"
    assert {(g["lm_weight"], g["word_score"]) for g in report["grid"]} == {
        (lw, ws) for lw in (1.5, 2.0, 3.0) for ws in (-1.0, 0.0, 1.0)}
    assert all(g["subset"] == "valid" for g in report["grid"])
    decoded = {(r["subset"], r["decoder"]): r for r in report["rows"]}
    assert set(decoded) == {(s, d) for s in ("valid", "test") for d in ("greedy", "lm")}
    best = min(report["grid"], key=lambda g: (g["wer"], g["cer"]))
    assert (decoded[("test", "lm")]["lm_weight"], decoded[("test", "lm")]["word_score"]) == (
        best["lm_weight"], best["word_score"])
    hyp = (work / "ctc" / "decode_lm" / "hyp" / "test.greedy.tsv").read_text().splitlines()
    assert hyp[0].split("\t")[:3] == ["id", "reference", "hypothesis"]
    assert len(hyp) - 1 == decoded[("test", "greedy")]["utterances"] == int(rows[2][3])
