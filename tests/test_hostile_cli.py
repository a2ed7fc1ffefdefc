"""Every numeric option of every console script is checked in one place, when the command line is read.

The audit walks each script's parser (subcommands included): a number must come through one of
``hypervq_fairseq.cli``'s checked types (or vision's own checked types), never bare ``int`` or
``float``, so that ``--steps -5``, ``--gpus 0`` or ``--lr nan`` stop at once with the range in the
message, before any folder is created or any file is read.
"""
import argparse
import importlib

import pytest

CHECKED_TYPES = ("hypervq_fairseq.cli", "hypervq_fairseq.vision.options", "hypervq_fairseq.vision.vqsa.cli",
                 "hypervq_fairseq.vision.quantizers.registry")
SCRIPTS = {
    "hypervq-codebook-report": "hypervq_fairseq.tools.codebook_report",
    "hypervq-demo-corpus": "hypervq_fairseq.tools.demo_corpus",
    "hypervq-download": "hypervq_fairseq.tools.download",
    "hypervq-labels": "hypervq_fairseq.tools.labels",
    "hypervq-pretrain": "hypervq_fairseq.tools.launch",
    "hypervq-manifest": "hypervq_fairseq.tools.manifest",
    "hypervq-tokenize": "hypervq_fairseq.tools.tokenize",
    "hypervq-vision": "hypervq_fairseq.vision.cli",
    "hypervq-demo": "hypervq_fairseq.tools.demo",
    "hypervq-export-hf": "hypervq_fairseq.tools.export_hf",
    "hypervq-decode": "hypervq_fairseq.tools.decode",
    "hypervq-build-lm": "hypervq_fairseq.tools.build_lm",
}
PENDING = {}  # scripts whose numeric options are not yet checked: none


def actions(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from actions(sub, path + (name,))
        else:
            yield path, action


def numeric(action) -> bool:
    default_is_number = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
    takes_value = action.nargs != 0 and not isinstance(action, (argparse._StoreConstAction, argparse._CountAction))
    return action.type in (int, float) or (default_is_number and takes_value)


def unchecked(module_name):
    parser = importlib.import_module(module_name).build_parser()
    return [(" ".join(path), action.option_strings) for path, action in actions(parser)
            if numeric(action) and getattr(action.type, "__module__", None) not in CHECKED_TYPES]


@pytest.mark.parametrize("script", [
    pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=PENDING[s])) if s in PENDING else s
    for s in sorted(SCRIPTS)])
def test_every_numeric_option_has_a_checked_type(script):
    assert unchecked(SCRIPTS[script]) == []


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - set(PENDING)))
def test_nonsense_numbers_are_refused_with_the_value_or_range(script):
    parser = importlib.import_module(SCRIPTS[script]).build_parser()
    options = [a for _, a in actions(parser) if getattr(a.type, "__module__", None) == "hypervq_fairseq.cli"]
    assert options
    for action in options:
        for bad in ("nan", "abc", "-1e999", "1e999"):
            with pytest.raises(argparse.ArgumentTypeError) as err:
                action.type(bad)
            assert f"{bad!r} is not" in str(err.value), (action.option_strings, bad)
        low = action.type.__name__.split(">=")[-1].split(">")[-1].split("[")[-1].split(",")[0].strip(" ]")
        if low.lstrip("-").replace(".", "").isdigit():                  # one below the smallest allowed value
            below = str(int(float(low)) - 1 if "integer" in action.type.__name__ else float(low) - 1)
            with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
                action.type(below)


@pytest.mark.parametrize("argv, message", [
    (["--data", "m", "--save-dir", "c", "--gpus", "0"], "argument --gpus: 0 is out of range: must be >= 1"),
    (["--data", "m", "--save-dir", "c", "--nnodes", "-2"], "argument --nnodes: -2 is out of range: must be >= 1"),
    (["--data", "m", "--save-dir", "c", "--node-rank", "-1"], "argument --node-rank: -1 is out of range: must be >= 0"),
    (["--data", "m", "--save-dir", "c", "--master-port", "70000"], "must be >= 1 and <= 65535 (TCP port)"),
    (["--data", "m", "--save-dir", "c", "--update-freq", "0"], "argument --update-freq: 0 is out of range"),
    (["--data", "m", "--save-dir", "c", "--cpus-per-task", "x"], "argument --cpus-per-task: 'x' is not an integer"),
    (["--data", "m", "--save-dir", "c", "--target-gpus", "2.5"], "argument --target-gpus: '2.5' is not an integer"),
])
def test_launcher_numbers(argv, message, capsys, tmp_path, monkeypatch):
    from hypervq_fairseq.tools.launch import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []                                # nothing created


def test_launcher_save_dir_that_cannot_be_created_is_one_line(tmp_path, capsys):
    from hypervq_fairseq.tools.launch import main

    (tmp_path / "file").write_text("x")
    rc = main(["--data", str(tmp_path), "--save-dir", str(tmp_path / "file" / "ckpt"), "--cpu", "--", "x=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("hypervq-pretrain: error: --save-dir ") and "is a file" in err[-1]
