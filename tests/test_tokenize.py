"""hypervq-tokenize and hypervq-codebook-report on a real (tiny) fairseq pretraining checkpoint.

The reference for every id is the model's own ``quantize()`` on one unpadded utterance; the
reference for combined ids is fairseq's ``GumbelVectorQuantizer.to_codebook_index``.
"""
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from hypervq_fairseq.data.manifest import read_manifest
from hypervq_fairseq.errors import AudioInputError, CheckpointError
from hypervq_fairseq.eval.tokens import TokenizeError, dump_tokens, read_token_file
from hypervq_fairseq.fairseq.checkpoints import NoQuantizerError, PretrainedModel, load_pretrained
from hypervq_fairseq.fairseq.encode import encode
from hypervq_fairseq.tools import codebook_report, tokenize


@pytest.fixture
def tm(pretrained_checkpoint):
    return load_pretrained(pretrained_checkpoint)


def manifest_rows(manifest):
    root, rows = read_manifest(manifest)
    return root, [r for r, _ in rows]


def test_tokens_equal_quantize_on_each_utterance(pretrained_checkpoint, tiny_speech_manifest, tm, tmp_path):
    out = tmp_path / "train.tok"
    summary = dump_tokens(tm, tiny_speech_manifest / "train.tsv", out, max_tokens=200_000, batch_size=8, progress=False)
    root, keys = manifest_rows(tiny_speech_manifest / "train.tsv")
    assert summary["finished"] and summary["encoded"] == len(keys)
    lines = out.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == keys  # manifest order once finished

    ids = read_token_file(out)
    model = tm.model
    distinct = set()
    for key in keys:
        wav, sr = sf.read(os.path.join(root, key), dtype="float32")
        with torch.no_grad():
            _, ref = model.quantize(torch.from_numpy(wav)[None])  # one utterance, no padding
        ref = ref[0]
        frames = int(model._get_feat_extract_output_lengths(torch.tensor(len(wav))))
        assert ids[key].shape == (frames, tm.groups) == ref.shape
        assert torch.equal(ids[key], ref), key
        distinct.update(map(tuple, ref.tolist()))
    assert len(distinct) > 1  # the check above is not trivially true
    meta = json.loads((tmp_path / "train.tok.json").read_text())
    assert (meta["groups"], meta["num_vars"], meta["combine"]) == (tm.groups, tm.num_vars, False)
    assert meta["frame_rate"] == 50.0 and meta["complete"] and meta["utterances"] == len(keys)
    assert meta["frames"] == sum(len(v) for v in ids.values())
    assert not (tmp_path / "train.tok.partial").exists()


def test_combined_ids_are_fairseqs_codebook_index(pretrained_checkpoint, tiny_speech_manifest, tm, tmp_path):
    from fairseq.modules.gumbel_vector_quantizer import GumbelVectorQuantizer

    per_group = tmp_path / "g.tok"
    combined = tmp_path / "c.tok"
    manifest = tiny_speech_manifest / "valid.tsv"
    dump_tokens(tm, manifest, per_group, progress=False)
    assert tokenize.main([str(pretrained_checkpoint), str(manifest), "--out", str(combined), "--combine",
                          "--no-progress"]) == 0
    groups = read_token_file(per_group)
    assert {k: v.tolist() for k, v in read_token_file(combined).items()} == {k: v.tolist() for k, v in groups.items()}
    fake = SimpleNamespace(groups=tm.groups, num_vars=tm.num_vars)
    for line in combined.read_text().splitlines():
        key, body = line.split("\t")
        ids = torch.tensor([int(t) for t in body.split()])
        assert torch.equal(ids, GumbelVectorQuantizer.to_codebook_index(fake, groups[key]))
        assert int(ids.max()) < tm.num_vars ** tm.groups


