"""hypervq-demo: the whole path on a laptop, HyperVQ beside the stock Gumbel quantizer, on real speech.

    hypervq-demo                       # everything under runs/demo; 3 min on 2 quiet cores (21 on busy ones)
    hypervq-demo --workdir runs/demo200 --updates 200
    hypervq-demo --sequential          # one training at a time (default: both at once, 1 thread each)

Steps: (1) build the offline real-speech corpus (Debian's Asterisk prompts, four voices, ~1.2 h)
in LibriSpeech's layout; (2) write its fairseq manifests with ``hypervq-manifest``'s code;
(3) pretrain a tiny wav2vec 2.0 twice, with HyperVQ and with fairseq's GumbelVectorQuantizer,
through real ``fairseq-hydra-train`` subprocesses (built by ``hypervq-pretrain``) for the same
number of updates; (4) plot the codebook perplexity curves with ``hypervq-plot``, with the
selection statistics beside them (how often the sampled code is the argmax, the logit gap and
spread), and write a
table: code and prob perplexity, validation contrastive loss and accuracy, and how many updates
each run needed before its validation loss left the chance level log2(num_negatives + 1);
(5) align the validation set's English voice to phones (``hypervq-align``; the other voices'
prompts carry the English text they were translated from, so they cannot be aligned) and print the
token-quality table of ``hypervq-unit-eval``: PNMI, purities, ABX and bitrate of both quantizers'
codes beside random codes and k-means baselines on the same frames.

Why these settings (configs/demo/*.yaml): a model this small on an hour of audio easily sits at
chance with quantized targets. Hard Gumbel sampling draws targets from softmax(logits) whatever
the temperature, so while the logits are small the targets are noise; wav2vec 2.0's feature
penalty (weight 10) keeps the conv features, hence the logits, small, and the diversity loss
(weight 0.1) rewards flat per-frame distributions. The demo drops the feature penalty, lets the
conv stack learn at full rate (feature_grad_mult 1), uses 10 negatives, short masks, no dropout
and a fast temperature decay (2 -> 0.5 in ~140 updates); then both quantizers leave chance
within the first hundred updates. (Tuning runs here: with the feature penalty both sat at chance
for 100+ updates; with diversity 0.02 instead of 0.1 they learned faster but HyperVQ's code
perplexity collapsed to ~7 of 64.) HyperVQ runs with the quantizer's defaults (feature clipping at
radius 2, logit scale 2), chosen on held-out voices, not on this demo's data: docs/evidence.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..cli import int_at_least, positive_float
from ..eval.logs import read_json_records
from ..files import atomic_write_json, atomic_write_text

RUNS = (("HyperVQ", "hypervq", "hypervq_demo"), ("Gumbel", "gumbel", "gumbel_demo"))
TABLE_KEYS = ("code_perplexity", "prob_perplexity", "loss_0", "accuracy")
CHANCE_MARGIN = 0.1  # bits below log2(K+1) that count as "left chance"


def demo_config_dir() -> Path:
    """configs/demo, from the installed package data or the source tree."""
    try:
        import hypervq_fairseq.configs as configs

        for base in getattr(configs, "__path__", []):
            if (Path(base) / "demo").is_dir():
                return Path(base) / "demo"
    except ImportError:
        pass
    here = Path(__file__).resolve().parents[2] / "configs" / "demo"
    if here.is_dir():
        return here
    raise FileNotFoundError("configs/demo not found: reinstall the package (pip install -e .)")


def read_num_negatives(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.strip().startswith("num_negatives:"):
            return int(line.split(":", 1)[1].split("#")[0])
    raise ValueError(f"{config}: no model.num_negatives")


def summarize(log: dict, chance: float) -> dict:
    """Final validation figures and the first validated update whose loss left chance."""
    valid = [r for r in log["valid"] if "loss_0" in r]
    if not valid:
        raise RuntimeError("the run logged no validation: see its train.log")
    last = valid[-1]
    left = next((int(r["num_updates"]) for r in valid if r["loss_0"] < chance - CHANCE_MARGIN), None)
    return {"updates": int(last["num_updates"]), "left_chance_at": left,
            **{k: last.get(k) for k in TABLE_KEYS}}


def format_table(results: dict, chance: float, num_negatives: int) -> str:
    lines = [
        "| quantizer | updates | code perplexity | prob perplexity | valid loss (bits) | valid accuracy "
        "| updates to leave chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        left = f"≤ {r['left_chance_at']}" if r["left_chance_at"] is not None else "never"
        lines.append(f"| {label} | {r['updates']} | {r['code_perplexity']:.1f} | {r['prob_perplexity']:.1f} | "
                     f"{r['loss_0']:.3f} | {r['accuracy']:.3f} | {left} |")
    lines.append(f"\nChance level with {num_negatives} negatives: loss log2({num_negatives + 1}) = {chance:.3f} bits, "
                 f"accuracy 1/{num_negatives + 1} = {1 / (num_negatives + 1):.3f}. \"Left chance\": the first "
                 f"validation (every few updates) with loss more than {CHANCE_MARGIN} bits below chance.")
    return "\n".join(lines)


def _train_command(config_dir: Path, config: str, data: Path, save_dir: Path, overrides: list) -> list:
    from .launch import build_command, build_parser

    args = build_parser().parse_args(["--cpu", "--config-dir", str(config_dir), "--config-name", config,
                                      "--data", str(data), "--save-dir", str(save_dir), "--update-freq", "1",
                                      *overrides])
    cmd, _ = build_command(args)
    return cmd


def _follow(proc, log_path: Path, bar, total: int) -> None:
    """Copy the subprocess output to its log and move the progress bar with each JSON record."""
    with open(log_path, "w") as log:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if "][train_inner][" in line and "{" in line:
                r = json.loads(line[line.index("{"):])
                bar.n = min(total, int(float(r.get("num_updates", bar.n))))
                bar.set_postfix(loss=r.get("loss_0"), acc=r.get("accuracy"), code_ppl=r.get("code_perplexity"),
                                refresh=False)
                bar.refresh()
            elif "][valid][" in line and "{" in line:
                r = json.loads(line[line.index("{"):])
                bar.n = min(total, int(float(r.get("valid_num_updates", bar.n))))
                bar.set_postfix(valid_loss=r.get("valid_loss_0"), valid_acc=r.get("valid_accuracy"),
                                code_ppl=r.get("valid_code_perplexity"))


def run_trainings(jobs: list, total: int, parallel: bool, threads: int) -> None:
    """Run ``fairseq-hydra-train`` jobs [(label, cmd, log_path)], with one progress bar each."""
    from tqdm import tqdm

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    groups = [jobs] if parallel else [[j] for j in jobs]
    for group in groups:
        procs = []
        for i, (label, cmd, log_path) in enumerate(group):
            bar = tqdm(total=total, desc=f"{label:<8}", unit="upd", position=i, leave=True)
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            follower = threading.Thread(target=_follow, args=(proc, log_path, bar, total), daemon=True)
            follower.start()
            procs.append((label, proc, follower, bar, log_path))
        try:
            for label, proc, follower, bar, log_path in procs:
                code = proc.wait()
                follower.join()
                bar.close()
                if code != 0:
                    tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-15:])
                    raise RuntimeError(f"{label} training failed (exit {code}); end of {log_path}:\n{tail}")
        except BaseException:
            for _, proc, *_ in procs:
                if proc.poll() is None:
                    proc.terminate()
            raise


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-demo", description=__doc__.split("\n\n")[2].split("\n\nWhy")[0],
                                epilog="examples:\n  hypervq-demo\n  hypervq-demo --workdir runs/demo200 --updates 200\n"
                                       "  hypervq-demo --sequential --threads 2\n",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/demo", help="where corpus, manifests, runs and results go")
    p.add_argument("--updates", type=int_at_least(1, "updates per run"), default=None,
                   help="updates per run (default: the demo configs' value)")
    p.add_argument("--max-minutes", type=positive_float("minutes of audio"), default=None,
                   help="limit the corpus to this much audio")
    p.add_argument("--sequential", action="store_true", help="train one quantizer after the other")
    p.add_argument("--threads", type=int_at_least(1, "torch threads"), default=1,
                   help="torch threads per training process (default 1)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for both runs (after --)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that the training subprocesses are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from ..data.demo_corpus import build_demo_corpus
    from ..data.manifest import build_manifests

    start = time.time()
    work = Path(args.workdir).resolve()
    config_dir = demo_config_dir()
    num_negatives = read_num_negatives(config_dir / "hypervq_demo.yaml")
    for o in args.overrides:
        if o.startswith("model.num_negatives="):
            num_negatives = int(o.split("=", 1)[1])
    chance = math.log2(num_negatives + 1)

    # 1. corpus and manifests
    print(f"[1/5] demo corpus -> {work / 'corpus'}", flush=True)
    corpus = build_demo_corpus(work / "corpus", max_minutes=args.max_minutes, progress=True)
    print(f"      {len(corpus.speakers)} speakers, {corpus.total_seconds / 60:.1f} min "
          f"({'reused' if corpus.reused else 'built'})", flush=True)
    print(f"[2/5] manifests -> {work / 'manifest'}", flush=True)
    report = build_manifests(work / "corpus", work / "manifest", train_subsets=["train-demo"],
                             valid_subsets=["dev-demo"], progress=False)
    print("      " + report.summary_table().replace("\n", "\n      "), flush=True)

    # 2. both trainings, same updates
    overrides = ([f"optimization.max_update={args.updates}"] if args.updates else []) + list(args.overrides)
    total = args.updates or _config_max_update(config_dir / "hypervq_demo.yaml")
    jobs = []
    for label, name, config in RUNS:
        run_dir = work / name
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        cmd = _train_command(config_dir, config, work / "manifest", run_dir / "ckpt", overrides)
        (run_dir / "command.txt").write_text(" ".join(cmd) + "\n")
        jobs.append((label, cmd, run_dir / "train.log"))
    print(f"[3/5] pretraining HyperVQ and Gumbel for {total} updates each "
          f"({'one after the other' if args.sequential else 'side by side'}; logs in {work}/*/train.log)", flush=True)
    run_trainings(jobs, total, parallel=not args.sequential, threads=args.threads)

    # 3. plot and table
    print("[4/5] plot and table", flush=True)
    logs = {label: work / name / "train.log" for label, name, _ in RUNS}
    plot = [sys.executable, "-m", "hypervq_fairseq.tools.plot", *map(str, logs.values())]
    for label in logs:
        plot += ["--label", label]
    subprocess.run(plot + ["--selection", "-o", str(work / "perplexity.png"), "--html", str(work / "perplexity.html"),
                           "--title", "codebook perplexity and code selection (train)"], check=True)
    subprocess.run(plot + ["--split", "valid", "--keys", "loss_0", "accuracy", "code_perplexity",
                           "-o", str(work / "valid.png"), "--title", "validation"], check=True)
    results = {label: summarize(read_json_records(path), chance) for label, path in logs.items()}
    table = format_table(results, chance, num_negatives)
    atomic_write_text(work / "results.md", table + "\n")
    atomic_write_json(work / "results.json", dict(chance=chance, num_negatives=num_negatives, results=results))
    print(table)

    # 4. token quality against phones, on the validation set's English voice
    print("[5/5] token quality against phones (hypervq-align, hypervq-unit-eval)", flush=True)
    units = unit_quality(work)
    print(f"\nplots: {work / 'perplexity.png'}, {work / 'valid.png'}; tables: {work / 'results.md'}"
          f"{f', {units}' if units else ''}; total {(time.time() - start) / 60:.1f} min")
    return 0


def unit_quality(work: Path):
    """Align the English voice of the validation set, then print and write hypervq-unit-eval's table."""
    try:
        from ..data.alignment import align_manifest_dir
        from ..eval.unit_eval import evaluate_units, format_table
    except ImportError as e:  # the optional packages of the units extra
        print(f"      skipped: {e.name} is not installed (pip install 'hypervq-fairseq[units]')")
        return None
    from ..errors import HyperVQError

    try:
        report, = align_manifest_dir(work / "manifest", ["valid"], progress=False)
        print("      " + report.summary().replace("\n", "\n      "), flush=True)
        results = evaluate_units([work / name / "ckpt" / "checkpoint_last.pt" for _, name, _ in RUNS],
                                 work / "manifest", "valid", names=[name for _, name, _ in RUNS], out=work / "units")
    except (HyperVQError, ImportError) as e:
        print(f"      skipped: {e}")
        return None
    print("Only the English voice of the validation set is scored: the other voices' prompts carry the English "
          "text they were translated from, so they cannot be aligned to phones.\n")
    print(format_table(results))
    print(f"\nsame table again: hypervq-unit-eval --checkpoints {work}/hypervq/ckpt/checkpoint_last.pt "
          f"{work}/gumbel/ckpt/checkpoint_last.pt --names hypervq gumbel --data {work}/manifest --out {work}/units")
    return work / "units" / "results.md"


def _config_max_update(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.strip().startswith("max_update:"):
            return int(line.split(":", 1)[1].split("#")[0])
    raise ValueError(f"{config}: no optimization.max_update")


if __name__ == "__main__":
    sys.exit(main())
