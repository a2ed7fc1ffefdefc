"""The built-in demo over seeds: HyperVQ against the stock Gumbel quantizer, mean ± 95% CI and a verdict per figure.

    .venv/bin/python bench/demo_seeds.py run --out runs/demo_seeds --seeds 1 2 3   # ~10 min per seed on 2 cores
    .venv/bin/python bench/demo_seeds.py report --out runs/demo_seeds              # table from the seeds so far

Each seed is one ``hypervq-demo --workdir OUT/seed_N -- common.seed=N``: both quantizers pretrained
side by side on the demo corpus for the demo configs' updates, then the validation figures
(code perplexity, contrastive loss and accuracy) and the token-quality table against phones
(PNMI, ABX within speaker) of ``hypervq-unit-eval``. The demo's validation set holds the same
voices as its training set, so this is the demo as a user sees it, not the held-out evidence of
docs/evidence.md. A rerun skips finished seeds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hypervq_fairseq.eval.stats import difference_ci, mean_ci, verdict
from provenance import provenance_line

SYSTEMS = {"hypervq": "HyperVQ", "gumbel": "Gumbel"}
# figure -> (header, better, digits, read(demo results, unit-eval results, system))
FIGURES = {
    "code_perplexity": ("code perplexity (of 64)", "higher", 1, lambda d, u, s: d["results"][SYSTEMS[s]]["code_perplexity"]),
    "loss": ("valid loss (bits)", "lower", 3, lambda d, u, s: d["results"][SYSTEMS[s]]["loss_0"]),
    "accuracy": ("valid accuracy", "higher", 3, lambda d, u, s: d["results"][SYSTEMS[s]]["accuracy"]),
    "pnmi": ("PNMI", "higher", 3, lambda d, u, s: u["systems"][s]["pnmi"]),
    "abx": ("ABX within (%)", "lower", 1, lambda d, u, s: 100 * u["systems"][s]["abx_within"]),
}


def run_seed(out: Path, seed: int) -> None:
    work = out / f"seed_{seed}"
    if (work / "units" / "results.json").exists():
        print(f"seed {seed}: done before", flush=True)
        return
    t0 = time.time()
    exe = Path(sys.executable).with_name("hypervq-demo")
    with open(out / f"seed_{seed}.log", "w") as log:
        subprocess.run([str(exe), "--workdir", str(work), "--", f"common.seed={seed}"], stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    print(f"seed {seed}: {(time.time() - t0) / 60:.1f} min", flush=True)


def collect(out: Path) -> dict:
    """{system: {figure: [value per seed]}} over every finished seed."""
    values: dict = {s: {f: [] for f in FIGURES} for s in SYSTEMS}
    for units in sorted(out.glob("seed_*/units/results.json")):
        demo = json.loads((units.parent.parent / "results.json").read_text())
        u = json.loads(units.read_text())
        for s in SYSTEMS:
            for f, (_, _, _, read) in FIGURES.items():
                values[s][f].append(float(read(demo, u, s)))
    return values


def report(out: Path) -> str:
    values = collect(out)
    n = len(values["hypervq"]["loss"])
    seeds = sorted(p.parent.parent.name.split("_")[1] for p in out.glob("seed_*/units/results.json"))
    lines = [f"`hypervq-demo`, seeds {', '.join(seeds)}: mean ± 95% t-interval; HyperVQ − Gumbel with the Welch "
             "95% interval and a verdict.", "",
             "| figure | HyperVQ | Gumbel | HyperVQ − Gumbel | verdict for HyperVQ |", "|---|---|---|---|---|"]
    for f, (label, better, d, _) in FIGURES.items():
        a, b = values["hypervq"][f], values["gumbel"][f]
        if n < 2:
            lines.append(f"| {label} | {a[0]:.{d}f} | {b[0]:.{d}f} | {a[0] - b[0]:+.{d}f} | one seed |")
            continue
        (ma, ha), (mb, hb) = mean_ci(a), mean_ci(b)
        diff, half = difference_ci(a, b)
        lines.append(f"| {label} | {ma:.{d}f} ± {ha:.{d}f} | {mb:.{d}f} ± {hb:.{d}f} | {diff:+.{d}f} ± {half:.{d}f} | "
                     f"**{verdict(diff, half, better)}** |")
    lines += ["", provenance_line()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["run", "report"])
    p.add_argument("--out", default="runs/demo_seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "run":
        for seed in args.seeds:
            run_seed(out, seed)
    if not list(out.glob("seed_*/units/results.json")):
        raise SystemExit(f"no finished seed under {out}")
    text = report(out)
    from hypervq_fairseq.files import atomic_write_text

    atomic_write_text(out / "table.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
