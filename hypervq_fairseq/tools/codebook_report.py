"""hypervq-codebook-report: how a dataset uses a pretrained HyperVQ codebook.

Why: the paper's case for HyperVQ is codebook use (more codes in use, higher perplexity than
the Gumbel quantizer). Training logs show batch-level perplexities; this tool measures the
whole dataset at once, from a token file written by ``hypervq-tokenize`` or directly from a
checkpoint and a manifest, and writes:

    OUT/usage_g{g}.png   per group: how often each code is used (bars in code order, and the
                         same counts sorted, on a log scale, to show the long tail and dead codes)
    OUT/report.tsv       one row per group (and one for the combined id): frames, codes, used,
                         dead, perplexity, top-code share
    OUT/report.json      the same numbers, plus the per-code counts

Perplexity is ``exp(entropy)`` of the dataset-level code distribution: wav2vec 2.0's
``code_perplexity`` over all frames instead of one batch (at most V per group; V^G combined).
A dead code is one no frame of the dataset picks.

    hypervq-codebook-report --tokens runs/demo/tokens/train.tok --out runs/demo/codebook
    hypervq-codebook-report --checkpoint ckpt/checkpoint_best.pt --manifest manifests/valid.tsv --out report/
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

EXAMPLES = """examples:
  # from a token file (hypervq-tokenize writes OUT and OUT.json)
  hypervq-codebook-report --tokens runs/demo/tokens/train.tok --out runs/demo/codebook
  # straight from a checkpoint and a manifest (tokens kept in memory)
  hypervq-codebook-report --checkpoint ckpt/hypervq/checkpoint_best.pt --manifest manifests/librispeech/valid.tsv \\
      --out reports/hypervq_valid
"""


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
            raise ValueError(f"code id out of range [0, {num_vars}): {ids.min()}..{ids.max()}")
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


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def load_tokens(path) -> tuple:
    """(ids per utterance, groups, num_vars) from a ``hypervq-tokenize`` file and its ``.json``."""
    from .tokenize import read_token_file

    path = Path(path)
    meta_path = path.with_name(path.name + ".json")
    if not path.is_file():
        raise FileNotFoundError(f"token file {path} not found")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: it records G and V of {path} (hypervq-tokenize writes it)")
    meta = json.loads(meta_path.read_text())
    tokens = read_token_file(path, meta["groups"], meta["num_vars"], meta["combine"])
    return list(tokens.values()), meta["groups"], meta["num_vars"]


def tokens_from_checkpoint(checkpoint, manifest, device: str, max_tokens: int, progress: bool) -> tuple:
    """Encode a manifest in memory with the checkpoint's quantizer; (ids per utterance, G, V)."""
    from tqdm import tqdm

    from .tokenize import _batches, _read_audio, encode, load_tokenizer_model, read_manifest

    tm = load_tokenizer_model(checkpoint, device)
    root, rows = read_manifest(manifest)
    out = []
    with tqdm(total=len(rows), desc="encode", unit="utt", disable=not progress) as bar:
        for batch in _batches(rows, max_tokens, 32):
            out += encode(tm, [_read_audio(os.path.join(root, rows[i][0]), tm.sample_rate) for i in batch])
            bar.update(len(batch))
    return out, tm.groups, tm.num_vars


def write_report(ids, groups: int, num_vars: int, out_dir, source: str, title: str = "HyperVQ codebook") -> dict:
    """Count, plot and write ``report.tsv``/``report.json``/``usage_g*.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts, combined = count_codes(ids, groups, num_vars)
    report = build_report(counts, combined, len(ids), source)
    for g in range(groups):
        plot_group(counts[g], g, out_dir / f"usage_g{g}.png", title)
    table = format_table(report)
    _atomic_write(out_dir / "report.tsv", lambda tmp: Path(tmp).write_text(
        "\n".join("\t".join(str(r[k]) for k in ("name", "frames", "codes", "used", "dead", "perplexity", "top_share"))
                  for r in [dict(name="codebook", frames="frames", codes="codes", used="used", dead="dead",
                                 perplexity="perplexity", top_share="top_share")] + report["rows"]) + "\n"))
    _atomic_write(out_dir / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1) + "\n"))
    report["table"] = table
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hypervq-codebook-report", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="token file written by hypervq-tokenize (its .json beside it)")
    src.add_argument("--checkpoint", help="pretraining checkpoint; needs --manifest")
    p.add_argument("--manifest", help="fairseq manifest to encode with --checkpoint")
    p.add_argument("--out", required=True, help="folder for report.tsv, report.json and usage_g*.png")
    p.add_argument("--title", default="HyperVQ codebook", help="plot title prefix")
    p.add_argument("--device", default="cpu", help="cpu or cuda (with --checkpoint)")
    p.add_argument("--max-tokens", type=int, default=1_600_000, help="padded samples per batch (with --checkpoint)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from .tokenize import TokenizeError

    try:
        if args.tokens:
            ids, groups, num_vars = load_tokens(args.tokens)
            source = str(args.tokens)
        else:
            if not args.manifest:
                p.error("--checkpoint needs --manifest")
            ids, groups, num_vars = tokens_from_checkpoint(args.checkpoint, args.manifest, args.device,
                                                           args.max_tokens, not args.no_progress)
            source = f"{args.checkpoint} on {args.manifest}"
        report = write_report(ids, groups, num_vars, args.out, source, args.title)
    except (TokenizeError, FileNotFoundError, ValueError) as e:
        print(f"hypervq-codebook-report: error: {e}", file=sys.stderr)
        return 1
    print(f"{report['utterances']} utterances, {groups} groups x {num_vars} codes ({source})")
    print(report["table"])
    print(f"wrote {Path(args.out) / 'report.tsv'}, report.json, " + ", ".join(f"usage_g{g}.png" for g in range(groups)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
