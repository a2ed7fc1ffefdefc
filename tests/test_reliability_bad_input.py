"""Bad input reaches the user as one clear error naming the file (or config key) and the reason.

Each case is built from a real utterance of the tiny corpus, damaged in one way, and fed to the
real task ``hypervq_audio_pretraining`` (start-up checks in ``load_dataset``, read-time checks in
the dataset) or, for configs, to ``build_model``. One case of each kind also goes through
``fairseq-hydra-train`` to show what the user reads there: our message, not a fairseq assert.
"""
import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from hypervq_fairseq.errors import AudioInputError, ConfigError
from hypervq_fairseq.fairseq.config_checks import check_model_config, check_precision
from hypervq_fairseq.fairseq.config_checks import check_training_numbers
from helpers.runs import run, train_command
from hypervq_fairseq.fairseq.tasks import CheckedFileAudioDataset, HyperVQAudioPretrainingConfig, HyperVQAudioPretrainingTask

COMMON = {"tpu": False, "seed": 1, "fp16": False, "fp16_no_flatten_grads": False, "memory_efficient_fp16": False}


def make_task(data, **overrides):
    """The task as fairseq builds it: its config inside a root that resolves ``common.*`` links."""
    cfg = OmegaConf.structured(HyperVQAudioPretrainingConfig(data=str(data), min_sample_size=0, **overrides))
    root = OmegaConf.create({"common": COMMON, "task": cfg})
    return HyperVQAudioPretrainingTask.setup_task(root.task)


def good_files(manifest_dir, n=3):
    with open(os.path.join(manifest_dir, "train.tsv")) as f:
        root = f.readline().strip()
        return root, [line.rstrip("\n").split("\t") for line in f][:n]


@pytest.fixture
def corpus(tmp_path, tiny_speech_manifest):
    """A folder with three good utterances; ``add(name, writer)`` adds a file and a manifest line."""
    root, rows = good_files(tiny_speech_manifest)
    audio = tmp_path / "audio"
    audio.mkdir()
    lines = []
    for i, (rel, frames) in enumerate(rows):
        shutil.copy(os.path.join(root, rel), audio / f"good{i}.flac")
        lines.append(f"good{i}.flac\t{frames}")
    source = os.path.join(root, rows[0][0])

    class Corpus:
        data = tmp_path / "manifest"
        wav, rate = sf.read(source, dtype="float32")
        raw = open(source, "rb").read()

        def write(self, extra_lines=(), root_line=None):
            self.data.mkdir(exist_ok=True)
            body = [root_line or str(audio)] + lines + list(extra_lines)
            (self.data / "train.tsv").write_text("\n".join(body) + "\n")
            return self.data

        def add(self, name, frames, make):
            make(audio / name)
            return self.write([f"{name}\t{frames}"])

    return Corpus()


# -- start-up checks (task.load_dataset) ---------------------------------------------------------

def _write_bytes(data):
    return lambda path: path.write_bytes(data)


CASES = {
    # name: (frames in the manifest, writer, expected reason)
    "garbage": (lambda c: len(c.wav), lambda c: _write_bytes(os.urandom(5000)), "unreadable"),
    "zero_bytes": (lambda c: 0, lambda c: _write_bytes(b""), "empty file (0 bytes)"),
    "zero_frames": (lambda c: 0, lambda c: (lambda p: sf.write(p, np.zeros(0, "float32"), 16000, format="WAV")),
                    "empty: no audio frames"),
    "rate8k": (lambda c: len(c.wav) // 2, lambda c: (lambda p: sf.write(p, c.wav[::2], 8000, format="FLAC")),
               "sample rate 8000 Hz, expected 16000 Hz"),
    "stereo": (lambda c: len(c.wav), lambda c: (lambda p: sf.write(p, np.stack([c.wav, c.wav], 1), 16000, format="FLAC")),
               "2 channels, expected mono"),
    "truncated_wav": (lambda c: len(c.wav), lambda c: (lambda p: _truncated_wav(p, c.wav)),
                      "but the manifest says"),
}


def _truncated_wav(path, wav):
    sf.write(path, wav, 16000, format="WAV")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_fails_at_startup_naming_file_and_reason(corpus, case):
    frames, writer, reason = CASES[case]
    name = f"{case}.{'wav' if 'wav' in case or case == 'zero_frames' else 'flac'}"
    data = corpus.add(name, frames(corpus), writer(corpus))
    task = make_task(data)
    with pytest.raises(AudioInputError) as err:
        task.load_dataset("train")
    message = str(err.value)
    assert name in message and reason in message and "1 bad audio file" in message
    assert "--skip-bad" in message                       # says how to fix it
    assert "good0.flac" not in message                   # only the bad one is named


