"""hypervq-plot on event files written by tensorboardX (as fairseq does) and on fairseq JSON logs."""
import json

import pytest

from hypervq_fairseq.tools import plot


def write_tensorboard_run(logdir, ppl, splits=("train_inner",)):
    from tensorboardX import SummaryWriter

    for split in splits:
        with SummaryWriter(str(logdir / split)) as w:
            for step, value in enumerate(ppl, start=1):
                w.add_scalar("code_perplexity", value, step)
                w.add_scalar("prob_perplexity", value + 1.5, step)
                w.add_scalar("temp", 2.0 * 0.99**step, step)


def write_json_log(path, ppl):
    lines = ["[2026-01-01 00:00:00,000][fairseq_cli.train][INFO] - Start iterating over samples"]
    for step, value in enumerate(ppl, start=1):
        record = {"epoch": 1, "loss": "6.1", "code_perplexity": f"{value}", "prob_perplexity": f"{value + 1}",
                  "num_updates": f"{step}"}
        lines.append(f"[2026-01-01 00:00:0{step},000][train_inner][INFO] - {json.dumps(record)}")
    lines.append('[2026-01-01 00:00:09,000][valid][INFO] - {"epoch": 1, "valid_code_perplexity": "9.5", '
                 '"valid_num_updates": "3"}')
    path.write_text("\n".join(lines) + "\n")


def pixel_colours(path):
    import matplotlib.image

    return {tuple(p) for p in (matplotlib.image.imread(str(path))[..., :3] * 255).round().astype(int).reshape(-1, 3)}


def test_reads_tensorboard_and_json_logs_alike(tmp_path):
    write_tensorboard_run(tmp_path / "tb", [10.0, 12.0, 15.0], splits=("train_inner", "valid"))
    write_json_log(tmp_path / "train.log", [10.0, 12.0, 15.0])
    tb = plot.read_run(str(tmp_path / "tb"), "train_inner")
    log = plot.read_run(str(tmp_path / "train.log"), "train_inner")
    assert tb["code_perplexity"] == log["code_perplexity"] == [(1, 10.0), (2, 12.0), (3, 15.0)]
    assert plot.read_run(str(tmp_path / "train.log"), "valid")["code_perplexity"] == [(3, 9.5)]
    assert len(plot.read_run(str(tmp_path / "tb"), "valid")["temp"]) == 3


