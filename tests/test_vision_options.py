"""Bad command lines of hypervq-vision (and its vqsa subcommand) fail at once, in one line, leaving nothing behind.

Each fault class gets its test: counts below their minimum, floats out of range or not
numbers, a bad Gumbel temperature schedule, and faults only found after parsing (a batch
larger than the data, a missing checkpoint, an impossible combination). Every one must
exit non-zero with one stderr line that names the option, the value and the allowed range,
print no traceback, and create no output folder.
"""
import pytest

from hypervq_fairseq.errors import InputError
from hypervq_fairseq.vision.cli import main
from hypervq_fairseq.vision.vqsa.config import VQSAConfig


def _fails_at_parse(argv, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and "error: argument" in err[0] and "Traceback" not in err[0], err
    assert not out.exists()
    return err[0]


@pytest.mark.parametrize("argv, option, value, allowed", [
    (["train", "--steps", "-5"], "--steps", "-5", ">= 1"),
    (["train", "--steps", "0"], "--steps", "0", ">= 1"),
    (["train", "--batch-size", "0"], "--batch-size", "0", ">= 1"),
    (["train", "--num-codes", "0"], "--num-codes", "0", ">= 2"),
    (["train", "--embedding-dim", "0"], "--embedding-dim", "0", ">= 1"),
    (["train", "--save-every", "0"], "--save-every", "0", ">= 1"),
    (["train", "--subset", "-1"], "--subset", "-1", ">= 0"),
    (["train", "--hidden", "7"], "--hidden", "7", "even"),
    (["compare", "--dis-codes", "1"], "--dis-codes", "1", ">= 2"),
    (["prior", "--checkpoint", "c.pt", "--layers", "0"], "--layers", "0", ">= 1"),
    (["vqsa", "train", "--codes", "1"], "--codes", "1", ">= 2"),
    (["vqsa", "train", "--epochs", "0"], "--epochs", "0", ">= 1"),
    (["vqsa", "compare", "--epochs-ref", "-1"], "--epochs-ref", "-1", ">= 1"),
    (["train", "--steps", "2.5"], "--steps", "2.5", "integer"),
])
def test_counts_below_their_minimum_stop_at_parse_time(argv, option, value, allowed, tmp_path, capsys):
    line = _fails_at_parse(argv, tmp_path, capsys)
    assert option in line and value in line and allowed in line


@pytest.mark.parametrize("argv, option, value, allowed", [
    (["train", "--lr", "0"], "--lr", "0", "> 0"),
    (["train", "--lr", "nan"], "--lr", "nan", "finite"),
    (["train", "--lr", "fast"], "--lr", "fast", "number"),
    (["train", "--curvature", "-1"], "--curvature", "-1", "> 0"),
    (["train", "--clip-radius", "-0.5"], "--clip-radius", "-0.5", ">= 0"),
    (["train", "--beta", "-1"], "--beta", "-1", ">= 0"),
    (["vqsa", "train", "--p-corrupt", "1.5"], "--p-corrupt", "1.5", "<= 1"),
    (["vqsa", "train", "--lr=-1e-3"], "--lr", "-0.001", "> 0"),
    (["vqsa", "train", "--weight-decay", "-1"], "--weight-decay", "-1", ">= 0"),
])
def test_floats_out_of_range_or_not_numbers_stop_at_parse_time(argv, option, value, allowed, tmp_path, capsys):
    line = _fails_at_parse(argv, tmp_path, capsys)
    assert option in line and value in line and allowed in line


@pytest.mark.parametrize("command", [["train"], ["vqsa", "train"]])
@pytest.mark.parametrize("temp", ["(1, 2, 0.9)", "(2, 0.5, 0)", "(2, 0.5, 1.5)", "(2, 0.5)", "warm"])
def test_a_bad_temperature_schedule_stops_at_parse_time(command, temp, tmp_path, capsys):
    line = _fails_at_parse([*command, "--temp", temp], tmp_path, capsys)
    assert "--temp" in line and repr(temp) in line and ("0 < min_temp <= max_temp" in line or "three numbers" in line)


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "1", "--batch-size", "100", "--subset", "50", "--quiet"], "batch size 100 is larger"),
    (["probe", "--checkpoint", "nowhere.pt"], "nowhere.pt"),
    (["prior", "--checkpoint", "nowhere.pt", "--inception-weights", "nowhere.pth"], "nowhere.pth"),
    (["vqsa", "train", "--dim", "10", "--heads", "4"], "--dim 10 must be a multiple of --heads 4"),
    (["vqsa", "train", "--severities", "1,9"], "severities"),
    (["vqsa", "eval", "--dataset", "digits", "--imagenet-c", "nowhere"], "nowhere"),
])
def test_faults_found_after_parsing_leave_no_folder(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hypervq-vision: error:") and message in err[0], err
    assert not out.exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "probe", "--checkpoint", str(tmp_path / "nowhere.pt"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("hypervq-vision: error:")


def test_the_vqsa_config_checks_the_same_ranges_from_python():
    with pytest.raises(InputError, match="codes: 0 is out of range: must be >= 2"):
        VQSAConfig(out="x", codes=0)
    with pytest.raises(InputError, match="temp"):
        VQSAConfig(out="x", temp="(1, 2, 0.9)")