def test_missing_file_and_many_bad_files_are_all_listed(corpus):
    corpus.add("stereo.flac", len(corpus.wav), lambda p: sf.write(p, np.stack([corpus.wav] * 2, 1), 16000))
    data = corpus.write([f"stereo.flac\t{len(corpus.wav)}", "nowhere/lost.flac\t16000"])
    with pytest.raises(AudioInputError, match=r"(?s)2 bad audio file.*stereo\.flac: 2 channels.*lost\.flac: missing file"):
        make_task(data).load_dataset("train")


@pytest.mark.parametrize("line, where", [
    ("good0.flac", "train.tsv:5"),                       # no frame count
    ("good0.flac\tmany", "train.tsv:5"),                 # frame count not a number
    ("good0.flac\t16000\textra", "train.tsv:5"),         # three columns
])
def test_malformed_manifest_line_names_path_and_line(corpus, line, where):
    data = corpus.write([line])
    with pytest.raises(AudioInputError, match=f"malformed manifest line: .*{where}"):
        make_task(data).load_dataset("train")


def test_missing_manifest_and_missing_root_are_named(corpus, tmp_path):
    corpus.write()
    with pytest.raises(AudioInputError, match=r"manifest .*valid\.tsv not found \(the folder holds train\.tsv\)"):
        make_task(corpus.data).load_dataset("valid")
    data = corpus.write(root_line=str(tmp_path / "moved"))
    with pytest.raises(AudioInputError, match=r"train\.tsv:1: audio root .*moved.* is not a folder"):
        make_task(data).load_dataset("train")


# -- read-time checks (what a header cannot show) ------------------------------------------------

