"""hypervq-export-hf: real checkpoints (tiny pretraining and CTC fine-tuning runs) exported to transformers
and compared with fairseq on real speech, in eval mode."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

transformers = pytest.importorskip("transformers")

from hypervq_fairseq.fairseq.checkpoints import load_pretrained  # noqa: E402
from hypervq_fairseq.fairseq.encode import encode  # noqa: E402
from hypervq_fairseq.fairseq.export_hf import ExportError, export  # noqa: E402
from hypervq_fairseq.quantizers.exported import load_exported_quantizer  # noqa: E402
from hypervq_fairseq.tools import export_hf as export_tool  # noqa: E402
from helpers.runs import quiet_env  # noqa: E402

ATOL = 1e-4
REPO = Path(__file__).resolve().parents[1]


def waves(manifest: Path):
    """(relative path, float32 waveform) of every utterance of a manifest."""
    lines = manifest.read_text().splitlines()
    root = Path(lines[0])
    for line in lines[1:]:
        rel = line.split("\t")[0]
        wav, rate = sf.read(root / rel, dtype="float32")
        assert rate == 16000
        yield rel, torch.from_numpy(wav)


@pytest.fixture(scope="module")
def pretrained_export(pretrained_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "pretrained"
    assert export_tool.main([str(pretrained_checkpoint), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ctc_export(finetuned_checkpoint, tmp_path_factory):
    ckpt, data = finetuned_checkpoint
    out = tmp_path_factory.mktemp("hf") / "ctc"
    assert export_tool.main([str(ckpt), str(out), "--dict", str(data / "dict.ltr.txt")]) == 0
    return out


@pytest.fixture(scope="module")
def fairseq_ctc(finetuned_checkpoint):
    from fairseq import checkpoint_utils

    ckpt, data = finetuned_checkpoint
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)], arg_overrides={"data": str(data)})
    return models[0].eval(), task


def test_pretrained_export_says_where_the_quantizer_is(pretrained_checkpoint, tmp_path, capsys):
    out = tmp_path / "hf"
    assert export_tool.main([str(pretrained_checkpoint), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Wav2Vec2Model" in printed and "quantizer is not part of Wav2Vec2Model" in printed
    assert {"config.json", "model.safetensors", "quantizer.safetensors", "quantizer.json", "export.json"} <= {
        p.name for p in out.iterdir()}
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folder left

    # every checkpoint tensor is mapped (to one parameter each) or deliberately left out
    report = json.loads((out / "export.json").read_text())
    state = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)["model"]
    assert set(report["mapped"]) | set(report["left_out"]) == set(state)
    assert len(set(report["mapped"].values())) == len(report["mapped"])
    assert {k.split(".")[0] for k in report["left_out"]} == {"quantizer", "project_q", "final_proj"}
    config = json.loads((out / "config.json").read_text())
    assert config["feat_extract_norm"] == "group" and config["do_stable_layer_norm"] is False
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2 and config["num_conv_pos_embeddings"] == 16

    # an existing folder is kept unless --overwrite
    assert export_tool.main([str(pretrained_checkpoint), str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    # --overwrite replaces an earlier export, never a folder of other files
    assert export_tool.main([str(pretrained_checkpoint), str(out), "--overwrite"]) == 0
    capsys.readouterr()
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    assert export_tool.main([str(pretrained_checkpoint), str(mine), "--overwrite"]) == 1
    assert "no export.json from hypervq-export-hf" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"] and (mine / "chapter1.tex").read_text() == "years of work"


def assert_same_as_fairseq(fs, hf, manifest, normalize=False, quantizer=None, pm=None):
    """Every layer's output, last_hidden_state and extract_features within ATOL of fairseq's (eval mode, same
    input); with ``quantizer``, the exported quantizer's ids equal fairseq's ``encode`` (hypervq-tokenize's path)."""
    layers = len(fs.encoder.layers)
    for rel, wave in waves(manifest):
        x = (torch.nn.functional.layer_norm(wave, wave.shape) if normalize else wave)[None]
        seen = {}
        hook = fs.encoder.layers[0].register_forward_pre_hook(lambda m, args: seen.setdefault("input", args[0]))
        with torch.no_grad():
            ours = fs.extract_features(x, padding_mask=None, mask=False)
            theirs = hf(x, output_hidden_states=True)
        hook.remove()
        frames = theirs.last_hidden_state.shape[1]
        assert len(theirs.hidden_states) == layers + 1
        # the input of the first layer (fairseq pads time to a multiple of 2 there; the padding is masked)
        torch.testing.assert_close(theirs.hidden_states[0], seen["input"].transpose(0, 1)[:, :frames], atol=ATOL, rtol=0)
        # each layer's output (transformers 5 keeps the last one before a pre-LN encoder's final layer norm)
        for i in range(layers):
            torch.testing.assert_close(theirs.hidden_states[i + 1], ours["layer_results"][i][0].transpose(0, 1),
                                       atol=ATOL, rtol=0)
        torch.testing.assert_close(theirs.last_hidden_state, ours["x"], atol=ATOL, rtol=0)
        # extract_features: the layer-normed CNN features, the tensor fairseq's quantizer reads
        torch.testing.assert_close(theirs.extract_features, ours["features"], atol=ATOL, rtol=0)
        if quantizer is not None:
            assert torch.equal(quantizer.tokens(theirs.extract_features)[0], encode(pm, [wave])[0]), rel


def test_hidden_states_equal_fairseqs(pretrained_checkpoint, pretrained_export, tiny_speech_manifest):
    hf = transformers.Wav2Vec2Model.from_pretrained(pretrained_export).eval()
    assert_same_as_fairseq(load_pretrained(pretrained_checkpoint).model, hf, tiny_speech_manifest / "valid.tsv")


VARIANTS = {
    # layer-norm CNN with conv bias, pre-LN transformer, a post_extract_proj (64 -> 48), relu; normalised input
    "layer_norm_cnn_stable_layer_norm": dict(extractor_mode="layer_norm", layer_norm_first=True, conv_bias=True,
                                             encoder_embed_dim=48, activation_fn="relu"),
    # the stock Gumbel baseline with a two-layer projection (renamed by name to EuclideanGumbelQuantizer's)
    "gumbel_two_layer_projection": dict(quantizer_type="gumbel", quantizer_depth=2, quantizer_factor=2),
    # HyperVQ with every option that changes its forward away from the defaults
    "hyperbolic_learned_scale_and_curvature": dict(hyperbolic_learn_logit_scale=True, hyperbolic_learn_curvature=True,
                                                   hyperbolic_clip_mode="soft", hyperbolic_curvature=0.5,
                                                   hyperbolic_logit_scale=1.5),
    # the paper's HyperVQ: no feature clipping (a null in the config), logit scale 1
    "hyperbolic_paper_settings": dict(hyperbolic_clip_radius=None, hyperbolic_logit_scale=1.0),
}


def fresh_checkpoint(pretrained_checkpoint, path, model_cfg: dict, normalize: bool = False):
    """The pretraining checkpoint with another model config and fresh weights (fairseq builds the model)."""
    import fairseq.models
    from omegaconf import OmegaConf

    state = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)
    state["cfg"]["model"] = model_cfg
    state["cfg"]["task"]["normalize"] = normalize
    torch.manual_seed(0)
    state["model"] = fairseq.models.build_model(OmegaConf.create(model_cfg), task=None,
                                                from_checkpoint=True).state_dict()
    torch.save(state, path)
    return state


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_other_architectures_and_quantizers(variant, pretrained_checkpoint, tiny_speech_manifest, tmp_path):
    """Freshly initialised models (fairseq builds them from the changed config) exported and compared."""
    from safetensors.torch import load_file

    ckpt = tmp_path / "variant.pt"
    normalize = variant.startswith("layer_norm")
    model_cfg = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)["cfg"]["model"]
    state = fresh_checkpoint(pretrained_checkpoint, ckpt, {**model_cfg, **VARIANTS[variant]}, normalize)
    out = tmp_path / "hf"
    export(ckpt, out)

    pm = load_pretrained(ckpt)
    hf = transformers.Wav2Vec2Model.from_pretrained(out).eval()
    quantizer = load_exported_quantizer(out)
    assert quantizer.config["type"] == VARIANTS[variant].get("quantizer_type", "hyperbolic")
    assert quantizer.fingerprint == pm.fingerprint
    for key, value in VARIANTS[variant].items():
        if key.startswith("hyperbolic_"):
            assert quantizer.config[key.removeprefix("hyperbolic_")] == value, key
    assert_same_as_fairseq(pm.model, hf, tiny_speech_manifest / "valid.tsv", normalize, quantizer, pm)
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(out)
    assert (extractor.do_normalize, extractor.return_attention_mask) == (normalize, normalize)

    if normalize:  # torch's weight-norm parametrization names map to the same parameters
        renamed = {k.replace("weight_g", "parametrizations.weight.original0")
                   .replace("weight_v", "parametrizations.weight.original1"): v for k, v in state["model"].items()}
        assert renamed != state["model"]
        state["model"] = renamed
        torch.save(state, ckpt)
        export(ckpt, tmp_path / "hf2")
        first, second = load_file(out / "model.safetensors"), load_file(tmp_path / "hf2" / "model.safetensors")
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_exported_quantizer_gives_hypervq_tokenize_ids(pretrained_checkpoint, pretrained_export, tiny_speech_manifest,
                                                       tmp_path):
    from hypervq_fairseq.eval.tokens import read_sidecar, read_token_file
    from hypervq_fairseq.tools import tokenize

    tok = tmp_path / "valid.tok"
    assert tokenize.main([str(pretrained_checkpoint), str(tiny_speech_manifest / "valid.tsv"), "--out", str(tok),
                          "--no-progress", "--device", "cpu"]) == 0
    reference = read_token_file(tok)
    hf = transformers.Wav2Vec2Model.from_pretrained(pretrained_export).eval()
    quantizer = load_exported_quantizer(pretrained_export)
    assert quantizer.config["type"] == "hyperbolic" and quantizer.fingerprint == read_sidecar(tok)["quantizer_fingerprint"]
    assert quantizer.groups == 2 and quantizer.num_vars == 32
    frames = 0
    for rel, wave in waves(tiny_speech_manifest / "valid.tsv"):
        with torch.no_grad():
            features = hf(wave[None]).extract_features
        ids = quantizer.tokens(features)[0]
        assert torch.equal(ids, reference[rel]), rel
        assert torch.equal(quantizer.tokens(features[0]), ids)  # (T, C) in, (T, G) out
        frames += len(ids)
    assert frames > 100


