"""Fine-tuning path: LibriSpeech-style labels, CTC fine-tuning of a HyperVQ checkpoint with fairseq's
``audio_finetuning`` + ``wav2vec_ctc``, and WER from fairseq's ctc criterion (training run and fairseq-validate)."""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hypervq_fairseq.configs
from hypervq_fairseq.data import labels
from hypervq_fairseq.fairseq.checkpoints import NoQuantizerError, load_pretrained
from hypervq_fairseq.tools import labels as labels_tool
from helpers.runs import run_console

FINETUNE_CONFIGS = Path(hypervq_fairseq.configs.__file__).parent / "finetune"


def copy_manifests(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "valid.tsv"):
        shutil.copy(src / name, dst / name)
    return dst


def transcripts_by_hand(manifest: Path) -> list:
    """Each manifest line's transcript, read straight from the .trans.txt files."""
    lines = manifest.read_text().splitlines()
    root, out = Path(lines[0]), []
    for line in lines[1:]:
        audio = root / line.split("\t")[0]
        trans = audio.parent / (audio.stem.rsplit("-", 1)[0] + ".trans.txt")
        table = dict(t.split(" ", 1) for t in trans.read_text().splitlines())
        out.append(table[audio.stem])
    return out


def test_letter_and_word_labels(tiny_speech_manifest, tmp_path):
    from fairseq.data import Dictionary
    from fairseq.data.data_utils import post_process

    data = copy_manifests(tiny_speech_manifest, tmp_path / "data")
    assert labels_tool.main([str(data), "--sentencepiece", "40"]) == 0
    for split in ("train", "valid"):
        words = (data / f"{split}.wrd").read_text().splitlines()
        letters = (data / f"{split}.ltr").read_text().splitlines()
        pieces = (data / f"{split}.spm").read_text().splitlines()
        assert words == transcripts_by_hand(data / f"{split}.tsv")
        assert len(words) == len(letters) == len(pieces) == len((data / f"{split}.tsv").read_text().splitlines()) - 1
        for w, ltr, spm in zip(words, letters, pieces):
            assert ltr.endswith(" |") and post_process(ltr, "letter") == w
            assert post_process(spm, "sentencepiece") == w

    # fairseq's dictionary format: every training symbol, counts as in the labels, most frequent first
    counts = collections.Counter((data / "train.ltr").read_text().split())
    d = Dictionary.load(str(data / "dict.ltr.txt"))
    assert all(d.index(sym) != d.unk() for sym in counts)
    rows = [line.split() for line in (data / "dict.ltr.txt").read_text().splitlines()]
    assert {s: int(n) for s, n in rows} == dict(counts)
    assert [int(n) for _, n in rows] == sorted((int(n) for _, n in rows), reverse=True)
    assert rows[0][0] == "|"  # one per word: the most frequent symbol
    assert Dictionary.load(str(data / "dict.spm.txt")).index("▁") is not None


def test_missing_transcript_fails_before_writing(tiny_speech_manifest, tmp_path):
    lines = (tiny_speech_manifest / "valid.tsv").read_text().splitlines()
    root = tmp_path / "corpus"
    rel = lines[1].split("\t")[0]
    (root / rel).parent.mkdir(parents=True)
    shutil.copy(Path(lines[0]) / rel, root / rel)  # audio without its .trans.txt
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text(f"{root}\n{lines[1]}\n")
    with pytest.raises(labels.LabelError, match=r"no transcript file .*\.trans\.txt"):
        labels.write_labels(data, ["train"])
    assert sorted(p.name for p in data.iterdir()) == ["train.tsv"]


@pytest.mark.slow
def test_finetune_hypervq_checkpoint_and_wer(pretrained_checkpoint, tiny_speech_manifest, tmp_path):
    data = copy_manifests(tiny_speech_manifest, tmp_path / "data")
    labels.write_labels(data, ["train", "valid"])

    # 1. fine-tune with fairseq-hydra-train: 2 updates, validation (WER) at the end
    save = tmp_path / "ctc"
    proc = run_console("fairseq-hydra-train", "--config-dir", FINETUNE_CONFIGS, "--config-name", "hypervq_ctc_tiny",
                       f"task.data={data}", f"model.w2v_path={pretrained_checkpoint}", f"checkpoint.save_dir={save}",
                       "optimization.max_update=2", f"hydra.run.dir={tmp_path / 'hydra'}", cwd=tmp_path)
    log = proc.stdout + proc.stderr
    valid = [json.loads(m) for m in re.findall(r"\]\[valid\]\[INFO\] - (\{.*\})", log)]
    assert valid, log[-3000:]
    wer = float(valid[-1]["valid_wer"])
    assert 0.0 <= wer < 1000 and int(valid[-1]["valid_num_updates"]) == 2
    assert int(valid[-1]["valid_nsentences"]) == len((data / "valid.wrd").read_text().splitlines())

    # the HyperVQ encoder was loaded: frozen conv weights equal the pretrained ones; no quantizer left
    ft = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    pre = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)
    key = "feature_extractor.conv_layers.0.0.weight"
    assert torch.equal(ft["model"][f"w2v_encoder.w2v_model.{key}"], pre["model"][key])
    assert not any("quantizer" in k for k in ft["model"])
    assert ft["cfg"]["model"]["w2v_args"]["model"]["_name"] == "hypervq_wav2vec2"

    # 2. the same WER from recipe step 08 (fairseq-validate, greedy CTC = Viterbi, letters -> words), one row per
    #    subset from one fairseq-validate call
    script = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "08_decode.sh"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], OMP_NUM_THREADS="1",
               MAX_TOKENS="400000")
    proc = subprocess.run(["bash", str(script), str(data), str(save / "checkpoint_last.pt"), "valid", "train"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = [line.split("\t") for line in (save / "wer.tsv").read_text().splitlines()]
    assert rows[0] == ["subset", "wer", "letter_error_rate", "utterances"]
    assert [r[0] for r in rows[1:]] == ["valid", "train"]
    assert float(rows[1][1]) == pytest.approx(wer, abs=0.01)
    for r in rows[1:]:
        assert int(r[3]) == len((data / f"{r[0]}.wrd").read_text().splitlines())
        assert 0.0 <= float(r[2]) <= 1000
    assert not (save / "wer.tsv.partial").exists()

    # 3. a fine-tuned model has no quantizer: the token dump says so and names the pretraining checkpoint
    with pytest.raises(NoQuantizerError, match=r"fine-tuned 'wav2vec_ctc'.*" + re.escape(str(pretrained_checkpoint))):
        load_pretrained(save / "checkpoint_last.pt")


@pytest.mark.parametrize("step", ["05_tokens.sh", "06_labels.sh", "07_finetune.sh", "08_decode.sh", "09_demo_asr.sh",
                                  "10_decode_lm.sh"])
def test_recipe_steps_parse_and_explain_usage(step, tmp_path):
    import subprocess

    script = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / step
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if step != "09_demo_asr.sh":  # 09 has defaults for everything; the others need arguments
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode != 0 and "usage:" in proc.stderr
