"""The seed tables of bench/vision_evidence.py, bench/demo_asr.py and bench/demo_seeds.py, from result files written here."""
import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench_module():
    sys.path.insert(0, str(BENCH))
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def _vqsa_results(out: Path, seed: int, mce: dict):
    rows = [{"key": k, "name": k, "metrics": {"clean": 85.0 + seed, "known": 78.0, "unknown": 77.0 + seed, "mCE": v}}
            for k, v in mce.items()]
    (out / f"seed_{seed}").mkdir(parents=True)
    (out / f"seed_{seed}" / "results.json").write_text(json.dumps({"rows": rows}))


def test_vqsa_report_gives_a_verdict_per_ordering(tmp_path, bench_module):
    ve = bench_module("vision_evidence")
    for seed, jitter in enumerate([0.0, 0.4, -0.3]):
        _vqsa_results(tmp_path, seed, {"reference": 100.0, "hypervq": 48.0 + jitter, "kmeans": 52.0 - jitter,
                                       "gumbel": 48.5 + jitter, "none": 60.0 + jitter})
    text = ve.report(tmp_path, "vqsa")
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| Table 6") or
            line.startswith("| the head") or line.startswith("| GumbelVQ")}
    assert "**holds**" in rows["mCE (backbone alone = 100): HyperVQ-SA < VQ-SA"]
    assert "**holds**" in rows["mCE (backbone alone = 100): HyperVQ-SA < backbone alone"]
    assert "**holds**" in rows["mCE (backbone alone = 100): HyperVQ-SA < backbone + corruption pairs (no head)"]
    assert "**not shown**" in rows["clean acc. (%): HyperVQ-SA > VQ-SA"]  # identical per seed: no difference
    assert "| HyperVQ-SA | 86.00 ± " in text and "seeds 0, 1, 2" in text


def test_vqvae_report_still_reads_the_compare_rows(tmp_path, bench_module):
    ve = bench_module("vision_evidence")
    for seed in range(2):
        row = lambda mse, ppl: {"mse": mse, "perplexity": ppl, "codes_used": 100, "probe_accuracy": 80.0,
                                "disentangle": {c: {"silhouette": 0.1, "davies_bouldin": 2.0} for c in ("clean", "noisy")}}
        (tmp_path / f"seed_{seed}").mkdir()
        (tmp_path / f"seed_{seed}" / "results.json").write_text(json.dumps(
            {"rows": {"hypervq": row(0.02 + seed / 1000, 90.0 + seed), "gumbel": row(0.03 + seed / 1000, 50.0 - seed)}}))
    text = ve.report(tmp_path)
    assert "perplexity: HyperVQ > GumbelVQ | +" in text and "**holds**" in text


def test_demo_asr_report_compares_starts(tmp_path, bench_module):
    da = bench_module("demo_asr")
    base = {"hypervq": 40.0, "gumbel": 41.0, "none": 70.0}
    for start, ler in base.items():
        for seed, jitter in [(1, 0.5), (2, -0.5), (3, 0.2)]:
            d = tmp_path / f"{start}_s{seed}"
            d.mkdir()
            (d / "result.json").write_text(json.dumps(dict(
                start=start, seed=seed, pretrain_updates=400, finetune_updates=3000, test_ler=ler + jitter,
                test_wer=90.0, dev_ler=ler, dev_wer=92.0, test_greedy_wer=91.0, test_greedy_cer=ler,
                test_lm_wer=80.0 + jitter, test_lm_cer=ler + 1, lm_weight=1.0, word_score=0.0, cpu_seconds=900.0)))
    text = da.report(tmp_path)
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "**better** for HyperVQ pretraining" in lines["pretraining helps (HyperVQ)"]
    assert "**no difference detected**" in lines["quantizer: HyperVQ vs Gumbel"]
    assert "| 3 |" in lines["HyperVQ pretraining"]
    assert "**better** for the LM" in lines["the LM lowers WER (all 9 runs, paired)"]


def test_demo_asr_beam_report_pairs_runs_against_the_largest_beam(bench_module):
    da = bench_module("demo_asr")
    # beam 50 is 3 points worse in every run; beam 200 is worse in one run and better in another
    results = [dict(run=f"r{i}", grid_points=12, rows=[
        dict(beam=50, dev_wer=base + 3.0, grid_cpu_seconds=5.0), dict(beam=200, dev_wer=base + d200, grid_cpu_seconds=20.0),
        dict(beam=500, dev_wer=base, grid_cpu_seconds=48.0)]) for i, (base, d200) in enumerate([(60.0, 1.0), (70.0, -1.0),
                                                                                                 (65.0, 0.0)])]
    text = da.beam_report(results)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| beam")}
    assert rows["50"][0] == "68.0 ± 12.4" and rows["50"][1].startswith("+3.0 ± 0.0") and rows["50"][2] == "worse"
    assert rows["200"][2] == "no difference detected"
    assert rows["500"][1:3] == ["—", "—"] and rows["500"][3] == "48.0"


def test_demo_seeds_report_judges_each_figure(tmp_path, bench_module):
    ds = bench_module("demo_seeds")
    for seed, j in [(1, 0.01), (2, -0.01), (3, 0.0)]:
        units = tmp_path / f"seed_{seed}" / "units"
        units.mkdir(parents=True)
        demo = {"results": {"HyperVQ": {"code_perplexity": 30 + j, "loss_0": 1.9 + j, "accuracy": 0.5},
                            "Gumbel": {"code_perplexity": 35 + j, "loss_0": 1.9 - j, "accuracy": 0.5 + j}}}
        (tmp_path / f"seed_{seed}" / "results.json").write_text(json.dumps(demo))
        (units / "results.json").write_text(json.dumps({"systems": {
            "hypervq": {"pnmi": 0.30 + j, "abx_within": 0.30}, "gumbel": {"pnmi": 0.25 + j, "abx_within": 0.35 + j}}}))
    lines = {line.split("|")[1].strip(): line for line in ds.report(tmp_path).splitlines() if line.startswith("| ")}
    assert "**worse**" in lines["code perplexity (of 64)"]
    assert "**better**" in lines["PNMI"] and "**better**" in lines["ABX within (%)"]
    assert "**no difference detected**" in lines["valid loss (bits)"]