@pytest.mark.slow
def test_ctc_logits_equal_fairseqs(ctc_export, fairseq_ctc, tiny_speech_manifest):
    fs, _task = fairseq_ctc
    hf = transformers.Wav2Vec2ForCTC.from_pretrained(ctc_export).eval()
    processor = transformers.Wav2Vec2Processor.from_pretrained(ctc_export)
    fe = processor.feature_extractor
    assert (fe.sampling_rate, fe.do_normalize, fe.return_attention_mask) == (16000, False, False)
    assert hf.config.ctc_zero_infinity is True  # the ctc criterion's zero_infinity
    for _, wave in waves(tiny_speech_manifest / "valid.tsv"):
        inputs = processor(wave.numpy(), sampling_rate=16000, return_tensors="pt")
        assert torch.equal(inputs.input_values, wave[None])  # normalize: false in the task
        with torch.no_grad():
            ours = fs.get_logits(fs(source=wave[None], padding_mask=None)).transpose(0, 1)
            theirs = hf(inputs.input_values).logits
        assert theirs.shape == ours.shape and theirs.shape[-1] == len(_task.target_dictionary)
        torch.testing.assert_close(theirs, ours, atol=ATOL, rtol=0)


def fairseq_greedy(ids: torch.Tensor, dictionary) -> str:
    """fairseq's ctc criterion's greedy decoding: merge repeats, drop the blank (0), letters -> words."""
    from fairseq.data.data_utils import post_process

    toks = ids.unique_consecutive()
    return post_process(dictionary.string(toks[toks != 0]), "letter")


