"""Does pretraining help the demo recognizer, and does the quantizer matter? Letter error rate and WER (greedy and
with the LM) on the held-apart test prompts after the same fine-tuning from HyperVQ, stock Gumbel and no pretraining.

    .venv/bin/python bench/demo_asr.py run --out runs/demo_asr_bench --seeds 1 2 3 4 5    # ~18 CPU-min per run
    .venv/bin/python bench/demo_asr.py report --out runs/demo_asr_bench               # table from the runs so far
    .venv/bin/python bench/demo_asr.py beam --out runs/demo_asr_bench                 # LM beam size: dev WER and CPU

Each run is recipes/librispeech/09_demo_asr.sh with one pretraining and one seed (SEED seeds
pretraining and fine-tuning) on one shared corpus (hypervq-demo-corpus --asr): hypervq =
configs/demo/hypervq_demo.yaml, gumbel = configs/demo/gumbel_demo.yaml, both PRETRAIN_UPDATES
updates; none = PRETRAIN_UPDATES=0, i.e. fine-tuning starts from the randomly initialised model
(one update at learning rate 0 saves it). Fine-tuning (configs/finetune/hypervq_ctc_demo.yaml)
keeps the checkpoint with the best letter error rate on dev; the rates reported are fairseq-
validate's on the test prompts (W/ctc/wer.tsv). Each comparison gets the Welch 95% interval of
the difference over seeds and a verdict (hypervq_fairseq.eval.stats). A rerun skips finished runs.
The configs are this checkout's (configs/demo, configs/finetune).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from hypervq_fairseq.eval.stats import difference_ci, mean_ci, verdict
from provenance import provenance_line

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "librispeech" / "09_demo_asr.sh"
START = {"hypervq": "HyperVQ pretraining", "gumbel": "Gumbel pretraining", "none": "no pretraining"}
# result.json key -> column header; test_* are the held-apart prompts
METRICS = {"test_ler": "letter error rate (%)", "test_wer": "WER (%)", "test_lm_wer": "WER with the LM (%)",
           "dev_ler": "dev letter error rate (%)"}
COMPARISONS = [("pretraining helps (HyperVQ)", "hypervq", "none"), ("pretraining helps (Gumbel)", "gumbel", "none"),
               ("quantizer: HyperVQ vs Gumbel", "hypervq", "gumbel")]


def child_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_one(out: Path, start: str, seed: int, pretrain_updates: int, finetune_updates: int) -> dict:
    work = out / f"{start}_s{seed}"
    result_path = work / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    work.mkdir(parents=True, exist_ok=True)
    shared = out / "corpus"
    if not (work / "corpus").exists():
        (work / "corpus").symlink_to(shared)  # built once; the recipe reuses a matching corpus
    env = dict(os.environ, SEED=str(seed), FINETUNE_UPDATES=str(finetune_updates),
               PRETRAIN_UPDATES=str(0 if start == "none" else pretrain_updates),
               PRETRAIN_CONFIG="gumbel_demo" if start == "gumbel" else "hypervq_demo",
               DEMO_CONFIGS=str(REPO / "configs" / "demo"), FINETUNE_CONFIGS=str(REPO / "configs" / "finetune"))
    cpu0, wall0 = child_cpu_seconds(), time.time()
    with open(work / "recipe.log", "w") as log:
        subprocess.run(["bash", str(RECIPE), str(work)], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    rates = {row["subset"]: row for row in csv.DictReader(open(work / "ctc" / "wer.tsv"), delimiter="\t")}
    # hypervq-decode, one utterance at a time: greedy and trigram-LM WER/CER (LM weights tuned on dev)
    decoded = {(r["subset"], r["decoder"]): r for r in json.loads((work / "ctc" / "decode_lm" / "wer.json").read_text())["rows"]}
    greedy, lm = decoded[("test", "greedy")], decoded[("test", "lm")]
    result = dict(start=start, seed=seed, pretrain_updates=pretrain_updates, finetune_updates=finetune_updates,
                  test_wer=float(rates["test"]["wer"]), test_ler=float(rates["test"]["letter_error_rate"]),
                  dev_wer=float(rates["valid"]["wer"]), dev_ler=float(rates["valid"]["letter_error_rate"]),
                  test_greedy_wer=greedy["wer"], test_greedy_cer=greedy["cer"], test_lm_wer=lm["wer"], test_lm_cer=lm["cer"],
                  lm_weight=lm["lm_weight"], word_score=lm["word_score"],
                  cpu_seconds=round(child_cpu_seconds() - cpu0, 1), wall_seconds=round(time.time() - wall0, 1))
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    return result


BEAMS = [50, 100, 200, 500]


def beam_sweep(work: Path, beams, lm_weights, word_scores) -> dict:
    """Dev (valid) only: the best WER of the LM grid at each beam size, and the grid's CPU seconds."""
    path = work / "beam.json"
    if path.exists():
        return json.loads(path.read_text())
    from hypervq_fairseq.asr import decode as dec
    from hypervq_fairseq.asr import lm as lmlib

    ctc = dec.load_ctc_model(work / "ctc" / "checkpoint_best.pt", work / "manifest")
    valid = dec.compute_emissions(ctc, work / "manifest", "valid")
    lexicon = lmlib.read_lexicon(work / "lm" / "lexicon.txt", ctc.symbols)
    search = dec.LexiconBeamSearch(lexicon, work / "lm" / "lm.arpa", ctc.symbols, ctc.blank, dec.BeamOptions())
    rows = []
    for beam in beams:
        search.set_options(dec.BeamOptions(beam=beam))
        cpu0 = time.process_time()
        grid = dec.grid_search(valid, search, lm_weights, word_scores, log=lambda line: None)
        best = dec.best_grid_point(grid)
        rows.append(dict(beam=beam, dev_wer=best["wer"], dev_cer=best["cer"], lm_weight=best["lm_weight"],
                         word_score=best["word_score"], grid_cpu_seconds=round(time.process_time() - cpu0, 2)))
    result = dict(run=work.name, grid_points=len(lm_weights) * len(word_scores), rows=rows)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def beam_report(results) -> str:
    beams = sorted({r["beam"] for res in results for r in res["rows"]})
    widest, points = beams[-1], results[0]["grid_points"]
    lines = [f"Dev (valid) only, {len(results)} runs: the best WER of the LM grid ({points} points) at each beam size "
             f"(mean ± 95% t-interval over runs), its difference from beam {widest} paired over runs, and the grid's "
             "CPU seconds per run.", "",
             f"| beam | dev WER with the LM (%) | − beam {widest} (points) | verdict | grid CPU s / run |",
             "|---|---|---|---|---|"]
    ref = {res["run"]: next(r["dev_wer"] for r in res["rows"] if r["beam"] == widest) for res in results}
    for beam in beams:
        rows = [(res["run"], next(r for r in res["rows"] if r["beam"] == beam)) for res in results]
        wer, half = mean_ci([r["dev_wer"] for _, r in rows])
        diff, dhalf = mean_ci([r["dev_wer"] - ref[run] for run, r in rows])
        cpu = sum(r["grid_cpu_seconds"] for _, r in rows) / len(rows)
        cells = ("—", "—") if beam == widest else (f"{diff:+.1f} ± {dhalf:.1f}", verdict(diff, dhalf, "lower"))
        lines.append(f"| {beam} | {wer:.1f} ± {half:.1f} | {cells[0]} | {cells[1]} | {cpu:.1f} |")
    return "\n".join(lines + ["", provenance_line()]) + "\n"


