"""hypervq-unit-eval end to end on a real tiny checkpoint and flite speech with exact phones; its refusals."""
import json
import shutil

import numpy as np
import pytest
import torch

from hypervq_fairseq.data.alignment import AlignmentError, read_phn, synthesize_aligned
from hypervq_fairseq.data.audio import read_audio
from hypervq_fairseq.data.manifest import read_manifest
from hypervq_fairseq.errors import InputError
from hypervq_fairseq.eval.unit_eval import FrameCountError, evaluate_units, format_table
from hypervq_fairseq.fairseq.checkpoints import NoQuantizerError

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs the flite program")


@pytest.fixture(scope="module")
def flite_set(tmp_path_factory):
    """3 flite voices x 3 sentences, with flite's phones (valid.tsv, valid.phn)."""
    out = tmp_path_factory.mktemp("flite_units")
    synthesize_aligned(out, per_voice=3, progress=False)
    return out


def edited_checkpoint(src, dst, edit):
    state = torch.load(src, map_location="cpu", weights_only=False)
    edit(state)
    torch.save(state, dst)
    return dst


@pytest.mark.slow
def test_scores_baselines_and_outputs_on_the_same_frames(pretrained_checkpoint, flite_set, tmp_path):
    out = tmp_path / "units"
    results = evaluate_units([pretrained_checkpoint], flite_set, names=["tiny"], kmeans_k=20, out=out, progress=False)
    systems = results["systems"]
    used = systems["tiny"]["codes_used"]
    assert set(systems) == {"tiny", "random_tiny", f"kmeans_layer1_{used}_tiny", "kmeans_layer1_20_tiny",
                            f"kmeans_mfcc_{used}", "kmeans_mfcc_20"}
    d = results["data"]
    assert d["utterances"] == 9 and d["speakers"] == ["9101", "9102", "9103"] and d["frame_rate"] == 50.0
    assert d["frames"]["total"] == d["frames"]["phone"] + d["frames"]["silence"] + d["frames"]["uncovered"]
    assert d["frames"]["silence"] > 0 and d["frames"]["uncovered"] == 0  # flite's segments cover its audio
    for name, s in systems.items():
        assert 0 <= s["pnmi"] <= 1 and 0 < s["phone_purity"] <= 1 and 0 < s["cluster_purity"] <= 1, name
        assert s["bitrate_bps"] == pytest.approx(50 * s["entropy_bits"]) and s["codes_used"] <= s["codes_available"]
        assert 0 <= s["abx_within"] <= 1 and 0 <= s["abx_across"] <= 1, name  # three speakers: both exist
    tiny, floor = systems["tiny"], systems["random_tiny"]
    assert tiny["groups"] == 2 and len(tiny["per_group"]) == 2 and tiny["codes_available"] == 32 ** 2
    # the floor has the quantizer's code distribution exactly, and only loses the link to the audio
    assert (floor["codes_used"], floor["entropy_bits"]) == (tiny["codes_used"], tiny["entropy_bits"])
    assert tiny["random_floor_pnmi"] < tiny["pnmi"] or tiny["flags"]
    assert tiny["pnmi_above_floor"] == pytest.approx(tiny["pnmi"] - tiny["random_floor_pnmi"])
    # matched K defaults to the quantizer's own count: nothing merged for it, the K=20 k-means unchanged too
    assert results["settings"]["matched_k"] == used and tiny["pnmi_matched"] == pytest.approx(tiny["pnmi"])
    assert systems["kmeans_layer1_20_tiny"]["pnmi_matched"] == pytest.approx(systems["kmeans_layer1_20_tiny"]["pnmi"])
    # a fixed, smaller K merges codes: PNMI can only drop, and the floor with it
    small = evaluate_units([pretrained_checkpoint], flite_set, names=["tiny"], progress=False, kmeans_baselines=False,
                           abx=False, matched_k=5)["systems"]["tiny"]
    assert small["matched_k"] == 5 and small["matched_k_reached"]
    assert small["pnmi_matched"] <= tiny["pnmi"] + 1e-12 and small["random_floor_pnmi_matched"] <= tiny["random_floor_pnmi"] + 1e-12

    # frames.tsv: one row per phone frame; the quantizer's column is the model's own ids, combined
    lines = (out / "frames.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["utterance", "frame", "phone", *systems]
    assert len(lines) - 1 == d["frames"]["phone"]
    from hypervq_fairseq.fairseq.checkpoints import load_pretrained
    from hypervq_fairseq.fairseq.encode import encode

    root, rows = read_manifest(flite_set / "valid.tsv")
    key = rows[0][0]
    pm = load_pretrained(pretrained_checkpoint)
    ids = encode(pm, [read_audio(f"{root}/{key}")])[0]
    combined = (ids[:, 0] * 32 + ids[:, 1]).tolist()
    mine = [(int(r.split("\t")[1]), r.split("\t")[2], int(r.split("\t")[3])) for r in lines[1:] if r.startswith(key)]
    assert mine and all(code == combined[t] for t, _, code in mine)
    assert {p for _, p, _ in mine} <= {s.phone for s in read_phn(flite_set / "valid.phn")[key]}

    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "results.md").read_text().strip() == format_table(results)
    for name in systems:
        assert (out / f"cooccurrence_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # seeded: the same call gives the same numbers
    again = evaluate_units([pretrained_checkpoint], flite_set, names=["tiny"], kmeans_k=20, progress=False)
    assert again["systems"] == systems
    # without the k-means fits: the same quantizer and floor numbers, nothing else
    quick = evaluate_units([pretrained_checkpoint], flite_set, names=["tiny"], progress=False, kmeans_baselines=False)
    assert quick["systems"] == {n: systems[n] for n in ("tiny", "random_tiny")}


@pytest.mark.slow
def test_a_manifest_without_alignment_is_refused_in_one_line(tiny_speech_manifest, pretrained_checkpoint, tmp_path):
    from helpers.runs import run_tool

    shutil.copy(tiny_speech_manifest / "valid.tsv", tmp_path / "valid.tsv")
    done = run_tool("hypervq-unit-eval", ["--checkpoints", pretrained_checkpoint, "--data", tmp_path, "--out",
                                          tmp_path / "out"], cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"hypervq-unit-eval: error: {tmp_path / 'valid.tsv'} has no phone alignment (valid.phn not found): run "
        f"hypervq-align {tmp_path} --splits valid")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_without_quantizer_is_refused(pretrained_checkpoint, flite_set, tmp_path):
    def strip(state):
        state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("quantizer.")}
    stripped = edited_checkpoint(pretrained_checkpoint, tmp_path / "stripped.pt", strip)
    with pytest.raises(NoQuantizerError, match="has no quantizer weights"):
        evaluate_units([stripped], flite_set, progress=False)