@pytest.mark.slow
def test_processor_vocabulary_decodes_like_fairseqs_dictionary(ctc_export, fairseq_ctc, tiny_speech_manifest):
    fs, task = fairseq_ctc
    d = task.target_dictionary
    hf = transformers.Wav2Vec2ForCTC.from_pretrained(ctc_export).eval()
    processor = transformers.Wav2Vec2Processor.from_pretrained(ctc_export)
    tok = processor.tokenizer
    assert tok.pad_token_id == 0 == hf.config.pad_token_id  # transformers' CTC blank = fairseq's blank index
    assert tok.word_delimiter_token == "|"
    letters = list(range(d.nspecial, len(d)))
    assert [tok.convert_ids_to_tokens(i) for i in letters] == [d[i] for i in letters]

    # every letter, repeats and blanks between words
    ids = torch.tensor([0] + [i for i in letters for _ in range(2)] + [0, letters[0], letters[0], 0, letters[-1]])
    assert processor.decode(ids) == fairseq_greedy(ids, d)

    # the model's argmax on real speech; fairseq's pad, eos and unk (1..3) are never CTC targets, and a
    # 2-update model still picks them, so they are left out on both sides (see docs/export.md)
    decoded = 0
    for _, wave in waves(tiny_speech_manifest / "valid.tsv"):
        with torch.no_grad():
            logits = hf(wave[None]).logits[0]
        logits[:, 1:d.nspecial] = -torch.inf
        ids = logits.argmax(-1)
        text = processor.decode(ids)
        assert text == fairseq_greedy(ids, d)
        decoded += len(text)
    assert decoded > 0


