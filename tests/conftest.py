"""Shared fixtures, built once per session: a tiny real-speech corpus, its fairseq manifests, and a
tiny HyperVQ pretraining checkpoint made by the real fairseq-hydra-train."""
import pytest

from hypervq_fairseq.data.demo_corpus import build_demo_corpus
from hypervq_fairseq.data.manifest import build_manifests


@pytest.fixture(scope="session")
def tiny_speech_corpus(tmp_path_factory):
    """A LibriSpeech-layout tree of 40 short (0.5-3 s) real 16 kHz utterances, 4 voices."""
    root = tmp_path_factory.mktemp("speech") / "corpus"
    build_demo_corpus(root, max_utterances=40, max_seconds=3.0)
    return root


@pytest.fixture(scope="session")
def tiny_speech_manifest(tiny_speech_corpus, tmp_path_factory):
    """A folder with ``train.tsv`` (36 utterances) and ``valid.tsv`` (4) over the tiny corpus."""
    out = tmp_path_factory.mktemp("manifest")
    build_manifests(tiny_speech_corpus, out, train_subsets=["train-demo"], valid_subsets=["dev-demo"],
                    workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def pretrained_checkpoint(tiny_speech_manifest, tmp_path_factory):
    """``checkpoint_last.pt`` of 2 updates of ``hypervq_w2v2_tiny`` on the tiny real-speech corpus (made once)."""
    from helpers.runs import run_console

    work = tmp_path_factory.mktemp("hypervq_pretrained")
    run_console("fairseq-hydra-train", "--config-name", "hypervq_w2v2_tiny", f"task.data={tiny_speech_manifest}",
                f"checkpoint.save_dir={work / 'ckpt'}", "optimization.max_update=2",
                f"hydra.run.dir={work / 'hydra'}", cwd=work)
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    assert ckpt.exists()
    return ckpt


@pytest.fixture(scope="session")
def finetuned_checkpoint(pretrained_checkpoint, tiny_speech_manifest, tmp_path_factory):
    """``(checkpoint_last.pt, data folder)``: 2 updates of CTC fine-tuning (``hypervq_ctc_tiny``, letter
    targets) of ``pretrained_checkpoint`` by the real fairseq-hydra-train (made once)."""
    import shutil
    from pathlib import Path

    from hypervq_fairseq.data import labels
    from helpers.runs import run_console

    work = tmp_path_factory.mktemp("hypervq_ctc")
    data = work / "data"
    data.mkdir()
    for name in ("train.tsv", "valid.tsv"):
        shutil.copy(tiny_speech_manifest / name, data / name)
    labels.write_labels(data, ["train", "valid"])
    configs = Path(__file__).resolve().parents[1] / "configs" / "finetune"
    run_console("fairseq-hydra-train", "--config-dir", configs, "--config-name", "hypervq_ctc_tiny", f"task.data={data}",
                f"model.w2v_path={pretrained_checkpoint}", f"checkpoint.save_dir={work / 'ckpt'}",
                "optimization.max_update=2", f"hydra.run.dir={work / 'hydra'}", cwd=work)
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    assert ckpt.exists()
    return ckpt, data


@pytest.fixture(scope="session")
def ctc_checkpoint(finetuned_checkpoint):
    """The checkpoint file of ``finetuned_checkpoint``."""
    return finetuned_checkpoint[0]


@pytest.fixture(scope="session")
def finetune_manifest(finetuned_checkpoint):
    """The data folder of ``finetuned_checkpoint``: ``train``/``valid`` manifests, ``.wrd``, ``.ltr``, ``dict.ltr.txt``."""
    return finetuned_checkpoint[1]
