"""Reading what a fairseq run logged: TensorBoard event files and JSON log lines.

fairseq writes its training curves twice: as TensorBoard scalars when
``common.tensorboard_logdir`` is set (folders ``train_inner/``, ``train/``, ``valid/``), and as
JSON lines in its log (``common.log_format: json``). ``hypervq-plot``, ``hypervq-demo`` and the
evidence scripts read either through this module (event files with TensorBoard's own
``EventAccumulator``).

A damaged log is an error naming the file, never a shorter curve: TensorBoard's loader stops
quietly at the first record that fails its checksum or is cut short (it logs that only at debug
level, since a file being written may end in a partial record), so every event file is first read
through TensorBoard's record reader, which checks each record's length and CRCs, and a corrupted,
truncated or foreign file is reported by name with how many records were intact. A JSON log line
that cannot be parsed is reported as ``file:line``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

from ..errors import InputError

Curves = Dict[str, List[Tuple[int, float]]]  # key -> [(update, value)], sorted by update

DEFAULT_KEYS = ("code_perplexity", "prob_perplexity")
SPLITS = ("train_inner", "train", "valid")


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


def check_event_file(path: Path) -> int:
    """Read every record of one event file; its record count, or :class:`InputError` naming what is wrong."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat import tf

    records = 0
    # TensorBoard's own record reader (length and CRC checks); its loader would swallow the error
    iterator = event_file_loader._make_tf_record_iterator(str(path))
    try:
        for _ in iterator:
            records += 1
    except tf.errors.DataLossError as e:
        detail = e.message if isinstance(e.message, str) else str(e)
        kind = "truncated" if "truncated" in detail else "corrupted"
        if records == 0 and kind == "corrupted":
            raise InputError(f"{path}: unreadable, not a TensorBoard event file (its first record fails the "
                             f"checksum)") from None
        if kind == "truncated":
            what = "a record cut short (a copy that stopped early, or a run still writing it: try again then)"
        else:
            what = "a record that fails its checksum (damaged on disk or in a copy)"
        raise InputError(f"{path}: {kind} TensorBoard event file: {records} record(s) intact, then {what}; "
                         f"its curves would end early") from None
    return records


def read_tensorboard(run: Path, split: str) -> Curves:
    """Scalars of one split of a fairseq ``tensorboard_logdir``, by tag (every event file checked first)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    folder = _event_dir_for(run, split)
    paths = sorted(folder.glob("events.out.tfevents*"))
    if sum(check_event_file(path) for path in paths) == 0:
        raise InputError(f"{folder}: its event files hold no records ({', '.join(p.name for p in paths)} empty)")
    acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    acc.Reload()
    curves: Curves = {}
    for tag in acc.Tags().get("scalars", []):
        points = {int(e.step): float(e.value) for e in acc.Scalars(tag)}  # last write per step wins
        curves[tag] = sorted(points.items())
    return curves


def _json_lines(path):
    """``(line number, line, record)`` for every JSON log line of a fairseq log; ``file:line`` for a bad one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, start=1):
                split = next((s for s in SPLITS if f"][{s}][" in line or f"| {s} |" in line), None)
                if split is None or "{" not in line:
                    continue
                text = line[line.index("{"):].strip()
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: malformed JSON log line ({e.msg} at column "
                                     f"{line.index('{') + e.pos + 1}): {text[:80]!r}") from None
                if not isinstance(record, dict):
                    raise InputError(f"{path}:{n}: a JSON log line must hold an object, got {text[:80]!r}")
                yield n, split, record
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a fairseq log file") from None


def read_json_log(path: Path, split: str) -> Curves:
    """Curves from fairseq's JSON log lines (``common.log_format: json``) of one split."""
    prefix = "" if split == "train_inner" else f"{split}_"
    curves: Curves = {}
    for _, line_split, record in _json_lines(path):
        if line_split != split:
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

    Keys lose their split prefix (``valid_loss_0`` -> ``loss_0``); numbers become floats. A line
    that is not valid JSON raises :class:`InputError` with ``file:line``.
    """
    out: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    for _, split, record in _json_lines(path):
        prefix = "" if split == "train_inner" else f"{split}_"
        out[split].append({k[len(prefix):] if k.startswith(prefix) else k: _number(v) for k, v in record.items()})
    return out


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v
