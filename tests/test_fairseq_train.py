"""End to end: fairseq's own console scripts train the plugin's tiny configs on real speech.

One HyperVQ run and one Gumbel run (3 updates each) are shared by the tests of this module;
each later test adds at most one short subprocess (resume, reload, argparse tools, errors).
"""
import math
import shutil
from pathlib import Path

import pytest

from helpers.runs import check_ok, hydra_train, json_records, run_tool, tensorboard_scalars

pytest.importorskip("fairseq")

pytestmark = pytest.mark.slow  # every test here shares one real training run


UPDATES = 3
HYPER_KEYS = ("code_perplexity", "prob_perplexity", "temp", "code_perplexity_g0", "code_perplexity_g1",
              "prob_perplexity_g0", "prob_perplexity_g1", "dead_codes", "hyperbolic_radius")
TEMP = (2.0, 0.5, 0.995)  # model.latent_temp of the tiny configs
REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "hypervq_fairseq"


@pytest.fixture(scope="module")
def runs(tiny_speech_manifest, tmp_path_factory):
    """HyperVQ: installed config name only (no --config-dir, no user_dir).
    Gumbel: --config-dir and common.user_dir pointing at the installed package."""
    root = tmp_path_factory.mktemp("w2v2")
    hyper = hydra_train("hypervq_w2v2_tiny", tiny_speech_manifest, root / "hyper", UPDATES)
    gumbel = hydra_train("gumbel_w2v2_tiny", tiny_speech_manifest, root / "gumbel", UPDATES,
                         f"common.user_dir={PACKAGE_DIR}", config_dir=REPO / "configs")
    return {"root": root, "manifest": tiny_speech_manifest, "hyper": hyper, "gumbel": gumbel}


@pytest.mark.parametrize("name", ["hyper", "gumbel"])
def test_trains_with_finite_losses(runs, name):
    proc = runs[name]
    check_ok(proc)
    records = json_records(proc)
    assert [int(r["num_updates"]) for r in records] == list(range(1, UPDATES + 1))
    for r in records:
        assert math.isfinite(float(r["loss"])) and float(r["loss"]) > 0
        assert 0 < float(r["prob_perplexity"]) <= 64 and 0 < float(r["code_perplexity"]) <= 64
    assert json_records(proc, "valid"), "no validation record"
    assert (runs["root"] / name / "ckpt" / "checkpoint_last.pt").is_file()


def test_monitoring_keys_reach_tensorboard(runs):
    check_ok(runs["hyper"])
    scalars = tensorboard_scalars(runs["root"] / "hyper" / "tb")
    for key in HYPER_KEYS + ("loss",):
        assert key in scalars, f"{key} missing from TensorBoard; have {sorted(scalars)}"
        assert [step for step, _ in scalars[key]] == list(range(1, UPDATES + 1))
    groups = [v for _, v in scalars["code_perplexity_g0"]], [v for _, v in scalars["code_perplexity_g1"]]
    total = [v for _, v in scalars["code_perplexity"]]
    assert all(abs(a + b - t) < 0.01 for a, b, t in zip(*groups, total))
    assert all(0 <= v <= 64 for _, v in scalars["dead_codes"])
    assert all(v > 0 for _, v in scalars["hyperbolic_radius"])
    assert "dead_codes" in tensorboard_scalars(runs["root"] / "hyper" / "tb", "valid")
    gumbel = tensorboard_scalars(runs["root"] / "gumbel" / "tb")
    assert {"code_perplexity", "prob_perplexity", "temp", "dead_codes", "sample_is_argmax", "logit_gap"} <= set(gumbel)
    assert "hyperbolic_radius" not in gumbel


def test_resume_continues_temperature(runs):
    check_ok(runs["hyper"])
    work = runs["root"] / "hyper_resumed"
    shutil.copytree(runs["root"] / "hyper" / "ckpt", work / "ckpt")
    proc = hydra_train("hypervq_w2v2_tiny", runs["manifest"], work, UPDATES + 2, tensorboard=False)
    check_ok(proc)
    assert f"@ {UPDATES} updates" in proc.stderr + proc.stdout  # "Loaded checkpoint ... (epoch 1 @ 3 updates)"
    records = json_records(proc)
    assert [int(r["num_updates"]) for r in records] == [UPDATES + 1, UPDATES + 2]
    max_t, min_t, decay = TEMP
    for r in records:  # the update numbered n runs at the temperature of n - 1 finished updates
        expected = max(max_t * decay ** (int(r["num_updates"]) - 1), min_t)
        assert float(r["temp"]) == pytest.approx(expected, abs=1e-3)
    assert float(records[0]["temp"]) < max_t - 0.01