@pytest.mark.slow
def test_from_pretrained_works_offline(pretrained_export, ctc_export, tmp_path):
    code = f"""
from transformers import Wav2Vec2ForCTC, Wav2Vec2Model, Wav2Vec2Processor
from hypervq_fairseq.quantizers.exported import load_exported_quantizer
m = Wav2Vec2Model.from_pretrained({str(pretrained_export)!r})
q = load_exported_quantizer({str(pretrained_export)!r})
c = Wav2Vec2ForCTC.from_pretrained({str(ctc_export)!r})
p = Wav2Vec2Processor.from_pretrained({str(ctc_export)!r})
print(type(m).__name__, q.groups, type(c).__name__, len(p.tokenizer))
"""
    env = dict(quiet_env(), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "empty_hf_home"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[:3] == ["Wav2Vec2Model", "2", "Wav2Vec2ForCTC"]


def test_a_tensor_without_counterpart_is_refused_by_name(pretrained_checkpoint, tmp_path):
    state = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)
    state["model"]["encoder.layers.0.adapter.weight"] = torch.zeros(64, 64)
    bad = tmp_path / "extra_tensor.pt"
    torch.save(state, bad)
    with pytest.raises(ExportError, match=r"encoder\.layers\.0\.adapter\.weight"):
        export(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_settings_transformers_cannot_hold_are_refused_by_name(pretrained_checkpoint, finetuned_checkpoint, tmp_path):
    state = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)
    state["cfg"]["model"]["layer_type"] = "conformer"
    state["cfg"]["model"]["crop_seq_to_multiple"] = 2
    bad = tmp_path / "conformer.pt"
    torch.save(state, bad)
    with pytest.raises(ExportError, match=r"model\.layer_type=conformer.*model\.crop_seq_to_multiple=2"):
        export(bad, tmp_path / "out")

    # a CTC model needs its own letter dictionary: the head's size is checked against it
    ckpt, data = finetuned_checkpoint
    with pytest.raises(ExportError, match="--dict"):
        export(ckpt, tmp_path / "out")
    short = tmp_path / "dict.ltr.txt"
    short.write_text("\n".join((data / "dict.ltr.txt").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ExportError, match="CTC outputs"):
        export(ckpt, tmp_path / "out", dictionary=short)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_without_the_hf_extra_the_command_names_it(tmp_path):
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from hypervq_fairseq.tools.export_hf import main\n"
            "sys.exit(main(['missing.pt', 'out']))")
    env = dict(quiet_env(), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'hf' extra" in lines[0] and "pip install" in lines[0], proc.stderr


@pytest.mark.slow
def test_base_architecture(pretrained_checkpoint, tiny_speech_manifest, tmp_path):
    """wav2vec 2.0 BASE as configs/hypervq_w2v2.yaml builds it (fresh weights): 12 layers, a 512 -> 768
    post_extract_proj, a 128-wide positional conv in 16 groups, 2 x 320 codes."""
    import yaml
    from omegaconf import OmegaConf

    from hypervq_fairseq.fairseq.models import HyperVQWav2Vec2Config

    model_cfg = OmegaConf.to_container(OmegaConf.structured(HyperVQWav2Vec2Config), enum_to_str=True)
    model_cfg.update(yaml.safe_load((REPO / "configs" / "hypervq_w2v2.yaml").read_text())["model"])
    ckpt = tmp_path / "base.pt"
    fresh_checkpoint(pretrained_checkpoint, ckpt, model_cfg)
    export(ckpt, tmp_path / "hf")
    hf = transformers.Wav2Vec2Model.from_pretrained(tmp_path / "hf").eval()
    assert (hf.config.num_hidden_layers, hf.config.hidden_size, hf.config.num_conv_pos_embeddings) == (12, 768, 128)
    pm = load_pretrained(ckpt)
    short = tmp_path / "two.tsv"  # the manifest root and two utterances
    short.write_text("\n".join((tiny_speech_manifest / "valid.tsv").read_text().splitlines()[:3]) + "\n")
    assert_same_as_fairseq(pm.model, hf, short, quantizer=load_exported_quantizer(tmp_path / "hf"), pm=pm)


@pytest.mark.slow
def test_verify_option_prints_the_largest_differences(pretrained_checkpoint, finetuned_checkpoint, tiny_speech_manifest,
                                                      tmp_path, capsys):
    import re

    manifest = str(tiny_speech_manifest / "valid.tsv")
    assert export_tool.main([str(pretrained_checkpoint), str(tmp_path / "pre"), "--verify", manifest]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("verify on"))
    assert "token ids differing from hypervq-tokenize's on 0 frames" in line, line
    assert all(float(v) <= ATOL for v in re.findall(r"(?:hidden_states|extract_features) ([0-9.e+-]+)", line)), line

    ckpt, data = finetuned_checkpoint
    assert export_tool.main([str(ckpt), str(tmp_path / "ctc"), "--dict", str(data / "dict.ltr.txt"),
                             "--verify", manifest, "--verify-limit", "2"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("verify on"))
    assert line.startswith("verify on 2 utterances") and float(re.search(r"logits ([0-9.e+-]+)", line).group(1)) <= ATOL


@pytest.mark.slow
def test_models_without_a_quantizer_or_a_mask_embedding(pretrained_checkpoint, finetuned_checkpoint, tmp_path, capsys):
    # a pretraining checkpoint saved without its quantizer: the model alone, and a note saying so
    state = torch.load(pretrained_checkpoint, map_location="cpu", weights_only=False)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("quantizer.")}
    bare = tmp_path / "no_quantizer.pt"
    torch.save(state, bare)
    assert export_tool.main([str(bare), str(tmp_path / "bare")]) == 0
    printed = capsys.readouterr().out
    assert "no quantizer files written" in printed and "quantizer is not part" not in printed
    assert not (tmp_path / "bare" / "quantizer.json").exists()

    # a CTC model fine-tuned without masking: transformers builds no mask embedding, so it is left out (and listed)
    ckpt, data = finetuned_checkpoint
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["cfg"]["model"]["mask_prob"] = 0.0
    state["cfg"]["model"]["mask_channel_prob"] = 0.0
    nomask = tmp_path / "no_mask.pt"
    torch.save(state, nomask)
    export(nomask, tmp_path / "ctc", dictionary=data / "dict.ltr.txt")
    report = json.loads((tmp_path / "ctc" / "export.json").read_text())
    assert "w2v_encoder.w2v_model.mask_emb" in report["left_out"]
    assert "w2v_encoder.w2v_model.mask_emb" not in report["mapped"]
    assert set(report["mapped"]) | set(report["left_out"]) == set(state["model"])
