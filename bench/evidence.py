"""HyperVQ against the stock Gumbel quantizer, on voices nobody tuned on: the evidence behind the defaults.

    .venv/bin/python bench/evidence.py all --out runs/evidence            # data, dev sweep, test, tables
    .venv/bin/python bench/evidence.py sweep --out runs/evidence --seeds 1 2 3
    .venv/bin/python bench/evidence.py test --out runs/evidence --seeds 1 2 3 4 5
    .venv/bin/python bench/evidence.py curves --out runs/evidence --seeds 1 2 --systems gumbel hypervq
    .venv/bin/python bench/evidence.py report --out runs/evidence        # tables from the runs so far

The protocol (docs/evidence.md says why):

* **Speakers.** Pretraining uses two real voices (fr, ru). Settings are chosen on the *dev*
  voices only: a third real voice (it) for the contrastive loss, code use and selection, and two
  synthetic English voices (flite slt, rms) with exact phone timings for PNMI and ABX. They are
  judged once on the *test* voices, never looked at while choosing: the English speaker (her
  en and es prompts; en force-aligned for PNMI and ABX) and a third synthetic voice (flite awb).
* **Same budget.** Every system is the demo's tiny wav2vec 2.0 (configs/demo), same data, same
  updates, same everything but the quantizer options; the stock system is fairseq's own
  ``GumbelVectorQuantizer`` (``quantizer_type: gumbel``).
* **Seeds.** Each configuration runs with several seeds; tables give the mean and a 95%
  t-interval, and each claim a verdict (better / worse / no difference detected) from the
  Welch t-interval of the difference.

Every stage skips what is already done, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from hypervq_fairseq.eval.stats import difference_ci, mean_ci, standardized_difference, verdict
from provenance import provenance_line

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIGS = REPO / "configs" / "demo"

# The candidates studied on dev: name -> model overrides on configs/demo/hypervq_demo.yaml.
# "gumbel" is the stock quantizer (configs/demo/gumbel_demo.yaml).
CANDIDATES: Dict[str, List[str]] = {
    "gumbel": [],
    "hypervq": [],  # the shipped defaults (configs/demo/hypervq_demo.yaml as it is: c = 0.3 since the curvature axis)
    "c1_clip2": ["++model.hyperbolic_curvature=1.0"],  # the defaults before the curvature axis
    "paper": ["++model.hyperbolic_clip_radius=null", "++model.hyperbolic_logit_scale=1.0"],
    "clip2": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_logit_scale=1.0"],
    "softclip2": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_clip_mode=soft",
                  "++model.hyperbolic_logit_scale=1.0"],
    "scale_learned": ["++model.hyperbolic_clip_radius=null", "++model.hyperbolic_logit_scale=1.0",
                      "++model.hyperbolic_learn_logit_scale=true"],
    "r_small": ["++model.hyperbolic_clip_radius=null", "++model.hyperbolic_logit_scale=1.0",
                "++model.hyperbolic_r_init=[-0.05,0.05]"],
    "softclip2_scale": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_clip_mode=soft",
                        "++model.hyperbolic_logit_scale=1.0", "++model.hyperbolic_learn_logit_scale=true"],
    "r_small_scale": ["++model.hyperbolic_clip_radius=null", "++model.hyperbolic_logit_scale=1.0",
                      "++model.hyperbolic_r_init=[-0.05,0.05]", "++model.hyperbolic_learn_logit_scale=true"],
    "paper_x4": ["++model.hyperbolic_clip_radius=null", "++model.hyperbolic_logit_scale=4.0"],
    "softclip2_x4": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_clip_mode=soft",
                     "++model.hyperbolic_logit_scale=4.0"],
    "softclip2_x4l": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_clip_mode=soft",
                      "++model.hyperbolic_logit_scale=4.0", "++model.hyperbolic_learn_logit_scale=true"],
    "softclip1_x8": ["++model.hyperbolic_clip_radius=1.0", "++model.hyperbolic_clip_mode=soft",
                     "++model.hyperbolic_logit_scale=8.0"],
    "softclip2_x2": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_clip_mode=soft",
                     "++model.hyperbolic_logit_scale=2.0"],
    "clip2_x2": ["++model.hyperbolic_clip_radius=2.0", "++model.hyperbolic_logit_scale=2.0"],
    # The curvature axis: clip radius and offsets in units of the ball (1/sqrt(c)), normals scaled with c
    # (quantizers/hyperbolic_vq.py), so that every c starts from the same logits; logit scale 2.
    **{f"c{c}_clip2": [f"++model.hyperbolic_curvature={c}"] for c in ("0.3", "0.1", "0.03", "0.01")},
    **{f"c{c}_noclip": [f"++model.hyperbolic_curvature={c}", "++model.hyperbolic_clip_radius=null"]
       for c in ("0.1", "0.01")},
    "clearn_clip2": ["++model.hyperbolic_learn_curvature=true", "++model.hyperbolic_curvature=1.0"],
}
# Code-usage remedies, on the default: re-seeding unused hyperplanes (quantizers/hyperbolic_vq.py), and a
# temperature that reaches its floor after ~700 updates instead of ~140 (longer exploration).
CANDIDATES["reseed100"] = ["++model.hyperbolic_reseed_every=100"]
CANDIDATES["temp_slow"] = ["++model.latent_temp=[2.0,0.5,0.998]"]
# The first round (and learned c, which starts at 1) ran at c = 1, the default of its time: it stays so.
for _name in ("paper", "clip2", "softclip2", "scale_learned", "r_small", "softclip2_scale", "r_small_scale", "paper_x4",
              "softclip2_x4", "softclip2_x4l", "softclip1_x8", "softclip2_x2", "clip2_x2"):
    CANDIDATES[_name] = ["++model.hyperbolic_curvature=1.0", *CANDIDATES[_name]]

TEST_SYSTEMS = ("hypervq", "gumbel")  # the shipped defaults against the stock quantizer
TRAIN_VOICES = ("fr", "ru")
DEV_VOICES = ("it",)
TEST_VOICES = ("en", "es")  # one speaker: the English prompts and her Spanish ones


def log(msg: str) -> None:
    print(f"[evidence {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- data


def build_data(out: Path) -> Path:
    """Corpora and manifests: ``data/train`` (train.tsv + valid.tsv = dev voice), ``data/test``."""
    from hypervq_fairseq.data.demo_corpus import build_demo_corpus
    from hypervq_fairseq.data.manifest import build_manifests

    data = out / "data"
    roles = {"train": (TRAIN_VOICES, "train-voices"), "dev": (DEV_VOICES, "dev-voices"), "test": (TEST_VOICES, "test-voices")}
    for role, (voices, subset) in roles.items():
        corpus = build_demo_corpus(data / "corpus" / role, languages=voices, valid_every=0, train_subset=subset)
        log(f"{role}: {', '.join(voices)}: {sum(s['utterances'] for s in corpus.subsets.values())} utterances, "
            f"{corpus.total_seconds / 60:.1f} min ({'reused' if corpus.reused else 'built'})")
    manifests = data / "manifests"
    if not (manifests / "valid.tsv").exists():
        build_manifests(data / "corpus" / "train", manifests, train_subsets=["train-voices"], valid_subsets=[],
                        progress=False)
        build_manifests(data / "corpus" / "dev", manifests / "dev", train_subsets=[], valid_subsets=["dev-voices"],
                        progress=False)
        build_manifests(data / "corpus" / "test", manifests / "test", train_subsets=[], valid_subsets=["test-voices"],
                        progress=False)
        for role in ("dev", "test"):  # flat names beside train.tsv: fairseq validates on valid.tsv = dev
            (manifests / f"{role}.tsv").write_text((manifests / role / "valid.tsv").read_text())
        (manifests / "valid.tsv").write_text((manifests / "dev.tsv").read_text())
    build_phone_sets(data, manifests)
    return manifests


# Phone-labelled sets for PNMI and ABX: dev = two synthetic voices; test = the held-out English
# speaker (real speech, force-aligned) and a third synthetic voice.
UNIT_SETS = {"dev": ["units_dev"], "test": ["units_test_en", "units_test_awb"]}


def build_phone_sets(data: Path, manifests: Path) -> None:
    from hypervq_fairseq.data.alignment.align import align_split
    from hypervq_fairseq.data.alignment.synthetic import synthesize_aligned
    from hypervq_fairseq.data.labels import write_labels

    if not (data / "units_dev" / "valid.phn").exists():
        synthesize_aligned(data / "units_dev", voices=("slt", "rms"), per_voice=60, progress=False)
    if not (data / "units_test_awb" / "valid.phn").exists():
        synthesize_aligned(data / "units_test_awb", voices=("awb",), per_voice=60, progress=False)
    en = data / "units_test_en"
    if not (en / "valid.phn").exists():
        en.mkdir(parents=True, exist_ok=True)
        (en / "valid.tsv").write_text((manifests / "test" / "valid.tsv").read_text())
        write_labels(en, ("valid",), dict_split="valid")
        report = align_split(en, "valid", progress=False)  # the English voice only: the es prompts are not verbatim
        log(f"aligned {report.aligned} of the held-out speaker's English utterances ({sum(report.missing_words.values())} "
            f"words missing from the dictionary; the Spanish ones are not verbatim and stay unaligned)")


# ----------------------------------------------------------------------------- training


def run_dir(out: Path, name: str, seed: int) -> Path:
    return out / "runs" / f"{name}_s{seed}"


def train(out: Path, manifests: Path, name: str, seed: int, updates: int, threads: int,
          work: Path | None = None, extra: tuple = ()) -> Path:
    """Pretrain candidate ``name`` with ``seed``; returns its checkpoint (skipped when it exists)."""
    work = work or run_dir(out, name, seed)
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    done = work / "done.json"
    if done.exists() and ckpt.exists():
        return ckpt
    config = "gumbel_demo" if name == "gumbel" else "hypervq_demo"
    exe = Path(sys.executable).with_name("fairseq-hydra-train")
    cmd = [str(exe), "--config-dir", str(DEMO_CONFIGS), "--config-name", config, f"task.data={manifests}",
           f"checkpoint.save_dir={work / 'ckpt'}", f"hydra.run.dir={work / 'hydra'}", f"common.seed={seed}",
           f"optimization.max_update={updates}", f"common.tensorboard_logdir={work / 'tb'}",
           "dataset.disable_validation=true", *extra, *CANDIDATES[name]]  # judged afterwards, on dev or test voices
    work.mkdir(parents=True, exist_ok=True)
    (work / "command.txt").write_text(shlex.join(cmd) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    t0 = time.time()
    with open(work / "train.log", "w") as f:
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=work)
    if code != 0:
        tail = (work / "train.log").read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"training {name} seed {seed} failed (exit {code}):\n" + "\n".join(tail))
    done.write_text(json.dumps({"seconds": round(time.time() - t0, 1), "updates": updates}) + "\n")
    return ckpt


# ----------------------------------------------------------------------------- evaluation on held-out voices


def contrastive(ckpt: Path, subset: str, seed: int = 1, max_tokens: int = 384000) -> Dict[str, float]:
    """fairseq's validation on ``subset`` (a manifest beside train.tsv): contrastive loss in bits, accuracy.

    What ``fairseq-validate`` does, in process, with the time masks drawn from ``(seed, batch)``
    so that the figure is repeatable.
    """
    import hypervq_fairseq  # noqa: F401  (registers the model and the task)
    from fairseq import checkpoint_utils, metrics, utils

    from hypervq_fairseq.fairseq.patches import seeded_numpy

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)])
    model = models[0].eval()
    criterion = task.build_criterion(cfg.criterion)
    criterion.eval()
    task.load_dataset(subset, combine=False, epoch=1, task_cfg=cfg.task)
    dataset = task.dataset(subset)
    itr = task.get_batch_iterator(dataset=dataset, max_tokens=max_tokens, ignore_invalid_inputs=True,
                                  max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
                                  required_batch_size_multiple=1, seed=seed).next_epoch_itr(shuffle=False)
    outputs = []
    for i, sample in enumerate(itr):
        with seeded_numpy(seed, i):
            outputs.append(task.valid_step(sample, model, criterion)[2])
    with metrics.aggregate() as agg:
        task.reduce_metrics(outputs, criterion)
        values = agg.get_smoothed_values()
    return {"loss_bits": float(values["loss_0"]), "accuracy": float(values["accuracy"])}


def code_use(ckpt: Path, manifest: Path) -> Dict[str, float]:
    """Dataset-level code use of the argmax codes: perplexity per group (summed, as fairseq sums them)."""
    import numpy as np

    from hypervq_fairseq.eval.codebook import count_codes, usage_stats
    from hypervq_fairseq.eval.tokens import encode_manifest
    from hypervq_fairseq.fairseq.checkpoints import load_pretrained

    pm = load_pretrained(ckpt)
    ids = list(encode_manifest(pm, manifest, progress=False).values())
    counts, combined = count_codes(ids, pm.groups, pm.num_vars)
    groups = [usage_stats(c) for c in counts]
    comb = usage_stats(np.array(sorted(combined.values())))
    return {"code_perplexity": sum(g["perplexity"] for g in groups), "codes_used": sum(g["used"] for g in groups),
            "combined_perplexity": comb["perplexity"], "combined_used": comb["used"]}


def radial_use(ckpt: Path, manifest: Path, limit: int = 100) -> Dict[str, float]:
    """How much of the radial coordinate reaches HyperVQ's MLR, on the first ``limit`` utterances:
    the fraction of tangent vectors that clipping puts on its sphere, and the mean and spread of
    ``√c‖v‖`` (the ball-unit radius the logits read; with hard clipping, at most the clip radius)."""
    import torch

    from hypervq_fairseq.data.audio import read_audio
    from hypervq_fairseq.data.manifest import read_manifest
    from hypervq_fairseq.fairseq.checkpoints import load_pretrained
    from hypervq_fairseq.fairseq.encode import _prepared, conv_features

    pm = load_pretrained(ckpt)
    q = pm.model.quantizer
    if not hasattr(q, "tangent"):
        return {}
    root, rows = read_manifest(manifest)
    inputs = []
    with torch.no_grad():
        for rel, _ in rows[:limit]:  # the quantizer's input, as encode() computes it, one utterance at a time
            wave = _prepared(pm, read_audio(f"{root}/{rel}"))[None]
            features, _ = conv_features(pm.model, wave, torch.tensor([wave.shape[1]]))
            inputs.append(pm.model.layer_norm(features.transpose(1, 2))[0])
        x = torch.cat(inputs)
        s = (q.tangent(x).norm(dim=-1) * q.curvature.sqrt()).flatten()          # √c‖v‖, every group
    out = {"ball_radius_mean": float(s.mean()), "ball_radius_std": float(s.std())}
    out["clipped_fraction"] = 0.0 if q.clip_radius is None else float((s >= 0.999 * q.clip_radius).float().mean())
    return out


def selection(ckpt: Path, manifest: Path) -> Dict[str, float]:
    from hypervq_fairseq.eval.selection import heldout_selection
    from hypervq_fairseq.fairseq.checkpoints import load_pretrained

    stats = heldout_selection(load_pretrained(ckpt), manifest, seed=0)
    return {k: stats[k] for k in ("sample_is_argmax", "logit_gap", "logit_std")}


# PNMI at matched K: every run's codes reduced to this many (label-free, eval/units.merge_to_k), so that
# runs evaluated one at a time compare at one code count; below every system's count in the dev runs.
MATCHED_K = 50


def units(ckpt: Path, data: Path, role: str, abx: bool = True) -> Dict[str, float]:
    """PNMI (raw, above its shuffled floor, at matched K) and, with ``abx``, within-speaker ABX on each
    phone-labelled set of ``role`` (their mean), and across-speaker ABX on dev."""
    from hypervq_fairseq.eval.unit_eval import evaluate_units

    per_set = []
    for name in UNIT_SETS[role]:
        r = evaluate_units([ckpt], data / name, "valid", names=["q"], seed=0, progress=False, abx=abx,
                           kmeans_baselines=False, matched_k=MATCHED_K)["systems"]["q"]
        per_set.append(r)

    def mean(key):
        return sum(r[key] for r in per_set) / len(per_set)

    out = {"pnmi": mean("pnmi"), "pnmi_above_floor": mean("pnmi_above_floor"), "pnmi_matched": mean("pnmi_matched"),
           "pnmi_matched_floor": mean("random_floor_pnmi_matched"),
           "unit_codes_used": min(r["codes_used"] for r in per_set)}
    if abx:
        out["abx_within"] = 100 * mean("abx_within")
        across = [r["abx_across"] for r in per_set if r.get("abx_across") is not None]
        if across:
            out["abx_across"] = 100 * sum(across) / len(across)
    for set_name, r in zip(UNIT_SETS[role], per_set):
        out[f"pnmi_{set_name}"] = r["pnmi"]
    return out


def evaluate(out: Path, manifests: Path, name: str, seed: int, role: str,
             ckpt: Path | None = None, cache: Path | None = None) -> dict:
    """Every figure of one run on the ``role`` voices (dev or test), cached in the run folder."""
    work = run_dir(out, name, seed)
    cache = cache or work / f"eval_{role}.json"
    result = json.loads(cache.read_text()) if cache.exists() else {}
    ckpt = ckpt or work / "ckpt" / "checkpoint_last.pt"
    manifest = manifests / f"{role}.tsv"
    if "loss_bits" not in result:
        result.update({**contrastive(ckpt, role), **code_use(ckpt, manifest), **selection(ckpt, manifest)})
        cache.write_text(json.dumps(result, indent=1) + "\n")
    if "pnmi" not in result:
        result.update(units(ckpt, out / "data", role))
        cache.write_text(json.dumps(result, indent=1) + "\n")
    if "ball_radius_mean" not in result and name != "gumbel":
        result.update(radial_use(ckpt, manifest) or {"ball_radius_mean": None})
        cache.write_text(json.dumps(result, indent=1) + "\n")
    if "pnmi_matched" not in result:  # runs evaluated before PNMI at matched K: the PNMI figures only
        result.update(units(ckpt, out / "data", role, abx=False))
        cache.write_text(json.dumps(result, indent=1) + "\n")
    return result


# ----------------------------------------------------------------------------- learning curves

# One run per (system, seed) to the longest budget, its checkpoints kept at each point: the curve of
# one training run (the learning rate decays over the whole run), evaluated on the dev voices.
CURVE_POINTS = (500, 1000, 2000, 4000)


def curve_dir(out: Path, name: str, seed: int, updates: int) -> Path:
    return out / "curves" / f"{name}_s{seed}_u{updates}"


def curve_checkpoint(work: Path, point: int, last: int) -> Path:
    if point == last:
        return work / "ckpt" / "checkpoint_last.pt"
    found = sorted((work / "ckpt").glob(f"checkpoint_*_{point}.pt"))
    if not found:
        raise FileNotFoundError(f"{work / 'ckpt'}: no checkpoint saved at update {point}")
    return found[-1]


def curves(out: Path, manifests: Path, names, seeds, updates: int, threads: int) -> Dict[str, Dict[int, Dict[int, dict]]]:
    """Train each (system, seed) to ``updates`` and evaluate its checkpoints at CURVE_POINTS on dev."""
    points = [u for u in CURVE_POINTS if u <= updates]
    results = {name: {u: {} for u in points} for name in names}
    for seed in seeds:
        for name in names:
            work = curve_dir(out, name, seed, updates)
            log(f"curve: train {name} seed {seed} to {updates} updates")
            train(out, manifests, name, seed, updates, threads, work=work,
                  extra=(f"checkpoint.save_interval_updates={points[0]}", "checkpoint.keep_interval_updates=-1"))
            for u in points:
                log(f"curve: evaluate {name} seed {seed} at {u} updates on dev")
                results[name][u][seed] = evaluate(out, manifests, name, seed, "dev", cache=work / f"eval_dev_u{u}.json",
                                                  ckpt=curve_checkpoint(work, u, updates))
    return results


def mfcc_kmeans_reference(out: Path, ckpt: Path, k: int = MATCHED_K) -> float:
    """PNMI of k-means (K=``k``) on MFCC frames of the dev phone set: the bar the learned codes are held to.
    (``ckpt`` only frames the audio: the k-means codes do not depend on it.)"""
    cache = out / "curves" / f"mfcc_kmeans_k{k}.json"
    if cache.exists():
        return json.loads(cache.read_text())["pnmi"]
    from hypervq_fairseq.eval.unit_eval import evaluate_units

    r = evaluate_units([ckpt], out / "data" / UNIT_SETS["dev"][0], "valid", names=["q"], seed=0, progress=False,
                       abx=False, kmeans_k=k, matched_k=k)["systems"]
    value = r[f"kmeans_mfcc_{k}"]["pnmi"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"pnmi": value, "k": k}) + "\n")
    return value


def curve_table(results, reference: float | None) -> str:
    metrics = ("loss_bits", "code_perplexity", "pnmi", "pnmi_matched", "abx_within")
    lines = ["| system | updates | seeds | " + " | ".join(METRICS[m][0] for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for name, by_point in results.items():
        for u, runs in by_point.items():
            if not runs:
                continue
            cells = [mean_cell([r[m] for r in runs.values() if m in r], m) for m in metrics]
            lines.append(f"| {name} | {u} | {len(runs)} | " + " | ".join(cells) + " |")
    if reference is not None:
        lines += ["", f"k-means (K={MATCHED_K}) on MFCC frames of the same dev phone set: PNMI {reference:.3f}."]
    return "\n".join(lines)


def plot_curves(results, reference: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("loss_bits", "code_perplexity", "pnmi_matched", "abx_within")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    for ax, m in zip(axes, metrics):
        for name, by_point in results.items():
            xs, ys, es = [], [], []
            for u, runs in by_point.items():
                vals = [r[m] for r in runs.values() if m in r]
                if vals:
                    mean, half = mean_ci(vals)
                    xs.append(u), ys.append(mean), es.append(half if math.isfinite(half) else 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
        if m == "pnmi_matched" and reference is not None:
            ax.axhline(reference, color="gray", linestyle="--", label=f"MFCC k-means K={MATCHED_K}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("updates")
        ax.set_title(METRICS[m][0] + f" ({METRICS[m][1]} is better)", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------- statistics and tables

# metric -> (label, which direction is better, digits)
METRICS = {
    "loss_bits": ("valid contrastive loss (bits)", "lower", 3),
    "accuracy": ("valid accuracy", "higher", 3),
    "code_perplexity": ("code perplexity (of 64)", "higher", 1),
    "sample_is_argmax": ("sampled code = argmax", "higher", 3),
    "clipped_fraction": ("frames on the clip sphere", "lower", 2),
    "ball_radius_mean": ("mean √c‖v‖", "higher", 2),
    "logit_gap": ("top-2 logit gap", "higher", 2),
    "pnmi": ("PNMI", "higher", 3),
    "pnmi_above_floor": ("PNMI − floor", "higher", 3),
    "pnmi_matched": (f"PNMI at K={MATCHED_K}", "higher", 3),
    "abx_within": ("ABX within (%)", "lower", 1),
    "abx_across": ("ABX across (%)", "lower", 1),
}


def mean_cell(vals, metric: str) -> str:
    """``mean ± 95% half-width`` over seeds, at the metric's digits ("-" without values)."""
    if not vals:
        return "-"
    mean, half = mean_ci(vals)
    d = METRICS[metric][2]
    return f"{mean:.{d}f} ± {half:.{d}f}" if math.isfinite(half) else f"{mean:.{d}f}"