def test_png_and_html_hold_every_run(tmp_path, capsys):
    write_tensorboard_run(tmp_path / "hyper", [20.0, 30.0, 40.0])
    write_tensorboard_run(tmp_path / "gumbel", [10.0, 11.0, 12.0])
    write_json_log(tmp_path / "third.log", [5.0, 6.0, 7.0])
    out, page = tmp_path / "out" / "ppl.png", tmp_path / "out" / "ppl.html"
    code = plot.main([str(tmp_path / "hyper"), str(tmp_path / "gumbel"), str(tmp_path / "third.log"),
                      "--label", "HyperVQ", "--label", "Gumbel", "--label", "Third", "-o", str(out), "--html", str(page)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    colours = pixel_colours(out)
    for rgb in [(31, 119, 180), (255, 127, 14), (44, 160, 44)]:  # matplotlib's C0, C1, C2: one per run
        assert rgb in colours
    text = page.read_text()
    assert all(label in text for label in ("HyperVQ", "Gumbel", "Third"))
    assert "40.000 @ 3" in text and "12.000 @ 3" in text  # last code_perplexity of each run
    assert sorted(p.name for p in out.parent.iterdir()) == ["ppl.html", "ppl.png"]  # no temp files left


def test_one_run_draws_one_colour(tmp_path):
    write_tensorboard_run(tmp_path / "solo", [3.0, 4.0])
    out = tmp_path / "solo.png"
    assert plot.main([str(tmp_path / "solo"), "-o", str(out), "--keys", "code_perplexity", "temp"]) == 0
    colours = pixel_colours(out)
    assert (31, 119, 180) in colours and (255, 127, 14) not in colours


def test_errors_name_the_problem(tmp_path, capsys):
    write_tensorboard_run(tmp_path / "tb", [1.0, 2.0])
    assert plot.main([str(tmp_path / "missing"), "-o", str(tmp_path / "a.png")]) == 1
    assert "missing: no such run" in capsys.readouterr().err
    assert plot.main([str(tmp_path / "tb"), "--keys", "nope", "-o", str(tmp_path / "a.png")]) == 1
    err = capsys.readouterr().err
    assert "'nope'" in err and "code_perplexity" in err
    assert plot.main([str(tmp_path / "tb"), "--split", "valid", "-o", str(tmp_path / "a.png")]) == 1
    assert "train_inner" in capsys.readouterr().err  # names the splits it found
    (tmp_path / "empty.log").write_text("nothing here\n")
    assert plot.main([str(tmp_path / "empty.log"), "-o", str(tmp_path / "a.png")]) == 1
    assert "log_format=json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path / "tb"), "--label", "a", "--label", "b"])
    assert not (tmp_path / "a.png").exists()


def test_help_ends_with_examples(capsys):
    with pytest.raises(SystemExit):
        plot.main(["--help"])
    assert capsys.readouterr().out.rstrip().splitlines()[-1].strip().startswith("hypervq-plot ")


def test_selection_panels_sit_beside_perplexity_and_match_prefixed_tags(tmp_path, capsys):
    from tensorboardX import SummaryWriter

    # a fairseq-style run (tags without prefix) and a vision-style one (train/ and test/ prefixes)
    with SummaryWriter(str(tmp_path / "fairseq" / "train_inner")) as w:
        for step in (1, 2, 3):
            w.add_scalar("code_perplexity", 10.0 + step, step)
            w.add_scalar("prob_perplexity", 11.0 + step, step)
            for key, value in (("sample_is_argmax", 0.05 * step), ("logit_gap", 0.1 * step), ("logit_std", 0.3)):
                w.add_scalar(key, value, step)
    with SummaryWriter(str(tmp_path / "vision")) as w:
        for step in (1, 2):
            for key, value in (("perplexity", 7.0), ("sample_is_argmax", 0.7), ("logit_gap", 2.5), ("logit_std", 1.5)):
                w.add_scalar(f"train/{key}", value, step)
        w.add_scalar("test/perplexity", 99.0, 2)
    page = tmp_path / "sel.html"
    code = plot.main([str(tmp_path / "fairseq"), str(tmp_path / "vision"), "--label", "fairseq", "--label", "vision",
                      "--keys", "code_perplexity", "perplexity", "--selection", "-o", str(tmp_path / "sel.png"),
                      "--html", str(page)])
    assert code == 0
    assert "keys code_perplexity, perplexity, sample_is_argmax, logit_gap, logit_std" in capsys.readouterr().out
    text = page.read_text()
    assert "0.150 @ 3" in text and "0.300 @ 3" in text  # fairseq run: last sample_is_argmax, logit_gap
    assert "7.000 @ 2" in text and "99.000" not in text  # train/perplexity chosen over test/perplexity
    assert "0.700 @ 2" in text and "2.500 @ 2" in text and "1.500 @ 2" in text
    import matplotlib.image

    height, width = matplotlib.image.imread(str(tmp_path / "sel.png")).shape[:2]
    assert height > width / 2  # 5 panels wrap onto two rows of three


@pytest.mark.slow
def test_recipe_step_4_plots_every_run(tmp_path):
    """recipes/librispeech/04_monitor.sh: one curve per SAVE_DIR, labelled by its folder name."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tensorboardX import SummaryWriter

    for name, agree in (("hypervq", 0.8), ("gumbel", 0.7)):
        with SummaryWriter(str(tmp_path / name / "tb" / "train_inner")) as w:  # as fairseq logs them
            for step in (1, 2):
                for key, value in (("code_perplexity", 5.0), ("prob_perplexity", 6.0), ("sample_is_argmax", agree),
                                   ("logit_gap", 1.0), ("logit_std", 2.0)):
                    w.add_scalar(key, value, step)
    script = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "04_monitor.sh"
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    out = tmp_path / "plots"
    done = subprocess.run(["bash", str(script), str(out), str(tmp_path / "hypervq"), str(tmp_path / "gumbel")],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (out / "perplexity.html").read_text()
    assert "hypervq" in page and "gumbel" in page
    assert (out / "perplexity.png").stat().st_size > 0 and (out / "selection.png").stat().st_size > 0
    missing = subprocess.run(["bash", str(script), str(out)], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "usage" in missing.stderr
