"""Every hypervq-vision subcommand end to end on tiny real data (sklearn digits / Fashion-MNIST)."""
import json
import os

import pytest
import torch
from PIL import Image

from hypervq_fairseq.vision.cli import build_parser, main
from hypervq_fairseq.vision.data import DEBIAN_FASHION_MNIST, load_dataset, prepare_fashion_mnist

# 256 real Fashion-MNIST training images (64 for testing), a 16-channel VQ-VAE with K=16.
TINY = ["--dataset", "fashion-mnist", "--subset", "256", "--test-subset", "64", "--batch-size", "32", "--quiet",
        "--threads", "1", "--lr", "2e-3"]
MODEL = ["--num-codes", "16", "--embedding-dim", "8", "--hidden", "16", "--res-blocks", "1", "--res-hidden", "8"]


@pytest.fixture(scope="session", autouse=True)
def fashion_cache(tmp_path_factory):
    """Decompress the Debian Fashion-MNIST files once per session into pytest's tmp folder."""
    cache = tmp_path_factory.mktemp("fashion-mnist")
    os.environ["HYPERVQ_CACHE"] = str(cache)
    yield cache
    os.environ.pop("HYPERVQ_CACHE", None)


def run(*argv):
    assert main([str(a) for a in argv]) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vision") / "hypervq"
    run("train", "--quantizer", "hypervq", "--steps", 30, "--out", out, *TINY, *MODEL)
    return out


def test_train_writes_checkpoint_metrics_and_tensorboard(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert 0 < metrics["mse"] < 1 and 0.99 <= metrics["perplexity"] <= 16 and metrics["test_images"] == 64
    state = torch.load(trained / "checkpoint.pt", weights_only=False)
    assert state["kind"] == "vqvae" and state["step"] == 30 and state["config"]["quantizer"] == "hypervq"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(trained / "tb"))
    assert not [f for f in os.listdir(trained) if f.endswith(".tmp")]  # atomic writes leave nothing behind