def test_checkpoints_whose_frames_disagree_are_refused(pretrained_checkpoint, flite_set, tmp_path):
    # same weights, last conv with stride 1 instead of 2: 10 ms frames, twice as many as the original's
    def restride(state):
        state["cfg"]["model"]["conv_feature_layers"] = "[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] + [(64, 2, 1)]"
    other = edited_checkpoint(pretrained_checkpoint, tmp_path / "stride.pt", restride)
    with pytest.raises(FrameCountError, match="frame audio differently"):
        evaluate_units([pretrained_checkpoint, other], flite_set, names=["a", "b"], progress=False)


def test_an_alignment_that_does_not_fit_the_audio_or_names_is_refused(pretrained_checkpoint, flite_set, tmp_path):
    for name in ("valid.tsv", "valid.phn"):
        shutil.copy(flite_set / name, tmp_path / name)
    with open(tmp_path / "valid.phn", "a") as f:  # no sidecar here: only the times can tell
        key = read_manifest(tmp_path / "valid.tsv")[1][0][0]
        f.write(f"{key}\t50.0\t60.0\tAH\n")
    with pytest.raises(AlignmentError, match="the alignment is for other audio"):
        evaluate_units([pretrained_checkpoint], tmp_path, progress=False)
    with pytest.raises(InputError, match="2 names for 1 checkpoints"):
        evaluate_units([pretrained_checkpoint], flite_set, names=["a", "b"], progress=False)
    with pytest.raises(InputError, match="name the baselines"):
        evaluate_units([pretrained_checkpoint], flite_set, names=["random_x"], progress=False)


@pytest.mark.parametrize("scale", [0.3, 0.45])
def test_alignments_covering_a_fraction_of_the_audio_are_refused(flite_set, tmp_path, scale):
    """Times scaled down leave most frames unlabelled, and PNMI would be scored on another subset."""
    from hypervq_fairseq.eval.unit_eval import load_aligned

    shutil.copy(flite_set / "valid.tsv", tmp_path / "valid.tsv")
    lines = []
    for line in (flite_set / "valid.phn").read_text().splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        key, start, end, phone = line.split("\t")
        lines.append(f"{key}\t{float(start) * scale:.4f}\t{float(end) * scale:.4f}\t{phone}")
    (tmp_path / "valid.phn").write_text("\n".join(lines) + "\n")
    with pytest.raises(AlignmentError, match=rf"valid\.phn: the segments span {round(100 * scale)}% of the aligned audio"):
        load_aligned(tmp_path)
    assert load_aligned(flite_set).rows    # the real alignment passes


def test_changed_audio_makes_the_recorded_alignment_stale(flite_set, tmp_path):
    from hypervq_fairseq.eval.unit_eval import load_aligned

    work = tmp_path / "set"
    shutil.copytree(flite_set, work)
    manifest = (work / "valid.tsv").read_text().replace(str(flite_set), str(work), 1)
    (work / "valid.tsv").write_text(manifest)
    assert load_aligned(work).rows
    root, rows = read_manifest(work / "valid.tsv")
    audio = np.asarray(read_audio(f"{root}/{rows[0][0]}"))
    import soundfile as sf

    sf.write(f"{root}/{rows[0][0]}", audio[::-1], 16000, format="FLAC", subtype="PCM_16")
    with pytest.raises(AlignmentError, match="changed since valid.phn was written"):
        load_aligned(work)