def test_resume_after_a_crash_and_a_cut_line(pretrained_checkpoint, tiny_speech_manifest, tm, tmp_path):
    root, keys = manifest_rows(tiny_speech_manifest / "train.tsv")
    reference = tmp_path / "reference.tok"
    dump_tokens(tm, tiny_speech_manifest / "train.tsv", reference, progress=False)

    # a manifest over links to the audio, so that one file can vanish and come back
    links = tmp_path / "audio"
    for key in keys:
        (links / key).parent.mkdir(parents=True, exist_ok=True)
        (links / key).symlink_to(Path(root) / key)
    manifest = tmp_path / "train.tsv"
    manifest.write_text("\n".join([str(links)] + (tiny_speech_manifest / "train.tsv").read_text().splitlines()[1:]) + "\n")

    # 1. a run stops after 10 utterances (--limit): nothing at the final path, readers refuse it
    out, partial = tmp_path / "train.tok", tmp_path / "train.tok.partial"
    s = dump_tokens(tm, manifest, out, limit=10, batch_size=4, progress=False)
    assert (s["encoded"], s["finished"]) == (10, False)
    assert len(partial.read_text().splitlines()) == 10 and not out.exists()
    with pytest.raises(TokenizeError, match=rf"unfinished \(10 of {len(keys)} utterances.*rerun"):
        read_token_file(out)

    # 2. a run crashes on an unreadable file; what it wrote before is kept, line by line
    shortest = min(keys, key=lambda k: sf.info(str(links / k)).frames)  # encoded last (longest first)
    (links / shortest).unlink()
    with pytest.raises(AudioInputError, match="missing file"):
        dump_tokens(tm, manifest, out, batch_size=4, progress=False)
    written = partial.read_text().splitlines()
    assert 10 < len(written) < len(keys) and not any(line.startswith(shortest + "\t") for line in written)
    (links / shortest).symlink_to(Path(root) / shortest)

    # 3. the process died while writing a line: its half stays without a newline
    ref_lines = {line.split("\t")[0]: line for line in reference.read_text().splitlines()}
    pending = next(k for k in keys if k not in {line.split("\t")[0] for line in written})
    with open(partial, "a") as f:
        f.write(ref_lines[pending][: len(ref_lines[pending]) // 2])

    # 4. resuming redoes the cut line, skips the finished ones, and ends with the reference file
    s = dump_tokens(tm, manifest, out, batch_size=4, progress=False)
    assert s["finished"] and s["skipped"] == len(written) and s["encoded"] == len(keys) - len(written)
    assert out.read_text() == reference.read_text() and not partial.exists()
    s = dump_tokens(tm, manifest, out, progress=False)  # nothing left
    assert (s["encoded"], s["skipped"]) == (0, len(keys))

    # resuming with other settings, or over a foreign file, is refused
    with pytest.raises(TokenizeError, match="combine"):
        dump_tokens(tm, manifest, out, combine=True, progress=False)
    foreign = tmp_path / "foreign.tok"
    foreign.write_text("x\t1\n")
    with pytest.raises(TokenizeError, match="not a token file"):
        dump_tokens(tm, manifest, foreign, progress=False)

    # a resume after the manifest's root or content changed (same path) is refused: never one file of two corpora
    half = tmp_path / "half.tok"
    dump_tokens(tm, manifest, half, limit=5, progress=False)
    manifest.write_text("\n".join([root] + (tiny_speech_manifest / "train.tsv").read_text().splitlines()[1:]) + "\n")
    with pytest.raises(TokenizeError, match="cannot resume .*manifest_sha256"):
        dump_tokens(tm, manifest, half, progress=False)
    # ... and so is one with other weights of the model (the quantizer's alone are not enough)
    other = load_pretrained(pretrained_checkpoint)
    with torch.no_grad():
        other.model.feature_extractor.conv_layers[0][0].weight.mul_(1.01)
    dump_tokens(tm, manifest, tmp_path / "half2.tok", limit=5, progress=False)
    with pytest.raises(TokenizeError, match="cannot resume .*model_fingerprint"):
        dump_tokens(other, manifest, tmp_path / "half2.tok", progress=False)


def test_readers_refuse_partial_and_damaged_token_files(tm, tiny_speech_manifest, tmp_path, capsys):
    """A cut, emptied or foreign token file is refused by name, with how to finish it; exit 1, no traceback."""
    out = tmp_path / "valid.tok"
    dump_tokens(tm, tiny_speech_manifest / "valid.tsv", out, progress=False)
    good = out.read_text()
    report = ["--tokens", str(out), "--out", str(tmp_path / "report")]
    cases = {
        "cut": (good.splitlines(True)[0], f"holds 1 utterances but its sidecar says {len(good.splitlines())}"),
        "empty": ("", f"holds 0 utterances but its sidecar says {len(good.splitlines())}"),
        "garbage": ("\x00\x01\x02 not ids\n", "expected 'path<TAB>ids'"),
    }
    for name, (content, message) in cases.items():
        out.write_text(content)
        with pytest.raises(TokenizeError, match=re.escape(message)):
            read_token_file(out)
        assert codebook_report.main(report) == 1, name
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    out.unlink()
    out.mkdir()
    assert codebook_report.main(report) == 1 and "is a folder" in capsys.readouterr().err
    out.rmdir()
    out.write_text(good)
    meta = json.loads(out.with_name("valid.tok.json").read_text())
    del meta["num_vars"]
    out.with_name("valid.tok.json").write_text(json.dumps(meta))
    assert codebook_report.main(report) == 1 and "lacks num_vars" in capsys.readouterr().err
    assert not (tmp_path / "report" / "report.json").exists()


def test_checkpoint_without_quantizer_is_refused_clearly(pretrained_checkpoint, tiny_speech_manifest, tmp_path, capsys):
    state = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)
    tm = load_pretrained(pretrained_checkpoint)
    tm.model.remove_pretraining_modules()
    state["model"] = tm.model.state_dict()
    stripped = tmp_path / "no_quantizer.pt"
    torch.save(state, stripped)
    with pytest.raises(NoQuantizerError, match="no quantizer weights"):
        load_pretrained(stripped)
    rc = tokenize.main([str(stripped), str(tiny_speech_manifest / "valid.tsv"), "--out", str(tmp_path / "x.tok")])
    assert rc == 1 and "no quantizer" in capsys.readouterr().err
    assert not (tmp_path / "x.tok").exists()

    # a checkpoint cut short (killed copy) or a folder: one line naming it, for every tool that loads one
    cut = tmp_path / "cut.pt"
    cut.write_bytes(pretrained_checkpoint.read_bytes()[:50_000])
    with pytest.raises(CheckpointError, match="incomplete or damaged"):
        load_pretrained(cut)
    for bad in (cut, tmp_path):
        rc = tokenize.main([str(bad), str(tiny_speech_manifest / "valid.tsv"), "--out", str(tmp_path / "y.tok")])
        err = capsys.readouterr().err
        assert rc == 1 and str(bad) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        rc = codebook_report.main(["--checkpoint", str(bad), "--manifest", str(tiny_speech_manifest / "valid.tsv"),
                                   "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert rc == 1 and str(bad) in err and "Traceback" not in err, err


@pytest.mark.slow
def test_codebook_report_counts_and_plots(pretrained_checkpoint, tiny_speech_manifest, tm, tmp_path, capsys):
    out = tmp_path / "train.tok"
    dump_tokens(tm, tiny_speech_manifest / "train.tsv", out, combine=True, progress=False)
    assert codebook_report.main(["--tokens", str(out), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())

    # independent count from the file: combined ids split by hand
    ids = np.array([int(t) for line in out.read_text().splitlines() for t in line.split("\t")[1].split()])
    for g, row in enumerate(report["rows"][: tm.groups]):
        per_code = np.bincount((ids // tm.num_vars ** (tm.groups - 1 - g)) % tm.num_vars, minlength=tm.num_vars)
        p = per_code[per_code > 0] / per_code.sum()
        assert row["frames"] == len(ids)
        assert row["used"] == int((per_code > 0).sum()) and row["dead"] == tm.num_vars - row["used"]
        assert row["perplexity"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), abs=1e-3)
        assert 1.0 < row["perplexity"] <= tm.num_vars
        png = (tmp_path / "report" / f"usage_g{g}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert report["rows"][-1]["used"] == len(np.unique(ids))
    assert "perplexity" in capsys.readouterr().out


@pytest.mark.slow
def test_codebook_report_straight_from_checkpoint(pretrained_checkpoint, tiny_speech_manifest, tmp_path):
    tok = tmp_path / "valid.tok"
    dump_tokens(load_pretrained(pretrained_checkpoint), tiny_speech_manifest / "valid.tsv", tok, progress=False)
    a, b = tmp_path / "a", tmp_path / "b"
    assert codebook_report.main(["--tokens", str(tok), "--out", str(a)]) == 0
    assert codebook_report.main(["--checkpoint", str(pretrained_checkpoint), "--manifest",
                                 str(tiny_speech_manifest / "valid.tsv"), "--out", str(b), "--no-progress"]) == 0
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert ra["counts"] == rb["counts"] and ra["rows"] == rb["rows"]
    shutil.rmtree(a)


@pytest.mark.parametrize("mode", ["default", "layer_norm"])
def test_batched_encoding_is_exact_for_both_extractor_modes(mode, tiny_speech_manifest):
    """Padding must not change ids: GroupNorm over time (default) and per-frame LayerNorm (layer_norm)."""
    import torch.nn.functional as F

    from hypervq_fairseq.fairseq.models import HyperVQWav2Vec2Config, HyperVQWav2Vec2Model

    torch.manual_seed(0)
    cfg = HyperVQWav2Vec2Config(extractor_mode=mode, conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
                                encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                encoder_attention_heads=2, conv_pos=8, conv_pos_groups=4, final_dim=16,
                                latent_vars=16, latent_groups=2, quantize_targets=True)
    model = HyperVQWav2Vec2Model(cfg).eval()
    tm = PretrainedModel(model=model, groups=2, num_vars=16, frame_stride=320, normalize=True,
                         fingerprint="test", model_name="hypervq_wav2vec2", path="in memory")
    root, keys = manifest_rows(tiny_speech_manifest / "valid.tsv")
    waves = [sf.read(os.path.join(root, k), dtype="float32")[0] for k in keys]
    assert len({len(w) for w in waves}) == len(waves)  # really padded
    batched = encode(tm, waves)
    for wav, ids in zip(waves, batched):
        x = torch.from_numpy(wav)
        with torch.no_grad():
            _, ref = model.quantize(F.layer_norm(x, x.shape)[None])
        assert torch.equal(ids, ref[0])


# -- a real hypervq-tokenize killed with SIGKILL -----------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_run_leaves_a_refused_partial_that_the_same_command_finishes(pretrained_checkpoint,
                                                                                 tiny_speech_manifest, tmp_path):
    import signal
    import subprocess
    import sys

    from helpers.runs import BIN, quiet_env, run_tool

    # ~300 utterances (hard links to the tiny corpus): a few seconds of encoding to kill in the middle of
    root, keys = manifest_rows(tiny_speech_manifest / "train.tsv")
    _, rows = read_manifest(tiny_speech_manifest / "train.tsv")
    audio = tmp_path / "audio"
    audio.mkdir()
    lines = [str(audio)]
    for i in range(300):
        rel, frames = rows[i % len(rows)]
        os.link(os.path.join(root, rel), audio / f"{i:03d}.flac")
        lines.append(f"{i:03d}.flac\t{frames}")
    manifest = tmp_path / "many.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    reference = tmp_path / "reference.tok"
    check = run_tool("hypervq-tokenize", [pretrained_checkpoint, manifest, "--out", reference, "--no-progress"], tmp_path)
    assert check.returncode == 0, check.stderr

    out = tmp_path / "tokens" / "train.tok"
    cmd = [os.path.join(BIN, "hypervq-tokenize"), str(pretrained_checkpoint), str(manifest), "--out", str(out),
           "--batch-size", "4"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=quiet_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    seen = b""
    while not re.search(rb"tokenize: +\d+%.*? ([2-9]\d|1\d\d)/300", seen):   # at least 20 utterances done
        chunk = proc.stderr.read1(4096)
        assert chunk, f"hypervq-tokenize ended before it could be killed: {seen[-800:]!r}"
        seen += chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # nothing at the final path; the sidecar says unfinished; the partial file holds whole lines
    partial = out.with_name("train.tok.partial")
    assert not out.exists() and partial.exists()
    meta = json.loads(out.with_name("train.tok.json").read_text())
    assert meta["complete"] is False and meta["utterances"] == 300
    done = partial.read_text().count("\n")
    assert 20 <= done < 300

    # every reader refuses it and says how to finish it
    report = run_tool("hypervq-codebook-report", ["--tokens", out, "--out", tmp_path / "report"], tmp_path)
    assert report.returncode == 1 and "Traceback" not in report.stderr
    assert "unfinished" in report.stderr and "rerun the hypervq-tokenize command that wrote it" in report.stderr
    assert not (tmp_path / "report" / "report.json").exists()

    # the same command again finishes the file: byte for byte what an uninterrupted run wrote
    again = run_tool("hypervq-tokenize", cmd[1:], tmp_path)
    assert again.returncode == 0, again.stderr
    assert re.search(rf"\d+ utterances encoded \(\d+ frames\), {done}|already there; done", again.stdout), again.stdout
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists() and json.loads(out.with_name("train.tok.json").read_text())["complete"] is True
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.tok", "train.tok.json"]   # no debris
    report = run_tool("hypervq-codebook-report", ["--tokens", out, "--out", tmp_path / "report"], tmp_path)
    assert report.returncode == 0, report.stderr


def test_audio_whose_features_overflow_is_named_not_coded(pretrained_checkpoint, tiny_speech_manifest, tm, tmp_path,
                                                          capsys):
    """Finite samples far outside [-1, 1] make NaN features: the file is named, nothing is coded as 0."""
    root, keys = manifest_rows(tiny_speech_manifest / "valid.tsv")
    wav, sr = sf.read(os.path.join(root, keys[0]), dtype="float32")
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, key in enumerate(keys[1:]):
        os.link(os.path.join(root, key), audio / f"good{i}.flac")
    sf.write(audio / "loud.wav", wav * 3e38, sr, subtype="FLOAT")       # finite float32 samples
    lines = [str(audio)] + [f"good{i}.flac\t{sf.info(str(audio / f'good{i}.flac')).frames}" for i in range(len(keys) - 1)]
    lines.append(f"loud.wav\t{len(wav)}")
    manifest = tmp_path / "loud.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "loud.tok"
    assert tokenize.main([str(pretrained_checkpoint), str(manifest), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("hypervq-tokenize: error: ") and "loud.wav: the model's features of this file hold NaN" in last
    assert "Traceback" not in err and not out.exists()


def test_an_out_folder_that_cannot_be_written_fails_first(tmp_path, capsys):
    """Checked before the checkpoint is loaded or any audio read (both are missing here)."""
    (tmp_path / "file").write_text("x")
    rc = tokenize.main([str(tmp_path / "no.pt"), str(tmp_path / "no.tsv"), "--out", str(tmp_path / "file" / "t.tok")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--out folder" in err and "is a file, not a folder" in err and "no.pt" not in err


@pytest.mark.parametrize("case", ["stale_count", "one_sample", "hundred_samples"])
def test_a_stale_frame_count_or_a_file_too_short_for_one_frame_is_named(case, pretrained_checkpoint,
                                                                        tiny_speech_manifest, tmp_path, capsys):
    root, keys = manifest_rows(tiny_speech_manifest / "valid.tsv")
    wav, sr = sf.read(os.path.join(root, keys[0]), dtype="float32")
    audio = tmp_path / "audio"
    audio.mkdir()
    if case == "stale_count":
        sf.write(audio / "x.flac", wav, sr)
        listed = len(wav) - 822                   # the manifest was written before the file changed
    else:
        n = 1 if case == "one_sample" else 100
        sf.write(audio / "x.flac", wav[:n], sr)
        listed = n
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"{audio}\nx.flac\t{listed}\n")
    out = tmp_path / "m.tok"
    assert tokenize.main([str(pretrained_checkpoint), str(manifest), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    expected = ("samples decoded, the manifest lists" if case == "stale_count"
                else "shorter than the model's receptive field of 400 samples")
    assert "x.flac" in err and expected in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_second_run_on_the_same_out_is_refused_naming_the_first(tm, tiny_speech_manifest, tmp_path):
    import fcntl

    from hypervq_fairseq.errors import OutputError
    from hypervq_fairseq.eval.tokens import lock_of

    out = tmp_path / "valid.tok"
    with open(lock_of(out), "w") as held:         # what a running hypervq-tokenize holds
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match=r"--out .*valid\.tok is being written by process 4242"):
            dump_tokens(tm, tiny_speech_manifest / "valid.tsv", out, progress=False)
        assert not out.exists() and not (tmp_path / "valid.tok.partial").exists()
    s = dump_tokens(tm, tiny_speech_manifest / "valid.tsv", out, progress=False)   # released: it runs
    assert s["finished"]
