"""hypervq-plot: codebook perplexity curves of one or more wav2vec 2.0 runs, side by side.

Why: the paper's claim about codebook use (its Figure 6) is a comparison of curves, HyperVQ
against the stock Gumbel quantizer at equal updates. fairseq writes those curves twice: as
TensorBoard scalars when ``common.tensorboard_logdir`` is set (folders ``train_inner/``,
``train/``, ``valid/``), and as JSON lines in its log (``common.log_format: json``). This tool
reads either, with TensorBoard's own ``EventAccumulator`` for event files, and draws one panel
per key (default ``code_perplexity`` and ``prob_perplexity``), one line per run, x = updates.

    hypervq-plot runs/hyper/tb runs/gumbel/tb --label HyperVQ --label Gumbel -o perplexity.png
    hypervq-plot outputs/*/hydra_train.log --keys code_perplexity dead_codes temp -o curves.png --html curves.html
    hypervq-plot runs/hyper/tb --split valid -o valid.png
"""
import argparse
import base64
import html
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

Curves = Dict[str, List[Tuple[int, float]]]  # key -> [(update, value)], sorted by update

DEFAULT_KEYS = ("code_perplexity", "prob_perplexity")
SPLITS = ("train_inner", "train", "valid")
_JSON_LINE = re.compile(r"(\{.*\})\s*$")


def _event_dir_for(run: Path, split: str) -> Path:
    """The folder holding ``split``'s event files: ``run/split`` or ``run`` itself."""
    for candidate in (run / split, run):
        if any(p.name.startswith("events.out.tfevents") for p in candidate.glob("events.out.tfevents*")):
            return candidate
    found = sorted({p.parent.name for p in run.rglob("events.out.tfevents*")})
    raise ValueError(
        f"{run}: no TensorBoard event files for split {split!r} "
        f"(expected {run / split}/events.out.tfevents.*; splits found: {found or 'none'})"
    )


def read_tensorboard(run: Path, split: str) -> Curves:
    """Scalars of one split of a fairseq ``tensorboard_logdir``, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(_event_dir_for(run, split)), size_guidance={SCALARS: 0})
    acc.Reload()
    curves: Curves = {}
    for tag in acc.Tags().get("scalars", []):
        points = {int(e.step): float(e.value) for e in acc.Scalars(tag)}  # last write per step wins
        curves[tag] = sorted(points.items())
    return curves


def read_json_log(path: Path, split: str) -> Curves:
    """Curves from fairseq's JSON log lines (``common.log_format: json``) of one split."""
    prefix = "" if split == "train_inner" else f"{split}_"
    marker = re.compile(rf"(\]\[|\| ){re.escape(split)}(\]|\s\|)")
    curves: Curves = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = _JSON_LINE.search(line)
            if not match or not marker.search(line):
                continue
            try:
                record = json.loads(match.group(1))
            except json.JSONDecodeError:
                continue
            step = record.get(f"{prefix}num_updates", record.get("num_updates"))
            if step is None:
                continue
            for key, value in record.items():
                if not key.startswith(prefix):
                    continue
                try:
                    curves.setdefault(key[len(prefix):], []).append((int(float(step)), float(value)))
                except (TypeError, ValueError):
                    continue
    if not curves:
        raise ValueError(f"{path}: no JSON log lines of split {split!r} (train with common.log_format=json)")
    return {k: sorted(dict(v).items()) for k, v in curves.items()}


def read_run(path: str, split: str) -> Curves:
    """A run is a TensorBoard log folder or a fairseq log file."""
    run = Path(path)
    if run.is_dir():
        return read_tensorboard(run, split)
    if run.is_file():
        return read_json_log(run, split)
    raise FileNotFoundError(f"{path}: no such run (expected a tensorboard_logdir folder or a fairseq JSON log file)")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def plot_runs(runs: Dict[str, Curves], keys, title: str = "") -> bytes:
    """PNG bytes: one panel per key, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(5.0 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, curves in runs.items():
            if key in curves:
                steps, values = zip(*curves[key])
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
            last = curves.get(key)
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
        "  hypervq-plot outputs/*/hydra_train.log --keys code_perplexity dead_codes -o curves.png --html curves.html\n"
        "  hypervq-plot runs/hyper/tb --split valid -o valid.png",
    )
    parser.add_argument("runs", nargs="+", help="tensorboard_logdir folders or fairseq JSON log files")
    parser.add_argument("--label", action="append", default=None,
                        help="legend label per run, in order (default: the run's path)")
    parser.add_argument("--keys", nargs="+", default=list(DEFAULT_KEYS),
                        help=f"scalars to plot, one panel each (default: {' '.join(DEFAULT_KEYS)})")
    parser.add_argument("--split", default="train_inner", choices=SPLITS, help="which log stream (default: train_inner)")
    parser.add_argument("-o", "--out", default="perplexity.png", help="output PNG (default: perplexity.png)")
    parser.add_argument("--html", default=None, help="also write an HTML page with the plot and the last values")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)

    if args.label is not None and len(args.label) != len(args.runs):
        parser.error(f"got {len(args.label)} --label for {len(args.runs)} runs; give one per run or none")
    labels = args.label or [str(Path(r)) for r in args.runs]
    if len(set(labels)) != len(labels):
        parser.error(f"run labels must be distinct, got {labels}; use --label")

    try:
        runs = {label: read_run(path, args.split) for label, path in zip(labels, args.runs)}
    except (OSError, ValueError) as e:
        print(f"hypervq-plot: error: {e}", file=sys.stderr)
        return 2
    for key in args.keys:
        missing = [label for label, curves in runs.items() if key not in curves]
        if len(missing) == len(runs):
            have = sorted(set().union(*runs.values()))
            print(f"hypervq-plot: error: no run has the key {key!r}; available: {have}", file=sys.stderr)
            return 2
        if missing:
            print(f"hypervq-plot: warning: {key!r} is absent from {missing}", file=sys.stderr)

    png = plot_runs(runs, args.keys, args.title)
    _atomic_write(Path(args.out), png)
    print(f"hypervq-plot: wrote {args.out} ({len(runs)} runs, keys {', '.join(args.keys)})")
    if args.html:
        page = html_page(png, runs, args.keys, args.title or "hypervq-plot")
        _atomic_write(Path(args.html), page.encode("utf-8"))
        print(f"hypervq-plot: wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