@pytest.mark.slow
def test_train_logs_selection_statistics_for_gumbel_type_quantizers(tmp_path, capsys):
    """The training loop's TensorBoard file holds the three numbers for HyperVQ and GumbelVQ, not for k-means."""
    from torch.utils.data import Subset

    from hypervq_fairseq.eval.logs import read_tensorboard
    from hypervq_fairseq.tools import plot
    from hypervq_fairseq.vision.model import VQVAEConfig
    from hypervq_fairseq.vision.train import train_vqvae

    images = Subset(load_dataset("fashion-mnist"), range(64))
    keys = ("sample_is_argmax", "logit_gap", "logit_std")
    for quantizer in ("hypervq", "gumbel", "kmeans"):
        cfg = VQVAEConfig(quantizer=quantizer, num_codes=16, embedding_dim=8, hidden=16, res_blocks=1, res_hidden=8)
        train_vqvae(cfg, images, out=str(tmp_path / quantizer), steps=4, batch_size=16, log_every=2, quiet=True)
        scalars = read_tensorboard(tmp_path / quantizer / "tb", "train")
        if quantizer == "kmeans":  # no sampling: nothing to report
            assert not any(f"train/{k}" in scalars for k in keys)
            continue
        agree, gap, spread = (dict(scalars[f"train/{k}"]) for k in keys)
        assert sorted(agree) == [2, 4]  # every --log-every steps, like the loss
        assert all(0 <= v <= 1 for v in agree.values()) and all(v >= 0 for v in gap.values())
        assert all(v > 0 for v in spread.values())
    # hypervq-plot draws them next to the perplexity of both Gumbel-type runs
    capsys.readouterr()
    assert plot.main([str(tmp_path / "hypervq" / "tb"), str(tmp_path / "gumbel" / "tb"), "--label", "hypervq",
                      "--label", "gumbel", "--keys", "perplexity", "--selection", "-o", str(tmp_path / "sel.png")]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", ["hypervq", "kmeans"])
def test_resume_continues_exactly(tmp_path, quantizer):
    """2 steps + resume to 4 gives the same weights as 4 steps in one go (Gumbel noise included)."""
    args = ["--quantizer", quantizer, *TINY, *MODEL, "--save-every", "1"]
    run("train", "--steps", 4, "--out", tmp_path / "straight", *args)
    run("train", "--steps", 2, "--out", tmp_path / "split", *args)
    run("train", "--steps", 4, "--out", tmp_path / "split", "--resume", *args)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


@pytest.mark.slow
def test_resume_refuses_a_different_config(tmp_path, capsys):
    run("train", "--quantizer", "kmeans", "--steps", 1, "--out", tmp_path, *TINY, *MODEL)
    capsys.readouterr()
    assert main(["train", "--quantizer", "gumbel", "--steps", "2", "--out", str(tmp_path), "--resume",
                 *TINY, *MODEL]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hypervq-vision: error:") and "trained with config" in err[0]


@pytest.mark.slow
def test_probe_trains_a_head_on_frozen_features(trained, tmp_path):
    before = torch.load(trained / "checkpoint.pt", weights_only=False)["model"]
    run("probe", "--checkpoint", trained / "checkpoint.pt", "--steps", 60, "--out", tmp_path, *TINY)
    metrics = json.loads((tmp_path / "probe_metrics.json").read_text())
    assert metrics["train_accuracy"] > 20 and metrics["accuracy"] > 20  # 10 classes: chance is 10 %
    after = torch.load(trained / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    run("probe", "--checkpoint", trained / "checkpoint.pt", "--steps", 65, "--out", tmp_path, "--resume", *TINY)
    assert torch.load(tmp_path / "probe.pt", weights_only=False)["step"] == 65


def test_codebook_grid_has_one_patch_per_code(trained, tmp_path):
    run("codebook", "--checkpoint", trained / "checkpoint.pt", "--out", tmp_path)
    info = json.loads((tmp_path / "codebook.json").read_text())
    assert info["codes"] == 16 and info["patch"] == [1, 4, 4] and 1 <= info["distinct_patches"] <= 16
    w, h = Image.open(tmp_path / "codebook.png").size
    assert (w, h) == (4 * (32 + 2) + 2, 4 * (32 + 2) + 2)  # 4×4 grid of 4×4 patches upscaled ×8, 2 px padding


@pytest.mark.slow
def test_disentangle_scores_with_latent_dim_3(tmp_path):
    run("disentangle", "--quantizer", "kmeans", "--steps", 10, "--samples", 200, "--out", tmp_path, *TINY, "--hidden", "16")
    scores = json.loads((tmp_path / "disentangle.json").read_text())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["config"]["embedding_dim"] == 3 and state["config"]["num_codes"] == 16
    assert scores["samples"] == 200
    for cond in ("clean", "noisy"):
        s = scores[cond]
        assert ("note" in s) or (-1 <= s["silhouette"] <= 1 and s["davies_bouldin"] >= 0)
    assert Image.open(tmp_path / "scatter.png").size[0] > 100


@pytest.mark.slow
def test_prior_trains_samples_and_scores_with_local_inception_weights(trained, tmp_path, monkeypatch):
    """The real Inception-v3 (random weights saved to a file, as a user's weights would be), fed 75×75
    instead of 299×299 images so that the test takes seconds: the network accepts both."""
    from torchvision.models import inception_v3
    from hypervq_fairseq.vision import inception_metrics

    monkeypatch.setattr(inception_metrics, "INPUT_SIZE", 75)
    weights = tmp_path / "inception.pth"
    torch.manual_seed(0)
    with torch.device("meta"):
        shapes = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    state = {k: (torch.ones(v.shape) if k.endswith("running_var") else torch.zeros(v.shape, dtype=v.dtype)
                 if k.endswith(("running_mean", "num_batches_tracked")) else 0.05 * torch.randn(v.shape))
             for k, v in shapes.items()}
    torch.save(state, weights)
    run("prior", "--checkpoint", trained / "checkpoint.pt", "--steps", 5, "--layers", 2, "--prior-dim", 8,
        "--samples", 4, "--out", tmp_path / "p", *TINY)
    m = json.loads((tmp_path / "p" / "prior_metrics.json").read_text())
    assert m["fid"] is None and "inception-weights" in m["note"] and m["test_nll"] > 0
    assert Image.open(tmp_path / "p" / "samples.png").size[0] > 8
    run("prior", "--checkpoint", trained / "checkpoint.pt", "--steps", 6, "--layers", 2, "--prior-dim", 8,
        "--samples", 4, "--out", tmp_path / "p", "--resume", "--inception-weights", weights, *TINY)
    m = json.loads((tmp_path / "p" / "prior_metrics.json").read_text())
    assert m["fid"] >= 0 and m["inception_score"] >= 1.0
    assert torch.load(tmp_path / "p" / "prior.pt", weights_only=False)["step"] == 6


@pytest.mark.slow
def test_compare_writes_a_paper_style_table(tmp_path):
    run("compare", "--quantizers", "kmeans", "hypervq", "--steps", 3, "--probe-steps", 3, "--dis-steps", 3,
        "--dis-samples", 100, "--out", tmp_path, *TINY, *MODEL)
    table = (tmp_path / "results.md").read_text()
    assert "| KmeansVQ |" in table and "| HyperVQ |" in table and "Probe acc." in table
    assert "silhouette HyperVQ > KmeansVQ" in table
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert set(rows) == {"kmeans", "hypervq"} and all(0 < r["mse"] < 1 for r in rows.values())
    assert rows["kmeans"]["sample_is_argmax"] is None and 0 <= rows["hypervq"]["sample_is_argmax"] <= 1
    # a rerun resumes: finished stages are read back, not retrained
    mtime = os.path.getmtime(tmp_path / "hypervq" / "vqvae" / "checkpoint.pt")
    run("compare", "--quantizers", "kmeans", "hypervq", "--steps", 3, "--probe-steps", 3, "--dis-steps", 3,
        "--dis-samples", 100, "--out", tmp_path, *TINY, *MODEL)
    assert os.path.getmtime(tmp_path / "hypervq" / "vqvae" / "checkpoint.pt") == mtime


def test_help_ends_with_examples():
    text = build_parser().format_help()
    assert text.rstrip().splitlines()[-1].strip().startswith("OMP_NUM_THREADS=1 nice hypervq-vision compare")
    assert "examples:" in text


def test_fashion_mnist_from_the_debian_files(tmp_path):
    if not os.path.isdir(DEBIAN_FASHION_MNIST):
        pytest.fail(f"{DEBIAN_FASHION_MNIST} missing: scripts/setup.sh installs dataset-fashion-mnist")
    ds = load_dataset("fashion-mnist", train=False, cache_dir=str(tmp_path))
    x, y = ds[0]
    assert len(ds) == 10000 and x.shape == (1, 28, 28) and -0.5 <= x.min() < x.max() <= 0.5 and 0 <= int(y) < 10
    assert sorted(os.listdir(tmp_path / "FashionMNIST" / "raw"))[0] == "t10k-images-idx3-ubyte"


def test_inception_weights_must_be_an_inception_state_dict(tmp_path):
    from hypervq_fairseq.vision.inception_metrics import load_inception

    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_inception(str(tmp_path / "nowhere.pth"))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision inception_v3 state dict"):
        load_inception(str(tmp_path / "bad.pth"))


def test_missing_datasets_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        prepare_fashion_mnist(str(tmp_path / "nowhere"), str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset("cifar100", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ImageFolder"):
        load_dataset("imagenet", str(tmp_path))


@pytest.mark.slow
def test_old_quantizer_name_trains_and_its_checkpoints_resume_under_the_new_one(tmp_path, capsys):
    with pytest.warns(DeprecationWarning, match="use 'hypervq'"):
        run("train", "--quantizer", "hyper", "--steps", 1, "--out", tmp_path, *TINY, *MODEL)
    assert "use 'hypervq'" in capsys.readouterr().err
    ckpt = tmp_path / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    assert state["config"]["quantizer"] == "hypervq"
    state["config"]["quantizer"] = "hyper"  # as the previous release wrote it
    torch.save(state, ckpt)
    run("train", "--quantizer", "hypervq", "--steps", 2, "--out", tmp_path, "--resume", *TINY, *MODEL)
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    run("codebook", "--checkpoint", ckpt, "--out", tmp_path / "codebook")


def test_heldout_selection_draws_noise_in_the_quantizer_only_and_leaves_kmeans_untouched():
    """evaluate_vqvae's held-out agreement: a Gumbel draw per test position, seeded; k-means reports none."""
    from torch.utils.data import Subset

    from hypervq_fairseq.vision.model import VQVAE, VQVAEConfig
    from hypervq_fairseq.vision.train import evaluate_vqvae

    images = Subset(load_dataset("fashion-mnist"), range(32))
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(quantizer="hypervq", num_codes=16, embedding_dim=8, hidden=16, res_blocks=1, res_hidden=8))
    first, second = evaluate_vqvae(model, images, batch_size=16), evaluate_vqvae(model, images, batch_size=16)
    assert 0 < first["heldout_sample_is_argmax"] < 1 and first["heldout_logit_gap"] > 0
    assert first == second and not model.quantizer.training and not model.training  # seeded; back in eval mode
    kmeans = VQVAE(VQVAEConfig(quantizer="kmeans", num_codes=16, embedding_dim=8, hidden=16, res_blocks=1, res_hidden=8,
                               quantizer_options={"ema": True}))
    before = {k: v.clone() for k, v in kmeans.state_dict().items()}
    metrics = evaluate_vqvae(kmeans, images, batch_size=16)
    assert not any(k.startswith("heldout_") for k in metrics)
    assert all(torch.equal(before[k], v) for k, v in kmeans.state_dict().items())
