"""Damaged training logs are reported by name, never drawn as a shorter curve.

Event files are written by tensorboardX (what fairseq uses for ``common.tensorboard_logdir``),
then damaged in the middle, cut short, replaced by random bytes or emptied. TensorBoard's own
loader reads the first two silently up to the damage (measured: 101 of 200 points); hypervq-plot
must exit 1 naming the file instead. A fairseq JSON log with a malformed line is reported as
``file:line``.
"""
import os

import pytest

from hypervq_fairseq.errors import InputError
from hypervq_fairseq.eval.logs import check_event_file, read_json_records, read_run
from hypervq_fairseq.tools import plot

POINTS = 200


@pytest.fixture
def event_file(tmp_path):
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "good" / "train_inner"))
    for step in range(1, POINTS + 1):
        writer.add_scalar("code_perplexity", 10 + 0.1 * step, step)
        writer.add_scalar("prob_perplexity", 20 + 0.1 * step, step)
    writer.close()
    (path,) = (tmp_path / "good" / "train_inner").glob("events.out.tfevents*")
    return path


def damaged(event_file, name, data):
    folder = event_file.parents[2] / name / "train_inner"
    folder.mkdir(parents=True)
    target = folder / event_file.name
    target.write_bytes(data)
    return target


def damage(raw, kind):
    half = len(raw) // 2
    if kind == "middle":
        return raw[:half] + bytes(b ^ 0xFF for b in raw[half:half + 40]) + raw[half + 40:]
    if kind == "truncated":
        return raw[: half + 7]
    if kind == "random":
        return os.urandom(len(raw))
    return b""


def test_tensorboards_own_loader_would_draw_a_shorter_curve(event_file):
    """The fault: what EventAccumulator makes of a file damaged in the middle, without a word."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    bad = damaged(event_file, "middle", damage(event_file.read_bytes(), "middle"))
    acc = EventAccumulator(str(bad.parent), size_guidance={SCALARS: 0})
    acc.Reload()
    assert 0 < len(acc.Scalars("code_perplexity")) < POINTS


@pytest.mark.parametrize("kind, message", [
    ("middle", r"corrupted TensorBoard event file: \d+ record\(s\) intact, then a record that fails its checksum"),
    ("truncated", r"truncated TensorBoard event file: \d+ record\(s\) intact, then a record cut short"),
    ("random", r"unreadable, not a TensorBoard event file"),
    ("empty", r"its event files hold no records"),
])
def test_hypervq_plot_refuses_a_damaged_event_file_by_name(event_file, tmp_path, capsys, kind, message):
    import re

    bad = damaged(event_file, kind, damage(event_file.read_bytes(), kind))
    out = tmp_path / f"{kind}.png"
    assert plot.main([str(tmp_path / "good"), str(tmp_path / kind), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err) and (str(bad) in err or str(bad.parent) in err), err
    assert not out.exists()
    with pytest.raises(InputError, match=message):
        read_run(str(tmp_path / kind), "train_inner")


def test_an_intact_file_reads_whole_and_plots(event_file, tmp_path):
    assert check_event_file(event_file) == 2 * POINTS + 1           # + tensorboardX's file-version record
    curves = read_run(str(tmp_path / "good"), "train_inner")
    assert [s for s, _ in curves["code_perplexity"]] == list(range(1, POINTS + 1))
    assert plot.main([str(tmp_path / "good"), "-o", str(tmp_path / "ok.png")]) == 0


LOG = (
    '[2024-01-01 00:00:01,000][train_inner][INFO] - {"epoch": 1, "update": 0.1, "loss": "8.1", '
    '"code_perplexity": "12.5", "num_updates": "1"}\n'
    '[2024-01-01 00:00:01,500][fairseq.trainer][INFO] - begin training {not json}\n'
    '[2024-01-01 00:00:02,000][train_inner][INFO] - {"epoch": 1, "update": 0.2, "loss": "8.0", '
    '"code_perplexity": "12.9", "num_updates": "2"}\n'
)


def test_a_malformed_json_log_line_is_reported_with_file_and_line(tmp_path, capsys):
    good = tmp_path / "train.log"
    good.write_text(LOG)
    assert [p for p, _ in read_run(str(good), "train_inner")["code_perplexity"]] == [1, 2]
    bad = tmp_path / "bad.log"
    lines = LOG.splitlines(True)
    bad.write_text(lines[0] + lines[1] + lines[2].replace('"loss": "8.0",', '"loss": "8.0" "x",'))
    for reader in (lambda: read_run(str(bad), "train_inner"), lambda: read_json_records(bad)):
        with pytest.raises(InputError, match=rf"{bad}:3: malformed JSON log line"):
            reader()
    assert plot.main([str(bad), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: malformed JSON log line" in err and len(err.strip().splitlines()) == 1


def test_a_json_log_cut_mid_line_is_reported(tmp_path):
    cut = tmp_path / "cut.log"
    cut.write_text(LOG[: len(LOG) - 30])                              # a kill while the line was written
    with pytest.raises(InputError, match=rf"{cut}:3: malformed JSON log line"):
        read_run(str(cut), "train_inner")
