"""hypervq-demo end to end, cut down: corpus, manifests, two real fairseq trainings, plots, table."""
import json
import math
import subprocess
import sys

import pytest

from hypervq_fairseq.eval.logs import read_json_records
from hypervq_fairseq.tools.demo import format_table, summarize


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    work = tmp_path / "demo"
    cmd = [sys.executable, "-m", "hypervq_fairseq.tools.demo", "--workdir", str(work), "--updates", "2",
           "--max-minutes", "1", "--", "dataset.validate_interval_updates=1", "common.log_interval=1", "dataset.max_tokens=64000"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| HyperVQ | 2 |" in done.stdout and "| Gumbel | 2 |" in done.stdout
    results = json.loads((work / "results.json").read_text())
    assert results["num_negatives"] == 10 and math.isclose(results["chance"], math.log2(11))
    for label in ("HyperVQ", "Gumbel"):
        r = results["results"][label]
        assert r["updates"] == 2 and 0 <= r["accuracy"] <= 1 and 1 <= r["code_perplexity"] <= 64
        assert r["loss_0"] > 0
    for png in ("perplexity.png", "valid.png"):
        assert (work / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # token quality: the validation set's English voice aligned, both quantizers beside their baselines
    assert "Only the English voice of the validation set is scored" in done.stdout
    units = json.loads((work / "units" / "results.json").read_text())
    systems = units["systems"]
    assert {"hypervq", "gumbel", "random_hypervq", "random_gumbel"} <= set(systems)
    assert any(n.startswith("kmeans_mfcc_") for n in systems) and any(n.startswith("kmeans_layer1_") for n in systems)
    assert units["data"]["speakers"] == ["9001"] and units["data"]["skipped"]["not_selected"] > 0
    for name in ("hypervq", "gumbel", "random_hypervq", "kmeans_mfcc_"):
        assert f"| {name}" in done.stdout
    assert (work / "manifest" / "valid.phn").exists()
    # the selection statistics are drawn beside the perplexity curves
    assert "sample_is_argmax" in (work / "perplexity.html").read_text()

    # the table is computed from the logs the runs wrote
    log = read_json_records(work / "hypervq" / "train.log")
    assert [int(r["num_updates"]) for r in log["valid"]][-1] == 2
    again = summarize(log, results["chance"])
    assert again == results["results"]["HyperVQ"]


def test_left_chance_is_the_first_validation_clearly_below_chance():
    chance = math.log2(11)
    log = {"train_inner": [], "valid": [
        {"num_updates": 25, "loss_0": chance - 0.01, "accuracy": 0.09, "code_perplexity": 30, "prob_perplexity": 31},
        {"num_updates": 50, "loss_0": chance - 0.3, "accuracy": 0.2, "code_perplexity": 30, "prob_perplexity": 31},
        {"num_updates": 75, "loss_0": 2.0, "accuracy": 0.5, "code_perplexity": 28, "prob_perplexity": 29}]}
    s = summarize(log, chance)
    assert s["left_chance_at"] == 50 and s["updates"] == 75 and s["loss_0"] == 2.0
    log["valid"] = log["valid"][:1]
    assert summarize(log, chance)["left_chance_at"] is None
    table = format_table({"A": summarize(log, chance)}, chance, 10)
    assert "| A | 25 |" in table and "never" in table and "3.459" in table
