"""VQ-SA (paper §5.4): head shapes, a training step, exact resume, the corruption split, mCE.

Everything runs on real data at toy sizes (scikit-learn digits upsampled to 32×32,
a 4-channel backbone, a handful of updates) so the file takes seconds on one CPU core.
"""
import json

import numpy as np
import pytest
import torch

from hypervq_fairseq.vision.vqsa import cli as vqsa_cli
from hypervq_fairseq.vision.vqsa.corruptions import (KNOWN_CORRUPTIONS, UNKNOWN_CORRUPTIONS, RandomCorruption,
                                                     check_split, corrupt_batch, corrupt_image)
from hypervq_fairseq.vision.vqsa.data import GRAY_MEAN, GRAY_STD, Normalise, TrainPairs, load_small
from hypervq_fairseq.vision.vqsa.metrics import corruption_error, mean_accuracy, mean_corruption_error, summary
from hypervq_fairseq.vision.vqsa.model import SmallBackbone, VQSAClassifier, build_backbone
from hypervq_fairseq.vision.vqsa.train import VQSAConfig, build_model, evaluate, train, train_step

TINY = dict(dataset="digits", train_limit=64, eval_limit=24, width=4, dim=16, codes=16, heads=2, pool=2,
            batch_size=16, known="gaussian_noise,contrast", unknown="speckle_noise", severities="1,3",
            threads=1, progress=False, temp="(2, 0.5, 0.9)")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("quantizer", ["hypervq", "kmeans", "gumbel", "hyper_kmeans", "hyper_embmat", "none"])
def test_head_shapes_for_each_quantizer(quantizer):
    torch.manual_seed(0)
    model = VQSAClassifier(SmallBackbone(3, width=4), 7, quantizer=quantizer, dim=16, num_codes=12, heads=2, pool=2)
    x = torch.randn(5, 3, 32, 32)
    logits, q = model(x)
    assert logits.shape == (5, 7) and torch.isfinite(logits).all()
    if quantizer == "none":
        assert q is None
        return
    # backbone map is 4×4; the quantized map keeps it, codes are one index per position
    assert q.z_q.shape == (5, 16, 4, 4)
    assert q.indices.shape == (5, 4, 4) and q.indices.min() >= 0 and q.indices.max() < 12
    assert q.loss.dim() == 0 and torch.isfinite(q.loss)
    model.eval()
    logits_eval, q_eval = model(x)
    assert logits_eval.shape == (5, 7)
    # in eval the quantized map is made of codebook vectors: at most 12 distinct vectors
    rows = q_eval.z_q.permute(0, 2, 3, 1).reshape(-1, 16)
    assert len(torch.unique(rows.round(decimals=5), dim=0)) <= 12


def test_unknown_quantizer_and_backbone_fail_clearly():
    with pytest.raises(ValueError, match="expected one of"):
        VQSAClassifier(SmallBackbone(3, 4), 10, quantizer="kmeans++", dim=16, num_codes=8)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="quantizer must be"):
        VQSAConfig(out="x", quantizer="pq")


@pytest.mark.parametrize("quantizer", ["hypervq", "kmeans", "gumbel", "hyper_kmeans", "hyper_embmat"])
def test_training_step_has_finite_loss_and_reaches_the_codebook(quantizer, tmp_path):
    torch.manual_seed(0)
    cfg = VQSAConfig(out=str(tmp_path), quantizer=quantizer, **TINY)
    base = load_small("digits", train=True, limit=8, seed=0)
    pairs = TrainPairs(base, Normalise(GRAY_MEAN, GRAY_STD), RandomCorruption(cfg.known_list, seed=0))
    batch = torch.utils.data.default_collate([pairs[i] for i in range(8)])
    assert len(batch) == 3 and batch[0].shape == batch[1].shape == (8, 3, 32, 32)
    assert not torch.equal(batch[0], batch[1])  # the second half is corrupted
    model = build_model(cfg, 10).train()
    terms = train_step(model, batch, cfg, torch.device("cpu"))
    assert torch.isfinite(terms["loss"]) and terms["loss"] > 0
    assert "consistency" in terms and torch.isfinite(terms["consistency"])
    terms["loss"].backward()
    grads = [p.grad for p in model.head.quantizer.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_resume_continues_exactly(tmp_path):
    """4 steps in one go == 2 steps, stop, resume for the rest (weights bit-for-bit)."""
    common = dict(TINY, quantizer="hypervq", epochs=2, save_every=100, train_limit=32)
    full = train(VQSAConfig(out=str(tmp_path / "full"), **common))
    first = train(VQSAConfig(out=str(tmp_path / "split"), max_steps=3, **common))
    ckpt = torch.load(tmp_path / "split" / "checkpoint_last.pt", weights_only=False)
    assert ckpt["step"] == 3
    resumed = train(VQSAConfig(out=str(tmp_path / "split"), resume=True, **common))
    assert torch.load(tmp_path / "split" / "checkpoint_last.pt", weights_only=False)["step"] == 4
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), first.state_dict().values()))