def table(results: Dict[str, Dict[int, dict]], metrics, reference: str = "gumbel") -> str:
    """Markdown: one row per system (mean ± 95% CI over seeds), then each system against ``reference``."""
    names = [n for n in results if results[n]]
    lines = ["| system | seeds | " + " | ".join(METRICS[m][0] for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for name in names:
        cells = [mean_cell([r[m] for r in results[name].values() if m in r], m) for m in metrics]
        lines.append(f"| {name} | {len(results[name])} | " + " | ".join(cells) + " |")
    if reference in results and results[reference]:
        lines += ["", f"Difference from {reference} (mean, 95% Welch interval) and verdict:", "",
                  "| system | " + " | ".join(METRICS[m][0] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
        for name in names:
            if name == reference:
                continue
            cells = []
            for m in metrics:
                a = [r[m] for r in results[name].values() if m in r]
                b = [r[m] for r in results[reference].values() if m in r]
                if len(a) < 2 or len(b) < 2:
                    cells.append("-")
                    continue
                diff, half = difference_ci(a, b)
                d = METRICS[m][2]
                cells.append(f"{diff:+.{d}f} ± {half:.{d}f}: **{verdict(diff, half, METRICS[m][1])}**")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# What users get from the tokens decides; selection agreement (sample_is_argmax) describes training and
# stays in the tables as a diagnostic. PNMI enters at matched K, so that code count alone cannot decide.
TARGETS = ("loss_bits", "code_perplexity", "pnmi_matched", "abx_within")


def rank_candidates(results: Dict[str, Dict[int, dict]], reference: str = "gumbel"):
    """Candidates by their worst standardized difference from ``reference`` over the targets, best first.

    For each target: (mean of candidate - mean of reference) / pooled standard deviation, sign
    flipped where lower is better. The default is the candidate whose worst value is largest.
    """
    ranking = []
    ref = results.get(reference, {})
    for name, runs in results.items():
        if name == reference or len(runs) < 2 or len(ref) < 2:
            continue
        z = {}
        for m in TARGETS:
            a = [r[m] for r in runs.values() if m in r]
            b = [r[m] for r in ref.values() if m in r]
            if len(a) >= 2 and len(b) >= 2:
                z[m] = standardized_difference(a, b, METRICS[m][1])
        if z:
            ranking.append((name, min(z.values()), z))
    return sorted(ranking, key=lambda t: -t[1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python bench/evidence.py data --out runs/evidence\n"
                                       "  python bench/evidence.py sweep --out runs/evidence --seeds 1 2\n")
    p.add_argument("stage", choices=["data", "sweep", "test", "curves", "report", "all"])
    p.add_argument("--out", default="runs/evidence", help="working folder (data, runs, tables)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--systems", nargs="+", default=list(TEST_SYSTEMS), choices=list(CANDIDATES),
                   help="systems of the test stage (default: the shipped defaults and the stock quantizer)")
    p.add_argument("--updates", type=int, default=500, help="pretraining updates per run (the demo's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    p.add_argument("--curve-updates", type=int, default=max(CURVE_POINTS),
                   help="curves: the longest budget; checkpoints at each of %s up to it are evaluated on dev"
                        % ", ".join(map(str, CURVE_POINTS)))
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    manifests = build_data(out)
    if args.stage in ("sweep", "all"):
        for seed in args.seeds:
            for name in args.candidates:
                log(f"train {name} seed {seed}")
                train(out, manifests, name, seed, args.updates, args.threads)
                log(f"evaluate {name} seed {seed} on dev")
                evaluate(out, manifests, name, seed, "dev")
    if args.stage in ("test", "all"):
        for seed in args.seeds:
            for name in args.systems:
                log(f"train {name} seed {seed}")
                train(out, manifests, name, seed, args.updates, args.threads)
                log(f"evaluate {name} seed {seed} on test")
                evaluate(out, manifests, name, seed, "test")
    if args.stage == "curves":
        results = curves(out, manifests, args.systems, args.seeds, args.curve_updates, args.threads)
        first = curve_checkpoint(curve_dir(out, args.systems[0], args.seeds[0], args.curve_updates), CURVE_POINTS[0],
                                 args.curve_updates)
        reference = mfcc_kmeans_reference(out, first)
        text = curve_table(results, reference)
        (out / "curves.md").write_text(f"{text}\n\n{provenance_line()}\n")
        plot_curves(results, reference, out / "curves.png")
        log(f"curves -> {out / 'curves.md'}, {out / 'curves.png'}")
        print(text)
        return 0
    if args.stage in ("report", "all", "sweep", "test"):
        for role in ("dev", "test"):
            results = {name: {seed: json.loads((run_dir(out, name, seed) / f"eval_{role}.json").read_text())
                              for seed in args.seeds if (run_dir(out, name, seed) / f"eval_{role}.json").exists()}
                       for name in args.candidates}
            if any(results.values()):
                text = table(results, [m for m in METRICS if any(m in r for v in results.values() for r in v.values())])
                (out / f"{role}.md").write_text(f"{text}\n\n{provenance_line()}\n")
                log(f"{role} table -> {out / (role + '.md')}")
                print(text)
                if role == "dev":
                    ranking = rank_candidates(results)
                    lines = ["", "Dev ranking (worst standardized difference from gumbel over "
                                 f"{', '.join(TARGETS)}; the default is the first):", ""]
                    lines += [f"{i + 1}. {name}: worst {worst:+.2f} (" +
                              ", ".join(f"{m} {v:+.2f}" for m, v in z.items()) + ")"
                              for i, (name, worst, z) in enumerate(ranking)]
                    with open(out / "dev.md", "a") as f:
                        f.write("\n".join(lines) + "\n")
                    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
