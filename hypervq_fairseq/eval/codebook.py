"""How a dataset uses a pretrained codebook: per-code counts, dead codes, perplexity, plots.

Why: batch-level perplexities in the training log say little about a whole dataset; these
numbers count every frame at once. Perplexity is ``exp(entropy)`` of the dataset-level code
distribution (wav2vec 2.0's ``code_perplexity`` over all frames instead of one batch: at most V
per group, V^G combined). A dead code is one that no frame of the dataset picks. Perplexity
rewards noise as much as structure; ``hypervq_fairseq.eval.units`` measures whether codes follow
phones.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_write, atomic_write_json, atomic_write_lines
from .tokens import read_sidecar, read_token_file


def perplexity(counts: np.ndarray) -> float:
    """``exp(entropy)`` of the distribution proportional to ``counts`` (0 log 0 = 0)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(math.exp(-(p * np.log(p)).sum()))


def usage_stats(counts: np.ndarray) -> dict:
    """Numbers for one codebook: ``counts (V,)`` -> frames, codes, used, dead, perplexity, top share."""
    total = int(counts.sum())
    return dict(frames=total, codes=int(counts.size), used=int((counts > 0).sum()), dead=int((counts == 0).sum()),
                perplexity=round(perplexity(counts), 3), top_share=round(float(counts.max()) / total, 4) if total else 0.0)


def count_codes(ids_per_utterance, groups: int, num_vars: int) -> tuple:
    """``(G, V)`` per-group counts and a ``{combined id: count}`` dict from ``(T, G)`` id arrays."""
    counts = np.zeros((groups, num_vars), dtype=np.int64)
    combined = {}
    weights = np.array([num_vars ** (groups - 1 - g) for g in range(groups)], dtype=np.int64)
    for ids in ids_per_utterance:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, groups)
        if ids.size and (ids.min() < 0 or ids.max() >= num_vars):
            raise InputError(f"code id out of range [0, {num_vars}): {ids.min()}..{ids.max()}")
        for g in range(groups):
            counts[g] += np.bincount(ids[:, g], minlength=num_vars)
        uniq, n = np.unique(ids @ weights, return_counts=True)
        for u, c in zip(uniq.tolist(), n.tolist()):
            combined[u] = combined.get(u, 0) + c
    return counts, combined


def build_report(counts: np.ndarray, combined: dict, utterances: int, source: str) -> dict:
    groups, num_vars = counts.shape
    rows = [dict(name=f"g{g}", **usage_stats(counts[g])) for g in range(groups)]
    comb = np.array(sorted(combined.values()), dtype=np.int64)
    crow = usage_stats(comb)
    crow.update(codes=num_vars ** groups, dead=num_vars ** groups - crow["used"])
    rows.append(dict(name="combined", **crow))
    return dict(source=source, utterances=utterances, groups=groups, num_vars=num_vars, rows=rows,
                counts=counts.tolist())


def format_table(report: dict) -> str:
    head = f"{'codebook':<10}{'frames':>10}{'codes':>9}{'used':>8}{'dead':>9}{'perplexity':>12}{'top share':>11}"
    lines = [head]
    for r in report["rows"]:
        lines.append(f"{r['name']:<10}{r['frames']:>10}{r['codes']:>9}{r['used']:>8}{r['dead']:>9}"
                     f"{r['perplexity']:>12.2f}{r['top_share']:>11.3f}")
    return "\n".join(lines)


def plot_group(counts: np.ndarray, group: int, path: Path, title: str) -> None:
    """Bars of per-code counts in code order (left) and sorted on a log scale (right)."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's imports leave the root logger at DEBUG
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = usage_stats(counts)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4))
    a.bar(np.arange(counts.size), counts, width=1.0, color="tab:blue")
    a.set_xlabel("code id")
    a.set_ylabel("frames")
    a.set_xlim(-0.5, counts.size - 0.5)
    ranked = np.sort(counts)[::-1]
    colors = np.where(ranked > 0, "tab:orange", "tab:red")  # dead codes: red stubs below 1
    b.bar(np.arange(counts.size), np.maximum(ranked, 0.8), width=1.0, color=colors)
    b.set_yscale("log")
    b.set_xlabel("code rank")
    b.set_ylabel("frames (log)")
    b.set_xlim(-0.5, counts.size - 0.5)
    fig.suptitle(f"{title} — group {group}: {stats['used']}/{stats['codes']} codes used, "
                 f"{stats['dead']} dead, perplexity {stats['perplexity']:.1f}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def load_tokens(path) -> tuple:
    """(ids per utterance, groups, num_vars) from a complete ``hypervq-tokenize`` file and its sidecar."""
    meta = read_sidecar(path)
    tokens = read_token_file(path)
    return list(tokens.values()), int(meta["groups"]), int(meta["num_vars"])


def write_report(ids, groups: int, num_vars: int, out_dir, source: str, title: str = "HyperVQ codebook") -> dict:
    """Count, plot and write ``report.tsv``/``report.json``/``usage_g*.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts, combined = count_codes(ids, groups, num_vars)
    report = build_report(counts, combined, len(ids), source)
    for g in range(groups):
        plot_group(counts[g], g, out_dir / f"usage_g{g}.png", title)
    table = format_table(report)
    columns = ("name", "frames", "codes", "used", "dead", "perplexity", "top_share")
    atomic_write_lines(out_dir / "report.tsv", ["\t".join(("codebook",) + columns[1:])]
                       + ["\t".join(str(r[k]) for k in columns) for r in report["rows"]])
    atomic_write_json(out_dir / "report.json", report)
    report["table"] = table
    return report