def test_resume_refuses_a_different_architecture(tmp_path):
    train(VQSAConfig(out=str(tmp_path), quantizer="kmeans", epochs=1, max_steps=1, **{k: v for k, v in TINY.items()}))
    with pytest.raises(ValueError, match="quantizer"):
        train(VQSAConfig(out=str(tmp_path), quantizer="gumbel", epochs=1, resume=True, **TINY))


def test_corruption_split_is_disjoint_and_covers_imagenet_c():
    from imagecorruptions import get_corruption_names

    assert not set(KNOWN_CORRUPTIONS) & set(UNKNOWN_CORRUPTIONS)
    assert set(KNOWN_CORRUPTIONS) == set(get_corruption_names("common"))
    assert set(UNKNOWN_CORRUPTIONS) == set(get_corruption_names("validation"))
    check_split(["gaussian_noise"], ["speckle_noise"])
    with pytest.raises(ValueError, match="known"):
        check_split(["gaussian_noise", "speckle_noise"], ["saturate"])  # a held-out type in training
    with pytest.raises(ValueError, match="unknown"):
        check_split(["gaussian_noise"], ["gaussian_noise"])
    # training draws only from the known list it was given
    aug = RandomCorruption(["contrast"], seed=1)
    img = load_small("digits", train=True, limit=1, seed=0)[0][0]
    names = set()
    for i in range(20):
        out = aug(img, i, epoch=0)
        assert out.shape == img.shape and out.dtype == np.uint8
        names.add(bool((out != img).any()))
    assert names == {True}


