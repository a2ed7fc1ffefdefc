"""The vision claims with seeds: the five quantizers on Fashion-MNIST, mean ± 95% CI, a verdict per paper ordering.

    .venv/bin/python bench/vision_evidence.py run --out runs/vision_evidence --seeds 0 1 2   # ~5 min CPU per seed
    .venv/bin/python bench/vision_evidence.py report --out runs/vision_evidence             # table from the seeds so far
    .venv/bin/python bench/vision_evidence.py run --experiment vqsa --out runs/vqsa_evidence --seeds 0 1 2  # Table 6

Each seed is one ``hypervq-vision compare`` run with its defaults (VQ-VAE K=512 on a 6,000-image
training subset, probe, the D=3 disentanglement model; docs/vision.md), judged on 2,000 test
images. HyperVQ runs with the quantizer's defaults, which were chosen on held-out speech
(docs/evidence.md) and never tuned on images, so the Fashion-MNIST test images are a test set
in the strict sense. Each of the paper's orderings (Tables 3, 4, 5, 7) and the selection target
(HyperVQ's sampled code equals its argmax at least as often as GumbelVQ's) gets the Welch 95%
interval of the difference over seeds and a verdict: *holds*, *reversed* or *not shown* (the
interval holds 0). A rerun skips finished seeds and stages.

``--experiment vqsa`` does the same for VQ-SA (paper Table 6): each seed is one ``hypervq-vision vqsa
compare`` run with the settings in ``VQSA_ARGS`` (a width-16 residual CNN trained on 12,000 images,
then VQ-SA heads with K=256 trained on clean + corrupted pairs; docs/vision.md), judged on clean,
known-corruption and held-out-corruption accuracy and mCE over 1,000 test images per condition.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from hypervq_fairseq.eval.stats import difference_ci, mean_ci, verdict
from provenance import provenance_line

REPO = Path(__file__).resolve().parents[1]
NAMES = {"kmeans": "KmeansVQ", "gumbel": "GumbelVQ", "hypervq": "HyperVQ", "hyper_kmeans": "HyperKmeansVQ",
         "hyper_embmat": "HyperEmbMatVQ"}

# metric -> (label, better, digits, how to read it from a results.json row)
METRICS = {
    "mse": ("test MSE", "lower", 4, lambda r: r["mse"]),
    "perplexity": ("perplexity", "higher", 1, lambda r: r["perplexity"]),
    "codes_used": ("codes used", "higher", 0, lambda r: r["codes_used"]),
    "sample_is_argmax": ("sampled = argmax", "higher", 3, lambda r: r.get("sample_is_argmax")),
    "probe_accuracy": ("probe acc. (%)", "higher", 2, lambda r: r["probe_accuracy"]),
    "sil_clean": ("silhouette", "higher", 3, lambda r: r["disentangle"]["clean"]["silhouette"]),
    "db_clean": ("Davies-Bouldin", "lower", 3, lambda r: r["disentangle"]["clean"]["davies_bouldin"]),
    "sil_noisy": ("silhouette (noisy)", "higher", 3, lambda r: r["disentangle"]["noisy"]["silhouette"]),
    "db_noisy": ("DB (noisy)", "lower", 3, lambda r: r["disentangle"]["noisy"]["davies_bouldin"]),
}

# (claim, metric, a, b): "a is better than b on metric"
CLAIMS = [
    ("Table 4", "perplexity", "hypervq", "gumbel"),
    ("Table 4", "perplexity", "gumbel", "kmeans"),
    ("Table 3", "probe_accuracy", "hypervq", "kmeans"),
    ("Table 3", "probe_accuracy", "kmeans", "gumbel"),
    ("Table 7", "probe_accuracy", "hyper_embmat", "gumbel"),
    ("Table 7", "probe_accuracy", "hypervq", "hyper_embmat"),
    ("Table 7", "probe_accuracy", "kmeans", "hyper_kmeans"),
    ("Table 5", "sil_clean", "hypervq", "kmeans"),
    ("Table 5", "sil_noisy", "hypervq", "kmeans"),
    ("Table 5", "db_clean", "hypervq", "kmeans"),
    ("Table 5", "db_noisy", "hypervq", "kmeans"),
    ("selection target", "sample_is_argmax", "hypervq", "gumbel"),
    ("reconstruction (Table 1)", "mse", "hypervq", "gumbel"),
]

# VQ-SA (Table 6). The quantizers' own settings are their defaults; the rest is the offline setting
# of docs/vision.md: about 15 minutes per seed on one core (measured beside other jobs).
VQSA_ARGS = ["--train-limit", "12000", "--eval-limit", "1000", "--epochs-ref", "4", "--epochs", "3",
             "--batch-size", "128", "--width", "16", "--dim", "64", "--codes", "256", "--temp", "(2, 0.5, 0.995)",
             "--backbone-lr-mult", "0.3", "--quantizers", "hypervq,kmeans,gumbel,none",
             "--known", "gaussian_noise,impulse_noise,defocus_blur,contrast,pixelate,jpeg_compression",
             "--unknown", "speckle_noise,gaussian_blur"]
VQSA_NAMES = {"reference": "backbone alone", "none": "backbone + corruption pairs (no head)", "hypervq": "HyperVQ-SA",
              "kmeans": "VQ-SA", "gumbel": "GumbelVQ-SA"}
VQSA_METRICS = {
    "clean": ("clean acc. (%)", "higher", 2, lambda r: r["clean"]),
    "known": ("known corruptions acc. (%)", "higher", 2, lambda r: r["known"]),
    "unknown": ("held-out corruptions acc. (%)", "higher", 2, lambda r: r["unknown"]),
    "mCE": ("mCE (backbone alone = 100)", "lower", 1, lambda r: r["mCE"]),
}
VQSA_CLAIMS = [
    ("Table 6", "mCE", "hypervq", "kmeans"),
    ("Table 6", "clean", "hypervq", "kmeans"),
    ("Table 6", "unknown", "hypervq", "kmeans"),
    ("Table 6 (shape)", "mCE", "kmeans", "reference"),
    ("Table 6 (shape)", "mCE", "hypervq", "reference"),
    ("the head, not the pairs", "mCE", "hypervq", "none"),
    ("GumbelVQ-SA", "mCE", "hypervq", "gumbel"),
]
EXPERIMENTS = {
    "vqvae": dict(command=["compare", "--quiet"], names=NAMES, metrics=METRICS, claims=CLAIMS,
                  title="Fashion-MNIST, `hypervq-vision compare` defaults"),
    "vqsa": dict(command=["vqsa", "compare", *VQSA_ARGS], names=VQSA_NAMES, metrics=VQSA_METRICS, claims=VQSA_CLAIMS,
                 title="Fashion-MNIST VQ-SA, `hypervq-vision vqsa compare` with bench/vision_evidence.py's VQSA_ARGS"),
}


def log(msg: str) -> None:
    print(f"[vision-evidence {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_seed(out: Path, seed: int, threads: int, command: list) -> None:
    work = out / f"seed_{seed}"
    if (work / "results.json").exists():
        log(f"seed {seed}: done before")
        return
    exe = Path(sys.executable).with_name("hypervq-vision")
    cmd = [str(exe), *command, "--threads", str(threads), "--seed", str(seed), "--out", str(work)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    log(f"seed {seed}: {shlex.join(cmd[1:])}")
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "compare.log", "a") as f:
        if subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env) != 0:
            raise SystemExit(f"seed {seed} failed; see {work / 'compare.log'}")
    log(f"seed {seed}: {(time.time() - t0) / 60:.1f} min")


def collect(out: Path, metrics: dict) -> dict:
    """{quantizer: {metric: [value per seed]}} over every finished seed."""
    values: dict = {}
    for path in sorted(out.glob("seed_*/results.json")):
        rows = json.loads(path.read_text())["rows"]
        if isinstance(rows, list):  # vqsa compare: [{key, name, metrics}]
            rows = {r["key"]: r["metrics"] for r in rows}
        for q, row in rows.items():
            for m, (_, _, _, read) in metrics.items():
                v = read(row)
                if v is not None:
                    values.setdefault(q, {}).setdefault(m, []).append(float(v))
    return values


def report(out: Path, experiment: str = "vqvae") -> str:
    e = EXPERIMENTS[experiment]
    names, metrics, claims = e["names"], e["metrics"], e["claims"]
    values = collect(out, metrics)
    seeds = sorted(p.parent.name.split("_")[1] for p in out.glob("seed_*/results.json"))
    lines = [f"{e['title']}, seeds {', '.join(seeds)}: mean ± 95% t-interval.", "",
             "| method | " + " | ".join(metrics[m][0] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for q in names:
        if q not in values:
            continue
        cells = []
        for m, (_, _, d, _) in metrics.items():
            vals = values[q].get(m)
            if not vals:
                cells.append("-")
                continue
            mean, half = mean_ci(vals)
            cells.append(f"{mean:.{d}f} ± {half:.{d}f}" if len(vals) > 1 else f"{mean:.{d}f}")
        lines.append(f"| {names[q]} | " + " | ".join(cells) + " |")
    lines += ["", "| claim | ordering | difference (95% Welch interval) | verdict |", "|---|---|---|---|"]
    for source, m, a, b in claims:
        label, better, d, _ = metrics[m]
        sign = ">" if better == "higher" else "<"
        va, vb = values.get(a, {}).get(m, []), values.get(b, {}).get(m, [])
        if len(va) < 2 or len(vb) < 2:
            continue
        diff, half = difference_ci(va, vb)
        v = verdict(diff, half, better)
        word = {"better": "holds", "worse": "reversed", "no difference detected": "not shown"}[v]
        lines.append(f"| {source} | {label}: {names[a]} {sign} {names[b]} | {diff:+.{d + 1}f} ± {half:.{d + 1}f} | "
                     f"**{word}** |")
    lines += ["", provenance_line()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["run", "report"])
    p.add_argument("--experiment", choices=list(EXPERIMENTS), default="vqvae",
                   help="vqvae: the VQ-VAE comparison (Tables 3-5, 7); vqsa: VQ-SA under corruptions (Table 6)")
    p.add_argument("--out", default=None, help="default runs/vision_evidence (vqvae) or runs/vqsa_evidence (vqsa)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    out = Path(args.out or ("runs/vision_evidence" if args.experiment == "vqvae" else "runs/vqsa_evidence")).resolve()
    if args.stage == "run":
        for seed in args.seeds:
            run_seed(out, seed, args.threads, EXPERIMENTS[args.experiment]["command"])
    text = report(out, args.experiment)
    from hypervq_fairseq.files import atomic_write_text

    atomic_write_text(out / "table.md", text)
    print(text)
    log(f"table -> {out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