def test_corrupt_and_truncated_flac_pass_the_header_but_fail_by_name_when_read(corpus):
    corpus.add("corrupt.flac", len(corpus.wav), _write_bytes(corpus.raw[:100] + os.urandom(len(corpus.raw) - 100)))
    data = corpus.add("cut.flac", len(corpus.wav), _write_bytes(corpus.raw[: len(corpus.raw) // 2]))
    data = corpus.write([f"corrupt.flac\t{len(corpus.wav)}", f"cut.flac\t{len(corpus.wav)}"])
    task = make_task(data)
    task.load_dataset("train")                           # header check: both headers look fine
    ds = task.datasets["train"]
    assert isinstance(ds, CheckedFileAudioDataset)
    assert ds[0]["source"].shape == (int(ds.sizes[0]),)  # good files still read
    for index, name in ((3, "corrupt.flac"), (4, "cut.flac")):
        with pytest.raises(AudioInputError, match=f"{name}: cannot be decoded .*corrupt or truncated"):
            ds[index]
    # the full check finds both before training starts
    with pytest.raises(AudioInputError, match=r"(?s)2 bad audio file.*corrupt\.flac: unreadable.*cut\.flac: unreadable"):
        make_task(data, audio_check="full").load_dataset("train")


def test_nan_samples_are_an_error_not_a_nan_loss(corpus):
    bad = corpus.wav.copy()
    bad[100:110] = np.nan
    data = corpus.add("nan.wav", len(bad), lambda p: sf.write(p, bad, 16000, subtype="FLOAT"))
    task = make_task(data)
    task.load_dataset("train")
    with pytest.raises(AudioInputError, match=r"nan\.wav: 10 non-finite"):
        task.datasets["train"][3]


# -- configs -----------------------------------------------------------------------------------

TINY_MODEL = dict(_name="hypervq_wav2vec2", quantize_targets=True, quantizer_type="hyperbolic", latent_vars=32,
                  latent_groups=2, final_dim=32, encoder_embed_dim=64, hyperbolic_curvature=1.0)


@pytest.mark.parametrize("override, message", [
    (dict(hyperbolic_curvature=-1.0), r"model\.hyperbolic_curvature=-1\.0: .*finite curvature c > 0"),
    (dict(hyperbolic_curvature=float("nan")), r"model\.hyperbolic_curvature=nan"),
    (dict(latent_groups=3), r"model\.latent_groups=3 does not divide the quantizer width model\.final_dim=32"),
    (dict(latent_vars=1), r"model\.latent_vars=1: a quantizer needs at least 2 codes"),
    (dict(quantizer_type="gumbel", latent_groups=3), r"model\.latent_groups=3 does not divide"),
    (dict(quantizer_type="gumbel", latent_temp=[-2.0, 0.5, 0.995]), r"model\.latent_temp=\[-2\.0, 0\.5, 0\.995\]: .*0 < min_temp <= max_temp"),
    (dict(latent_temp=[2.0, 0.5, 1.5]), r"model\.latent_temp=.*0 < decay <= 1"),
    (dict(hyperbolic_r_init=[float("nan"), 1.0]), r"model\.hyperbolic_r_init=.*expected 2 finite numbers"),
    (dict(final_dim=0, encoder_embed_dim=0), r"the quantizer needs a width >= 1"),
    (dict(hyperbolic_reseed_every=-5), r"model\.hyperbolic_reseed_every=-5: must be a whole number"),
    (dict(hyperbolic_reseed_every=2.5), r"model\.hyperbolic_reseed_every=2\.5"),
])
def test_nonsensical_model_configs_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        check_model_config(OmegaConf.create({**TINY_MODEL, **override}))


def test_valid_configs_pass():
    check_model_config(OmegaConf.create(TINY_MODEL))
    check_model_config(OmegaConf.create({**TINY_MODEL, "quantize_targets": False, "latent_vars": 1}))


def test_negative_audio_check_workers_is_refused(corpus):
    with pytest.raises(ConfigError, match=r"task\.audio_check_workers=-2: a number of processes >= 1, or 0"):
        make_task(corpus.write(), audio_check_workers=-2)


def test_fp16_on_a_machine_without_cuda_says_which_option_runs():
    with pytest.raises(ConfigError, match="common.fp16_no_flatten_grads=true"):
        check_precision(fp16=True, fp16_no_flatten_grads=False, memory_efficient_fp16=False, cuda_available=False)
    check_precision(fp16=True, fp16_no_flatten_grads=True, memory_efficient_fp16=False, cuda_available=False)
    check_precision(fp16=True, fp16_no_flatten_grads=False, memory_efficient_fp16=False, cuda_available=True)


@pytest.mark.parametrize("lr, max_tokens, message", [
    ([-0.001], 1000, r"optimization\.lr=-0\.001: a learning rate must be a finite number > 0"),
    ([float("nan")], 1000, r"optimization\.lr=nan"),
    ([0.001, float("inf")], 1000, r"optimization\.lr=inf"),
    (["fast"], 1000, r"optimization\.lr='fast': a learning rate must be a number"),
    ([0.001], 0, r"dataset\.max_tokens=0: .*fairseq reads 0 as 'no limit'"),
    ([0.001], -5, r"dataset\.max_tokens=-5"),
])
def test_training_numbers_fairseq_would_accept_silently_are_refused(lr, max_tokens, message):
    with pytest.raises(ConfigError, match=message):
        check_training_numbers(lr, max_tokens)


def test_sound_training_numbers_pass():
    check_training_numbers([0.002], 384000)
    check_training_numbers([0.1, 0.01], None)   # a schedule; max_tokens null with batch_size


# -- what the user reads from fairseq-hydra-train ------------------------------------------------

def _last_frame(text):
    frames = [line for line in text.splitlines() if line.strip().startswith('File "')]
    return frames[-1] if frames else ""


@pytest.mark.parametrize("kind", ["stereo_audio", "negative_curvature", "negative_lr",
                                  pytest.param("gumbel_negative_temperature", marks=pytest.mark.slow)])
@pytest.mark.slow
def test_fairseq_hydra_train_reports_our_message(corpus, tmp_path, kind):
    overrides = ["task._name=hypervq_audio_pretraining", "task.min_sample_size=0", "optimization.max_update=1"]
    if kind == "stereo_audio":
        data = corpus.add("two.flac", len(corpus.wav), lambda p: sf.write(p, np.stack([corpus.wav] * 2, 1), 16000))
        expected = r"two\.flac: 2 channels, expected mono"
    elif kind == "negative_curvature":
        data = corpus.write()
        overrides.append("model.hyperbolic_curvature=-1.0")
        expected = r"model\.hyperbolic_curvature=-1\.0: the Poincaré ball needs a finite curvature c > 0"
    elif kind == "negative_lr":                          # fairseq trains by gradient ascent
        data = corpus.write()
        overrides.append("optimization.lr=[-0.002]")
        expected = r"optimization\.lr=-0\.002: a learning rate must be a finite number > 0"
    else:                                                # the stock Gumbel quantizer used to train with it
        data = corpus.write()
        overrides += ["model.quantizer_type=gumbel", "model.latent_temp=[-2,0.5,0.995]"]
        expected = r"model\.latent_temp=\[-2\.0, 0\.5, 0\.995\]: the Gumbel temperature schedule"
    shutil.copy(data / "train.tsv", data / "valid.tsv")
    log = run(train_command(str(data), str(tmp_path / "ckpt"), overrides), cwd=str(tmp_path), timeout=300)
    assert log.returncode != 0 and "train_inner" not in log.records
    assert re.search(expected, log.text), log.tail()
    assert "hypervq_fairseq" in _last_frame(log.text), log.tail()  # raised by the plugin, not deep in fairseq


# -- a FLAC damaged in the middle: stop by name, or skip and count with +task.skip_bad_audio=true ----

def _damaged_in_the_middle(raw):
    mid = len(raw) // 2
    noise = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    return raw[:mid] + noise + raw[mid + 400:]


def test_flac_damaged_in_the_middle_stops_by_name_or_is_skipped_and_counted(corpus, caplog):
    data = corpus.add("mid.flac", len(corpus.wav), _write_bytes(_damaged_in_the_middle(corpus.raw)))
    task = make_task(data)
    task.load_dataset("train")                           # header check: it looks fine
    ds = task.datasets["train"]
    with pytest.raises(AudioInputError, match=r"mid\.flac: cannot be decoded .*corrupt or truncated"):
        ds[3]
    # the full check finds it before training
    with pytest.raises(AudioInputError, match=r"(?s)1 bad audio file.*mid\.flac: unreadable"):
        make_task(data, audio_check="full").load_dataset("train")

    # skipping: named in a warning, left out of its batch, counted in the batch
    for check in ("header", "full"):                     # with full, the start-up check warns instead of failing
        caplog.clear()
        task = make_task(data, skip_bad_audio=True, audio_check=check)
        task.load_dataset("train")
        ds = task.datasets["train"]
        samples = [ds[i] for i in range(len(ds))]
        assert samples[3]["source"] is None and all(s["source"] is not None for s in samples[:3])
        assert ds.skipped == {3}
        batch = ds.collater(samples)
        assert batch["skipped_audio"] == 1 and batch["net_input"]["source"].shape[0] == 3
        assert sorted(batch["id"].tolist()) == [0, 1, 2]
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("mid.flac: cannot be decoded" in w and "1 file(s) skipped so far" in w for w in warnings)
        ds[3]
        assert sum("skipping unreadable audio" in r.getMessage() for r in caplog.records) == 1   # named once
        if check == "full":
            assert any("1 bad audio file(s) in train.tsv will be skipped when read" in w for w in warnings)
    assert ds.collater([samples[3]]) == {}               # a batch of bad files only: nothing to train on


def test_skip_bad_audio_never_skips_a_broken_manifest(corpus):
    data = corpus.write(["good0.flac\tmany"])
    with pytest.raises(AudioInputError, match="malformed manifest line"):
        make_task(data, skip_bad_audio=True).load_dataset("train")


@pytest.mark.slow
def test_fairseq_hydra_train_stops_on_a_damaged_flac_or_skips_it_when_asked(corpus, tmp_path):
    data = corpus.add("mid.flac", len(corpus.wav), _write_bytes(_damaged_in_the_middle(corpus.raw)))
    shutil.copy(data / "train.tsv", data / "valid.tsv")
    overrides = ["task.min_sample_size=0", "optimization.max_update=2", "dataset.max_tokens=400000"]
    stopped = run(train_command(str(data), str(tmp_path / "a"), overrides), cwd=str(tmp_path), timeout=300)
    assert stopped.returncode != 0 and "train_inner" not in stopped.records
    assert re.search(r"AudioInputError: \S*mid\.flac: cannot be decoded", stopped.text), stopped.tail()

    skipped = run(train_command(str(data), str(tmp_path / "b"), overrides + ["+task.skip_bad_audio=true"]),
                  cwd=str(tmp_path), timeout=300)
    assert skipped.returncode == 0, skipped.tail()
    assert sorted(skipped.updates) == [1, 2]
    assert all(float(r["skipped_audio"]) == 1 for r in skipped.updates.values())     # one bad file per batch
    assert all(float(r["nsentences"]) == 3 for r in skipped.updates.values())
    assert re.search(r"WARNING.*skipping unreadable audio.*mid\.flac: cannot be decoded", skipped.text)
    assert float(skipped.records["valid"][-1]["valid_skipped_audio"]) == 1
