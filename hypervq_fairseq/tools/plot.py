"""hypervq-plot: codebook perplexity curves of one or more wav2vec 2.0 runs, side by side.

Why: the paper's claim about codebook use (its Figure 6) is a comparison of curves, HyperVQ
against the stock Gumbel quantizer at equal updates. fairseq writes those curves twice: as
TensorBoard scalars when ``common.tensorboard_logdir`` is set (folders ``train_inner/``,
``train/``, ``valid/``), and as JSON lines in its log (``common.log_format: json``). This tool
reads either (``hypervq_fairseq.eval.logs``) and draws one panel per key (default
``code_perplexity`` and ``prob_perplexity``), one line per run, x = updates.

``--selection`` adds the selection statistics next to those panels: the fraction of frames
whose sampled code is the argmax code (``sample_is_argmax``), the gap between the two largest
logits and their spread (``logit_gap``, ``logit_std``). Perplexity cannot tell codes chosen by
the input from codes drawn by Gumbel noise; these can. A key also matches a tag that ends in
``/KEY`` (the vision trainers log ``train/perplexity``, ``train/sample_is_argmax``, ...).

    hypervq-plot runs/hyper/tb runs/gumbel/tb --label HyperVQ --label Gumbel -o perplexity.png
    hypervq-plot runs/hyper/tb runs/gumbel/tb --selection -o selection.png
    hypervq-plot outputs/*/hydra_train.log --keys code_perplexity dead_codes temp -o curves.png --html curves.html
    hypervq-plot runs/hyper/tb --split valid -o valid.png
    hypervq-plot runs/vision/hypervq/tb runs/vision/gumbel/tb --keys perplexity --selection -o vision.png
"""
import argparse
import base64
import html
import io
import sys
from pathlib import Path
from typing import Dict

from ..cli import add_debug_flag, run
from ..eval.logs import DEFAULT_KEYS, SPLITS, Curves, read_run
from ..errors import InputError
from ..files import atomic_write_bytes, atomic_write_text
from ..quantizers.selection import KEYS as SELECTION_KEYS


def find_curve(curves: Curves, key: str):
    """The curve of ``key``: the tag itself, else the one tag ending in ``/key`` (``train/`` preferred)."""
    if key in curves:
        return curves[key]
    matches = sorted(tag for tag in curves if tag.endswith("/" + key))
    preferred = [tag for tag in matches if tag.startswith("train/")]
    return curves[(preferred or matches)[0]] if matches else None


def plot_runs(runs: Dict[str, Curves], keys, title: str = "") -> bytes:
    """PNG bytes: one panel per key, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(keys))  # perplexity and selection panels wrap onto a second row
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        for label, curves in runs.items():
            curve = find_curve(curves, key)
            if curve:
                steps, values = zip(*curve)
                ax.plot(steps, values, label=label, marker="." if len(steps) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def html_page(png: bytes, runs: Dict[str, Curves], keys, title: str) -> str:
    rows = []
    for label, curves in runs.items():
        cells = []
        for key in keys:
            last = find_curve(curves, key)
            cells.append(f"<td>{last[-1][1]:.3f} @ {last[-1][0]}</td>" if last else "<td>-</td>")
        rows.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    return (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1>"
        f"<img alt='curves' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<h2>Last value (value @ update)</h2><table border=1 cellpadding=4><tr><th>run</th>{head}</tr>"
        f"{''.join(rows)}</table>"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypervq-plot",
        description="Plot codebook perplexity curves of wav2vec 2.0 runs side by side "
        "(TensorBoard event folders or fairseq JSON logs).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  hypervq-plot runs/hyper/tb runs/gumbel/tb --label HyperVQ --label Gumbel -o perplexity.png\n"
        "  hypervq-plot runs/hyper/tb runs/gumbel/tb --selection -o selection.png\n"
        "  hypervq-plot outputs/*/hydra_train.log --keys code_perplexity dead_codes -o curves.png --html curves.html\n"
        "  hypervq-plot runs/hyper/tb --split valid -o valid.png",
    )
    parser.add_argument("runs", nargs="+", help="tensorboard_logdir folders or fairseq JSON log files")
    parser.add_argument("--label", action="append", default=None,
                        help="legend label per run, in order (default: the run's path)")
    parser.add_argument("--keys", nargs="+", default=list(DEFAULT_KEYS),
                        help=f"scalars to plot, one panel each (default: {' '.join(DEFAULT_KEYS)})")
    parser.add_argument("--selection", action="store_true",
                        help=f"also draw the selection statistics: {', '.join(SELECTION_KEYS)}")
    parser.add_argument("--split", default="train_inner", choices=SPLITS, help="which log stream (default: train_inner)")
    parser.add_argument("-o", "--out", default="perplexity.png", help="output PNG (default: perplexity.png)")
    parser.add_argument("--html", default=None, help="also write an HTML page with the plot and the last values")
    parser.add_argument("--title", default="", help="figure title")
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    if args.label is not None and len(args.label) != len(args.runs):
        parser.error(f"got {len(args.label)} --label for {len(args.runs)} runs; give one per run or none")
    labels = args.label or [str(Path(r)) for r in args.runs]
    if len(set(labels)) != len(labels):
        parser.error(f"run labels must be distinct, got {labels}; use --label")


    keys = list(dict.fromkeys(args.keys + (list(SELECTION_KEYS) if args.selection else [])))

    def work():
        runs = {label: read_run(path, args.split) for label, path in zip(labels, args.runs)}
        for key in keys:
            missing = [label for label, curves in runs.items() if find_curve(curves, key) is None]
            if len(missing) == len(runs):
                have = sorted(set().union(*runs.values()))
                raise InputError(f"no run has the key {key!r}; available: {have}")
            if missing:
                print(f"hypervq-plot: warning: {key!r} is absent from {missing}", file=sys.stderr)
        png = plot_runs(runs, keys, args.title)
        atomic_write_bytes(Path(args.out), png)
        print(f"hypervq-plot: wrote {args.out} ({len(runs)} runs, keys {', '.join(keys)})")
        if args.html:
            atomic_write_text(Path(args.html), html_page(png, runs, keys, args.title or "hypervq-plot"))
            print(f"hypervq-plot: wrote {args.html}")

    return run("hypervq-plot", work, args)


if __name__ == "__main__":
    sys.exit(main())
