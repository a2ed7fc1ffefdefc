"""Time of token-quality evaluation on the demo's validation set: alignment (first and cached) and hypervq-unit-eval.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/bench_unit_eval.py              # after hypervq-demo
    .venv/bin/python bench/bench_unit_eval.py --workdir runs/demo --repeats 3

Why: a user reruns ``hypervq-unit-eval`` after every training change, so everything but the
first alignment must stay short: the target is ≤ 2 minutes on the demo's validation set on
2 CPU cores. Each step runs as the console script a user types, in a subprocess, so imports and
model loading count:

1. ``hypervq-align DIR --force`` (the first alignment: pocketsphinx on every English utterance);
2. ``hypervq-align DIR`` again (audio unchanged: everything is reused);
3. ``hypervq-unit-eval`` on the demo's two checkpoints (encoding, layer states, MFCC, k-means
   fits, ABX for every system, outputs).

Reported: wall seconds of each step (median over ``--repeats``), peak resident memory of the
evaluation, the machine (CPU model, cores, load), the commit and the exact commands.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}; {os.cpu_count()} CPUs; load average {load}; {platform.system()} {platform.release()}"


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def timed(cmd: list) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="runs/demo", help="hypervq-demo's folder (default runs/demo)")
    p.add_argument("--out", default=None, help="unit-eval output folder (default WORKDIR/units_bench)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each step; the median is reported")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)

    work = Path(args.workdir)
    ckpts = [work / name / "ckpt" / "checkpoint_last.pt" for name in ("hypervq", "gumbel")]
    missing = [str(c) for c in ckpts if not c.is_file()]
    if missing:
        raise SystemExit(f"no demo checkpoints ({', '.join(missing)}): run hypervq-demo --workdir {work} first")
    out = Path(args.out or work / "units_bench")
    manifest = work / "manifest"
    commands = {
        "first alignment": [str(BIN / "hypervq-align"), str(manifest), "--force", "--quiet"],
        "cached alignment": [str(BIN / "hypervq-align"), str(manifest), "--quiet"],
        "unit evaluation": [str(BIN / "hypervq-unit-eval"), "--checkpoints", *map(str, ckpts), "--names", "hypervq",
                            "gumbel", "--data", str(manifest), "--out", str(out), "--quiet"],
    }
    seconds = {step: [] for step in commands}
    for _ in range(args.repeats):
        for step, cmd in commands.items():
            seconds[step].append(timed(cmd))
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    results = json.loads((out / "results.json").read_text())
    median = {step: statistics.median(v) for step, v in seconds.items()}
    after_first = median["cached alignment"] + median["unit evaluation"]

    print(f"machine: {machine()}")
    print(f"commit: {commit()}; python {platform.python_version()}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; repeats {args.repeats} (median)")
    d = results["data"]
    print(f"data: {d['utterances']} of {d['utterances_in_manifest']} utterances of {manifest / 'valid.tsv'} aligned, "
          f"{d['seconds']:.1f} s of audio, {d['frames']['total']} frames; {len(results['systems'])} systems scored\n")
    print("| step | seconds | command |")
    print("|---|---|---|")
    for step, cmd in commands.items():
        print(f"| {step} | {median[step]:.1f} | `{' '.join([Path(cmd[0]).name, *cmd[1:]])}` |")
    print(f"| everything but the first alignment | {after_first:.1f} | target ≤ 120 |")
    print(f"\npeak resident memory of the largest step: {peak_mib:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine(), commit=commit(), seconds=seconds, median=median,
                                                   after_first_alignment=after_first, peak_mib=peak_mib,
                                                   commands=commands), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