def test_corruptions_are_seeded_per_image_and_check_sizes():
    imgs = load_small("digits", train=False, limit=3, seed=0).images
    a = corrupt_batch(imgs, "gaussian_noise", 3, seed=5)
    b = corrupt_batch(imgs, "gaussian_noise", 3, seed=5)
    c = corrupt_batch(imgs, "gaussian_noise", 3, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == imgs.shape and a.dtype == np.uint8
    # stronger severity moves the image further
    d1 = np.abs(corrupt_batch(imgs, "gaussian_noise", 1, 5).astype(int) - imgs).mean()
    d5 = np.abs(corrupt_batch(imgs, "gaussian_noise", 5, 5).astype(int) - imgs).mean()
    assert d5 > d1 > 0
    with pytest.raises(ValueError, match="at least 32"):
        corrupt_image(np.zeros((28, 28, 3), np.uint8), "contrast", 1, 0)
    with pytest.raises(ValueError, match="severity"):
        corrupt_image(imgs[0], "contrast", 6, 0)


def test_mce_against_reference_errors_as_defined():
    # E^f_{s,c} and E^ref_{s,c}, severities 1 and 2
    mine = {"blur": {1: 0.2, 2: 0.4}, "noise": {1: 0.5, 2: 0.5}}
    ref = {"blur": {1: 0.4, 2: 0.4}, "noise": {1: 0.5, 2: 1.0}}
    # CE_blur = (0.2 + 0.4) / (0.4 + 0.4) = 0.75 ; CE_noise = (0.5 + 0.5) / (0.5 + 1.0) = 2/3
    assert corruption_error(mine, ref, "blur") == pytest.approx(0.75)
    assert corruption_error(mine, ref, "noise") == pytest.approx(2 / 3)
    # mCE = 100 · (0.75 + 2/3) / 2 = 70.8333… (not the mean of per-severity ratios, 75, nor the pooled ratio, 69.6)
    assert mean_corruption_error(mine, ref) == pytest.approx(100 * (0.75 + 2 / 3) / 2)
    assert mean_corruption_error(mine, ref, ["blur"]) == pytest.approx(75.0)
    assert mean_corruption_error(ref, ref) == pytest.approx(100.0)
    assert mean_accuracy(mine, ["blur", "noise"]) == pytest.approx(100 * (0.8 + 0.6 + 0.5 + 0.5) / 4)
    row = summary(0.1, mine, ["blur"], ["noise"], ref)
    assert row == pytest.approx({"clean": 90.0, "known": 70.0, "unknown": 50.0, "mCE": 75.0})
    with pytest.raises(ValueError, match="severities differ"):
        corruption_error({"blur": {1: 0.2}}, ref, "blur")
    with pytest.raises(ValueError, match="no errors"):
        corruption_error(mine, {"blur": {1: 0.0, 2: 0.0}}, "blur")


def test_evaluate_writes_errors_for_every_corruption_and_severity(tmp_path):
    cfg = VQSAConfig(out=str(tmp_path), quantizer="gumbel", epochs=1, **TINY)
    model = train(cfg)
    result = evaluate(model, cfg, reference=None)
    saved = json.loads((tmp_path / "errors.json").read_text())
    assert set(saved["corruptions"]) == {"gaussian_noise", "contrast", "speckle_noise"}
    assert all(set(v) == {"1", "3"} for v in saved["corruptions"].values())
    assert all(0.0 <= e <= 1.0 for v in saved["corruptions"].values() for e in v.values())
    assert saved["eval_images"] == 24 and result["clean"] == saved["clean"]
    with_ref = evaluate(model, cfg, reference=saved)  # against itself: mCE is exactly 100
    assert with_ref["metrics"]["mCE"] == pytest.approx(100.0)
    assert json.loads((tmp_path / "metrics.json").read_text())["known"] == pytest.approx(with_ref["metrics"]["known"])


def test_cli_compare_builds_the_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--out", str(out), "--dataset", "digits", "--train-limit", "48", "--eval-limit", "16",
            "--width", "4", "--dim", "16", "--codes", "16", "--heads", "2", "--pool", "2", "--batch-size", "16",
            "--epochs-ref", "1", "--epochs", "1", "--known", "contrast", "--unknown", "speckle_noise",
            "--severities", "2", "--threads", "1", "--no-progress", "--quantizers", "hypervq,kmeans"]
    assert vqsa_cli.main(args) == 0
    table = (out / "table.md").read_text()
    assert "| backbone alone |" in table and "| HyperVQ-SA |" in table and "| VQ-SA |" in table
    assert "| 100.0 |" in table.splitlines()[2]  # the reference's own mCE
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["key"] for r in rows] == ["reference", "hypervq", "kmeans"]
    # a second call reuses every finished stage
    assert vqsa_cli.main(args) == 0
    assert "done before" in capsys.readouterr().out
    # eval needs a checkpoint, and says so in one line
    assert vqsa_cli.main(["eval", "--out", str(tmp_path / "empty"), "--dataset", "digits", "--quantizer", "kmeans"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vqsa: error:") and "train first" in err[0]


def test_hypervq_vision_dispatches_vqsa(tmp_path, capsys):
    from hypervq_fairseq.vision.cli import main as vision_main

    assert vision_main(["vqsa", "eval", "--out", str(tmp_path), "--dataset", "digits", "--quantizer", "hypervq"]) == 1
    assert "train first" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        vision_main(["vqsa", "train", "--out", str(tmp_path), "--quantizer", "pq"])
    assert exit_.value.code == 2 and "'pq'" in capsys.readouterr().err


@pytest.mark.slow
def test_resnet50_backbone_loads_a_local_torchvision_file(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    net = resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(net.state_dict(), path)
    cfg = VQSAConfig(out=str(tmp_path), backbone="resnet50", backbone_weights=str(path), quantizer="hypervq",
                     codes=16, dim=32, pool=2)
    model = build_model(cfg, 10)
    assert torch.equal(model.backbone.net.conv1.weight, net.conv1.weight)
    assert torch.equal(model.backbone.net.layer4[2].conv3.weight, net.layer4[2].conv3.weight)
    assert model.backbone(torch.zeros(1, 3, 64, 64)).shape == (1, 2048, 2, 2)
    # the backbone-alone row keeps the pretrained classifier
    alone = build_model(VQSAConfig(out=str(tmp_path), backbone="resnet50", backbone_weights=str(path), quantizer="none"), 1000)
    assert torch.equal(alone.head.classifier.weight, net.fc.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision ResNet-50"):
        build_model(VQSAConfig(out=str(tmp_path), backbone="resnet50", backbone_weights=str(tmp_path / "bad.pth")), 10)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_model(VQSAConfig(out=str(tmp_path), backbone="resnet50", backbone_weights=str(tmp_path / "missing.pth")), 10)


def test_fashion_mnist_images_are_padded_rgb(tmp_path):
    ds = load_small("fashion-mnist", train=False, cache_dir=str(tmp_path), limit=6, seed=0)
    assert ds.images.shape == (6, 32, 32, 3) and ds.images.dtype == np.uint8
    assert (ds.images[:, :2] == 0).all() and (ds.images[..., 0] == ds.images[..., 2]).all()
    assert ds.images.max() > 100 and set(ds.labels.tolist()) <= set(range(10))


def _image_folder(root, classes, per_class, size, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True)
        for i in range(per_class):
            # class-dependent brightness so that the task is learnable
            arr = (rng.random((size, size, 3)) * 60 + 120 * c).clip(0, 255).astype(np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")


def test_imagenet_layout_trains_and_evaluates_with_imagenet_c_folders(tmp_path):
    """The ImageFolder path (train/ and val/) and released ImageNet-C folders (<corruption>/<severity>/<class>)."""
    _image_folder(tmp_path / "in" / "train", 2, 4, 48, 0)
    _image_folder(tmp_path / "in" / "val", 2, 2, 48, 1)
    for c in ("contrast", "speckle_noise"):
        _image_folder(tmp_path / "in-c" / c / "2", 2, 2, 224, 2)
    cfg = VQSAConfig(out=str(tmp_path / "run"), dataset="imagenet", data_root=str(tmp_path / "in"),
                     imagenet_c=str(tmp_path / "in-c"), quantizer="kmeans", width=4, dim=16, codes=8, heads=2, pool=2,
                     batch_size=4, epochs=1, known="contrast", unknown="speckle_noise", severities="2",
                     threads=1, progress=False)
    model = train(cfg)
    result = evaluate(model, cfg)
    assert result["eval_images"] == 4
    assert set(result["corruptions"]) == {"contrast", "speckle_noise"}
    assert all(0.0 <= e <= 1.0 for v in result["corruptions"].values() for e in v.values())
    with pytest.raises(FileNotFoundError, match="ImageFolder layout"):
        train(VQSAConfig(out=str(tmp_path / "x"), dataset="imagenet", data_root=str(tmp_path / "nowhere"), **{
            k: v for k, v in TINY.items() if k != "dataset"}))


def test_old_quantizer_names_work_and_old_checkpoints_resume(tmp_path, capsys):
    with pytest.warns(DeprecationWarning, match="use 'kmeans'"):
        cfg = VQSAConfig(out=str(tmp_path), quantizer="vq", epochs=1, max_steps=1, **TINY)
    assert cfg.quantizer == "kmeans" and "'kmeans'" in capsys.readouterr().err
    train(cfg)
    # a checkpoint of the previous release names the quantizer "vq"
    path = tmp_path / "checkpoint_last.pt"
    state = torch.load(path, weights_only=False)
    state["config"]["quantizer"] = "vq"
    torch.save(state, path)
    train(VQSAConfig(out=str(tmp_path), quantizer="kmeans", epochs=1, max_steps=1, resume=True, **TINY))
    assert torch.load(path, weights_only=False)["step"] == 2