def test_checkpoints_reload_in_a_fresh_process(runs, tmp_path):
    check_ok(runs["hyper"])
    check_ok(runs["gumbel"])
    script = tmp_path / "reload.py"
    script.write_text(
        "import sys, torch\n"
        "import hypervq_fairseq  # registers hypervq_wav2vec2 with fairseq\n"
        "from fairseq import checkpoint_utils\n"
        "for path in sys.argv[1:]:\n"
        "    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path])\n"
        "    m = models[0].eval()\n"
        "    x, targets = m.quantize(torch.randn(1, 16000))\n"
        "    assert torch.isfinite(x).all()\n"
        "    print(type(m).__name__, cfg.model._name, cfg.model.quantizer_type, type(m.quantizer).__name__,\n"
        "          round(m.quantizer.curr_temp, 6), tuple(targets.shape))\n"
    )
    proc = run_tool("python", [script, runs["root"] / "hyper" / "ckpt" / "checkpoint_last.pt",
                               runs["root"] / "gumbel" / "ckpt" / "checkpoint_last.pt"], cwd=tmp_path)
    check_ok(proc)
    hyper, gumbel = proc.stdout.strip().splitlines()[-2:]
    expected_temp = round(TEMP[0] * TEMP[2] ** UPDATES, 6)
    assert hyper.split()[:4] == ["HyperVQWav2Vec2Model", "hypervq_wav2vec2", "hyperbolic", "HyperbolicVectorQuantizer"]
    assert float(hyper.split()[4]) == pytest.approx(expected_temp)
    assert gumbel.split()[:4] == ["HyperVQWav2Vec2Model", "hypervq_wav2vec2", "gumbel", "GumbelVectorQuantizer"]


def _png_pixels(path):
    """RGB pixels (0-255 integers) of a PNG, read back with matplotlib."""
    import matplotlib.image

    return (matplotlib.image.imread(str(path))[..., :3] * 255).round().astype(int)


def test_plot_holds_both_runs(runs, tmp_path):
    check_ok(runs["hyper"])
    check_ok(runs["gumbel"])
    out, page = tmp_path / "plots" / "ppl.png", tmp_path / "plots" / "ppl.html"
    proc = run_tool("hypervq-plot", [runs["root"] / "hyper" / "tb", runs["root"] / "gumbel" / "tb",
                                     "--label", "HyperVQ", "--label", "Gumbel", "-o", out, "--html", page],
                    cwd=tmp_path)
    check_ok(proc)
    pixels = _png_pixels(out)
    assert pixels.shape[1] > pixels.shape[0] > 100  # two panels side by side
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours  # matplotlib's C0 and C1: two runs
    text = page.read_text()
    assert "HyperVQ" in text and "Gumbel" in text and "data:image/png;base64," in text
    assert not list(out.parent.glob(".*tmp"))  # atomic writes leave no temporary files


def test_fairseq_train_and_validate_with_user_dir(runs, tmp_path):
    """fairseq's argparse tools load the plugin through --user-dir."""
    check_ok(runs["hyper"])
    manifest = runs["manifest"]
    proc = run_tool("fairseq-validate", [
        manifest, "--user-dir", PACKAGE_DIR, "--path", runs["root"] / "hyper" / "ckpt" / "checkpoint_last.pt",
        "--task", "audio_pretraining", "--valid-subset", "valid", "--cpu", "--max-tokens", "96000",
    ], cwd=tmp_path)
    check_ok(proc)
    assert "valid on 'valid' subset" in proc.stdout + proc.stderr
    proc = run_tool("fairseq-train", [
        manifest, "--user-dir", PACKAGE_DIR, "--task", "audio_pretraining", "--arch", "hypervq_wav2vec2",
        "--criterion", "wav2vec", "--infonce", "--loss-weights", "[0.1, 10]",
        "--log-keys", '["prob_perplexity","code_perplexity","temp","dead_codes"]',
        "--optimizer", "adam", "--lr", "0.0005", "--max-update", "2", "--cpu", "--num-workers", "0",
        "--max-tokens", "96000", "--max-sample-size", "48000", "--min-sample-size", "4000", "--quantize-targets",
        "--conv-feature-layers", "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
        "--encoder-layers", "1", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2", "--conv-pos", "16", "--conv-pos-groups", "4", "--final-dim", "16",
        "--latent-vars", "16", "--mask-length", "5", "--num-negatives", "10", "--hyperbolic-r-init", "(0.2, 0.4)",
        "--save-dir", tmp_path / "ckpt", "--log-format", "json", "--log-interval", "1",
    ], cwd=tmp_path)
    check_ok(proc)
    log = proc.stdout + proc.stderr
    assert '"num_updates": "2"' in log and '"dead_codes"' in log
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").is_file()


def test_user_dir_pointing_to_another_copy_explains_the_fix(runs, tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(PACKAGE_DIR, clone / "hypervq_fairseq", ignore=shutil.ignore_patterns("__pycache__"))
    (clone / "setup.py").write_text("")
    proc = hydra_train("hypervq_w2v2_tiny", runs["manifest"], tmp_path / "run", 1,
                       f"common.user_dir={clone / 'hypervq_fairseq'}", tensorboard=False)
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "is a second copy of hypervq_fairseq" in err
    assert f"common.user_dir={PACKAGE_DIR}" in err and f"pip install -e {clone}" in err
    assert "not globally unique" not in err