def report(out: Path) -> str:
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*_s*/result.json"))]
    by = {s: [r for r in results if r["start"] == s] for s in START}
    seeds = sorted({r["seed"] for r in results})
    lines = [f"Held-apart test prompts (real voice), seeds {', '.join(map(str, seeds))}: mean ± 95% t-interval. "
             "Letter error rate and WER: greedy decoding (fairseq-validate); with the LM: hypervq-decode's "
             "lexicon + trigram beam search, weights tuned on dev.", "",
             "| fine-tuning starts from | runs | " + " | ".join(METRICS.values()) + " | CPU min / run |",
             "|---|---|" + "---|" * (len(METRICS) + 1)]
    for s, name in START.items():
        rows = by[s]
        if not rows:
            continue
        cells = []
        for key in METRICS:
            mean, half = mean_ci([r[key] for r in rows])
            cells.append(f"{mean:.1f} ± {half:.1f}" if len(rows) > 1 else f"{mean:.1f}")
        cpu = sum(r["cpu_seconds"] for r in rows) / len(rows) / 60
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + f" | {cpu:.1f} |")
    lines += ["", "| question | difference (95% interval) | verdict |", "|---|---|---|"]
    for question, a, b in COMPARISONS:
        va, vb = [r["test_ler"] for r in by[a]], [r["test_ler"] for r in by[b]]
        if len(va) < 2 or len(vb) < 2:
            continue
        diff, half = difference_ci(va, vb)
        lines.append(f"| {question} | test letter error rate, {START[a]} − {START[b]}: {diff:+.1f} ± {half:.1f} points | "
                     f"**{verdict(diff, half, 'lower')}** for {START[a]} |")
    # the LM against greedy on the same model (hypervq-decode, both one utterance at a time): paired over runs
    gains = [r["test_lm_wer"] - r["test_greedy_wer"] for r in results]
    if len(gains) >= 2:
        mean, half = mean_ci(gains)
        lines.append(f"| the LM lowers WER (all {len(gains)} runs, paired) | with LM − greedy: {mean:+.1f} ± {half:.1f} "
                     f"WER points | **{verdict(mean, half, 'lower')}** for the LM |")
    if results:
        r = results[0]
        lines += ["", f"pretraining updates {r['pretrain_updates']}, fine-tuning updates {r['finetune_updates']}."]
    lines += ["", provenance_line()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["run", "report", "beam"])
    p.add_argument("--out", default="runs/demo_asr_bench")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--starts", nargs="+", choices=list(START), default=list(START))
    p.add_argument("--pretrain-updates", type=int, default=400)
    p.add_argument("--finetune-updates", type=int, default=3000)  # the recipe's
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "run":
        subprocess.run(["hypervq-demo-corpus", str(out / "corpus"), "--asr"], check=True)
        for seed in args.seeds:  # seed-major: an interrupted bench still has every start for the first seeds
            for start in args.starts:
                r = run_one(out, start, seed, args.pretrain_updates, args.finetune_updates)
                print(f"{start} seed {seed}: test LER {r['test_ler']:.1f}%, WER {r['test_wer']:.1f}% "
                      f"({r['cpu_seconds'] / 60:.1f} CPU min)", flush=True)
    if args.stage == "beam":  # recipe 09's grid before this sweep: LM weights 1-3 x word scores -1..1
        runs = sorted(p.parent for p in out.glob("*_s*/result.json"))
        results = [beam_sweep(w, BEAMS, [1.0, 1.5, 2.0, 3.0], [-1.0, 0.0, 1.0]) for w in runs]
        text = beam_report(results)
        (out / "beam.md").write_text(text)
        print(text)
        return 0
    text = report(out)
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
