"""Reading what a fairseq run logged: TensorBoard event files and JSON log lines.

fairseq writes its training curves twice: as TensorBoard scalars when
``common.tensorboard_logdir`` is set (folders ``train_inner/``, ``train/``, ``valid/``), and as
JSON lines in its log (``common.log_format: json``). ``hypervq-plot``, ``hypervq-demo`` and the
evidence scripts read either through this module (event files with TensorBoard's own
``EventAccumulator``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Tuple

from ..errors import InputError

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
    raise InputError(
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
        raise InputError(f"{path}: no JSON log lines of split {split!r} (train with common.log_format=json)")
    return {k: sorted(dict(v).items()) for k, v in curves.items()}


def read_run(path: str, split: str) -> Curves:
    """A run is a TensorBoard log folder or a fairseq log file."""
    run = Path(path)
    if run.is_dir():
        return read_tensorboard(run, split)
    if run.is_file():
        return read_json_log(run, split)
    raise InputError(f"{path}: no such run (expected a tensorboard_logdir folder or a fairseq JSON log file)")




def read_json_records(path) -> Dict[str, List[dict]]:
    """Every JSON record of a fairseq log by split (``train_inner``, ``train``, ``valid``), in order.

    Keys lose their split prefix (``valid_loss_0`` -> ``loss_0``); numbers become floats.
    """
    out: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for split in SPLITS:
                if f"][{split}][" in line and "{" in line:
                    try:
                        record = json.loads(line[line.index("{"):])
                    except json.JSONDecodeError:
                        continue
                    prefix = "" if split == "train_inner" else f"{split}_"
                    out[split].append({k[len(prefix):] if k.startswith(prefix) else k: _number(v)
                                       for k, v in record.items()})
    return out


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v
