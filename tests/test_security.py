"""A checkpoint is data: no file we load can run code, in any console script or through fairseq.

Each case is a real malicious checkpoint, made from a real one: a pickle payload, config strings
that fairseq would ``eval`` (a call, an attribute walk to ``subprocess.Popen``, an oversized
repetition), and an OmegaConf interpolation. A payload would create a marker file; every test
checks that the marker is absent *and* that the program refused the file by name (so that the
load was really reached), and a control shows that each string payload does run under ``eval``.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hypervq_fairseq.errors import CheckpointError, ConfigError
from hypervq_fairseq.safe_load import (ALLOW_PICKLE_ENV, canonical_layer_spec, load_checkpoint_file, parse_layer_spec,
                                       sanitize_config)
from helpers.runs import quiet_env, run_tool


def payload_strings(marker: Path) -> dict:
    """Config strings that create ``marker`` when evaluated, each also a valid layer list when evaluated."""
    layers = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
    return {
        "call": f"__import__('os').system('touch {marker}') and 0 or {layers}",
        "attribute_walk": (f"[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0]"
                           f"(['touch', '{marker}']).wait() * 0 or {layers}"),
        "builtins_bypass": f"(lambda: ().__class__.__mro__[-1].__subclasses__())() and [open('{marker}', 'w')] and {layers}",
    }


class Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own test fixture: trusted


def write_with_config(src, dst, key_path, value) -> Path:
    """A copy of checkpoint ``src`` with one config string replaced (``key_path`` under ``cfg``)."""
    state = _state(src)
    node = state["cfg"]
    for key in key_path[:-1]:
        node = node[key]
    node[key_path[-1]] = value
    torch.save(state, dst)
    return dst


def write_with_pickle(src, dst, marker) -> Path:
    state = _state(src)
    state.setdefault("extra_state", {})["planted"] = Payload(marker)
    torch.save(state, dst)
    return dst


# -- the parser ---------------------------------------------------------------------------------------------

def test_layer_spec_parses_fairseqs_formats_exactly_as_eval_does():
    for spec in ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2", "[(512, 10, 5)]", "2 * [(64, 3, 2)]",
                 "[(512, 10, 5), (512, 8, 4)] + [(512, 4, 2)] * 3 + [(512, 1, 1)]", "[(4, 3, 2)] * 0 + [(4, 1, 1)]"):
        layers = parse_layer_spec(spec)
        assert layers == [tuple(t) for t in eval(spec)]  # noqa: S307  (a literal of our own, to compare with)
        assert parse_layer_spec(canonical_layer_spec(layers)) == layers


@pytest.mark.parametrize("spec", [
    "__import__('os').getcwd()", "[(1, 2, 3)] + ().__class__.__base__.__subclasses__()", "[(1, 2, 3)] * 10**9",
    "[(1, 2, 3)] * 100000", "[(a, 2, 3)]", "[(1.5, 2, 3)]", "[[1, 2, 3]]", "[(1, 2, 3)] * -1", "[(1, 2, 3)][0]",
    "f'{1}'", "[(1, 2, 3)] + 'x'", "", "[(True, 2, 3)]", "lambda: 0",
])
def test_layer_spec_refuses_anything_but_int_tuples_plus_and_times(spec):
    with pytest.raises(ValueError):
        parse_layer_spec(spec)


def test_sanitize_rewrites_nested_evaluated_strings_and_refuses_interpolations():
    cfg = {"model": {"conv_feature_layers": "[(64, 10, 5)] * 2", "w2v_args": {"model": {"conv_feature_layers": "[(8,1,1)]"}}},
           "optimizer": {"adam_betas": "(0.9,0.98)"}, "criterion": {"wer_args": None}}
    assert sanitize_config(cfg, "x.pt") == ["model.conv_feature_layers", "model.w2v_args.model.conv_feature_layers",
                                            "optimizer.adam_betas"]
    assert cfg["model"]["conv_feature_layers"] == "[(64, 10, 5), (64, 10, 5)]"
    assert cfg["optimizer"]["adam_betas"] == "(0.9, 0.98)"
    with pytest.raises(ConfigError, match=r"x\.pt: config key task\.data holds an interpolation"):
        sanitize_config({"task": {"data": "${oc.env:HOME}"}}, "x.pt")
    with pytest.raises(ConfigError, match=r"optimizer\.adam_betas=.*not plain data"):
        sanitize_config({"optimizer": {"adam_betas": "__import__('os').getcwd()"}}, "x.pt")


def test_each_string_payload_is_live_under_eval(tmp_path):
    """The control: these strings do run code where fairseq evaluates them unprotected."""
    for name, text in payload_strings(tmp_path / "m").items():
        marker = tmp_path / "m"
        marker.unlink(missing_ok=True)
        layers = eval(text)  # noqa: S307  (the control: shows the payload is real)
        assert marker.exists(), name
        assert len(layers) == 7
        with pytest.raises(ValueError):
            parse_layer_spec(text)


# -- the loader ------------------------------------------------------------------------------------------------

def test_pickle_payload_is_refused_with_the_file_and_the_opt_in(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    torch.save({"model": {}, "x": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=rf"(?s)evil\.pt holds objects that are not plain data.*{ALLOW_PICKLE_ENV}=1"):
        load_checkpoint_file(tmp_path / "evil.pt")
    assert not marker.exists()
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")  # the user's explicit opt-in, for a file they trust
    load_checkpoint_file(tmp_path / "evil.pt")
    assert marker.exists()


def test_resume_ranking_never_unpickles_a_planted_checkpoint(tmp_path):
    from hypervq_fairseq.fairseq.patches import choose_resume_checkpoint

    marker = tmp_path / "ran"
    save = tmp_path / "ckpt"
    save.mkdir()
    torch.save({"optimizer_history": [{"num_updates": 5}], "model": {}}, save / "checkpoint_1_5.pt")
    torch.save({"optimizer_history": [{"num_updates": 99}], "x": Payload(marker)}, save / "checkpoint_2_99.pt")
    assert choose_resume_checkpoint(save) == save / "checkpoint_1_5.pt"  # the planted one ranks last
    assert not marker.exists()


# -- every console script, and fairseq after the import (real checkpoints, real programs) -------------------

LOAD_WITH_FAIRSEQ = """
import sys
import hypervq_fairseq
from fairseq import checkpoint_utils
checkpoint_utils.load_model_ensemble_and_task([sys.argv[1]])
"""


@pytest.fixture(scope="module")
def phone_set(tmp_path_factory):
    """A phone-labelled set (valid.tsv, valid.phn) of 2 flite sentences, for hypervq-unit-eval."""
    from hypervq_fairseq.data.alignment.synthetic import synthesize_aligned

    out = tmp_path_factory.mktemp("security_units")
    synthesize_aligned(out, voices=("slt",), per_voice=2, progress=False)
    return out


def tool_runs(ckpt: Path, work: Path, manifest: Path, phones: Path = None, finetune_data: Path = None) -> dict:
    """program -> the command that loads ``ckpt``, for each console script that opens a checkpoint."""
    bin_dir = Path(sys.executable).parent
    runs = {
        "hypervq-tokenize": [bin_dir / "hypervq-tokenize", ckpt, manifest / "valid.tsv", "--out", work / "t.tok",
                             "--no-progress"],
        "hypervq-codebook-report": [bin_dir / "hypervq-codebook-report", "--checkpoint", ckpt, "--manifest",
                                    manifest / "valid.tsv", "--out", work / "report"],
        "hypervq-unit-eval": [bin_dir / "hypervq-unit-eval", "--checkpoints", ckpt, "--data", phones, "--out",
                              work / "units"],
        "hypervq-export-hf": [bin_dir / "hypervq-export-hf", ckpt, work / "export"],
        "fairseq load_model_ensemble_and_task": [sys.executable, "-c", LOAD_WITH_FAIRSEQ, ckpt],
    }
    if finetune_data is not None:
        runs = {"hypervq-decode": [bin_dir / "hypervq-decode", ckpt, finetune_data, "--subsets", "valid", "--out",
                                   work / "decode"],
                "hypervq-export-hf": runs["hypervq-export-hf"],
                "fairseq load_model_ensemble_and_task": runs["fairseq load_model_ensemble_and_task"]}
    return runs


def assert_refused(cmd, marker: Path, expect: str, cwd: Path) -> None:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=quiet_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert not marker.exists(), f"{cmd[0]}: the payload ran\n{out[-2000:]}"
    assert proc.returncode != 0, f"{cmd[0]}: exit 0 on a malicious checkpoint\n{out[-2000:]}"
    assert expect in out, f"{cmd[0]}: expected {expect!r} in its output\n{out[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pickle", "call", "attribute_walk", "builtins_bypass", "interpolation"])
def test_no_console_script_runs_a_pretraining_checkpoints_code(kind, pretrained_checkpoint, tiny_speech_manifest,
                                                              phone_set, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "checkpoint_evil.pt"
    if kind == "pickle":
        write_with_pickle(pretrained_checkpoint, evil, marker)
        expect = "holds objects that are not plain data"
    elif kind == "interpolation":
        write_with_config(pretrained_checkpoint, evil, ("model", "conv_feature_layers"), "${oc.env:HOME}")
        expect = "config key model.conv_feature_layers holds an interpolation"
    else:
        write_with_config(pretrained_checkpoint, evil, ("model", "conv_feature_layers"), payload_strings(marker)[kind])
        expect = "config key model.conv_feature_layers="
    for name, cmd in tool_runs(evil, tmp_path, tiny_speech_manifest, phone_set).items():
        assert_refused(cmd, marker, expect, tmp_path)


@pytest.mark.slow
def test_a_ctc_checkpoints_nested_pretraining_config_is_checked_too(ctc_checkpoint, finetune_manifest, tmp_path):
    marker = tmp_path / "ran"
    evil = write_with_config(ctc_checkpoint, tmp_path / "checkpoint_evil.pt",
                             ("model", "w2v_args", "model", "conv_feature_layers"), payload_strings(marker)["call"])
    for name, cmd in tool_runs(evil, tmp_path, finetune_manifest, finetune_data=finetune_manifest).items():
        assert_refused(cmd, marker, "config key model.w2v_args.model.conv_feature_layers=", tmp_path)


@pytest.mark.slow
def test_an_honest_checkpoint_still_loads_through_fairseq_with_canonical_layers(pretrained_checkpoint, tmp_path):
    code = LOAD_WITH_FAIRSEQ.replace("checkpoint_utils.load_model_ensemble_and_task([sys.argv[1]])",
                                     "models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([sys.argv[1]])\n"
                                     "print('LAYERS', cfg.model.conv_feature_layers)")
    proc = subprocess.run([sys.executable, "-c", code, str(pretrained_checkpoint)], capture_output=True, text=True,
                          env=quiet_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("LAYERS"))
    stored = _state(pretrained_checkpoint)["cfg"]["model"]["conv_feature_layers"]
    assert line.split(" ", 1)[1] == canonical_layer_spec(parse_layer_spec(stored))   # fairseq saw the canonical text


@pytest.mark.slow
def test_vision_checkpoints_load_as_data(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "checkpoint.pt"
    torch.save({"kind": "vqvae", "model": {}, "config": {}, "x": Payload(marker)}, evil)
    proc = run_tool("hypervq-vision", ["codebook", "--checkpoint", evil, "--out", tmp_path / "grid"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert not marker.exists() and proc.returncode != 0, out[-2000:]
    assert "holds objects that are not plain data" in out and "Traceback" not in out, out[-2000:]
