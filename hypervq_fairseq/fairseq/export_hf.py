"""Export a checkpoint this project writes to Hugging Face ``transformers``.

Two kinds of checkpoint are exported:

- a pretraining checkpoint (``hypervq_wav2vec2``, or fairseq's ``wav2vec2``) becomes a
  ``Wav2Vec2Model`` folder. The quantizer is **not** part of ``Wav2Vec2Model`` (transformers'
  own quantizer is the stock Gumbel one and has no HyperVQ), so it is written beside the model as
  ``quantizer.safetensors`` and ``quantizer.json``;
  :func:`hypervq_fairseq.quantizers.exported.load_exported_quantizer` loads it and turns the
  model's ``extract_features`` into the code ids ``hypervq-tokenize`` writes;
- a CTC fine-tuned checkpoint (fairseq's ``wav2vec_ctc``) becomes a ``Wav2Vec2ForCTC`` folder
  with a ``Wav2Vec2Processor`` (feature extractor and letter tokenizer).

Weights are mapped **by name**, never by shape: every tensor of the checkpoint is either mapped
to one transformers parameter, deliberately left out (the pretraining heads, listed in the
folder's ``export.json``), or refused with an :class:`ExportError` that names it; every
transformers parameter must be filled, or the export is refused naming it. A setting the
transformers model cannot represent (conformer layers, a deeper positional convolution, an
input quantizer, ...) is refused by name too.

The folder is written complete or not at all: it is built under ``.NAME.tmp`` beside the
destination and renamed when every file is there.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..errors import CheckpointError, HyperVQError, OutputError
from ..files import atomic_folder
from ..quantizers.hyperbolic_vq import DEFAULT_CLIP_MODE, DEFAULT_CLIP_RADIUS, DEFAULT_CURVATURE, DEFAULT_LOGIT_SCALE
from ..safe_load import parse_layer_spec
from .checkpoints import FINETUNED_MODELS, read_checkpoint, tensors_fingerprint

PRETRAINING_MODELS = ("hypervq_wav2vec2", "wav2vec2")
CTC_MODELS = ("wav2vec_ctc", "wav2vec2_ctc")
EXTRA = "hf"
INSTALL_HINT = "pip install -e '.[hf]' (or pip install 'hypervq-fairseq[hf]')"

# fairseq activation_fn -> transformers hidden_act (same function, not an approximation of it)
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "tanh": "tanh", "linear": "linear",
               "gelu_accurate": "gelu_new", "gelu_fast": "gelu_new", "swish": "silu"}
EXTRACTOR_MODES = {"default": "group", "layer_norm": "layer"}

# the pretraining heads wav2vec 2.0 uses only for its loss: never part of Wav2Vec2Model
PRETRAINING_HEADS = ("quantizer.", "project_q.", "final_proj.", "target_glu.")

# fairseq's Dictionary puts these four symbols first; the CTC blank is its index 0 (bos, "<s>")
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


class ExportError(CheckpointError):
    """A checkpoint, tensor or setting the transformers model cannot hold; the message names it."""


class MissingExtraError(HyperVQError, ImportError):
    """transformers or safetensors is missing: the ``hf`` extra was not installed."""


def require_hf():
    """``(transformers, safetensors.torch)``, or a :class:`MissingExtraError` naming the extra."""
    try:
        import safetensors.torch
        import transformers
    except ImportError as e:
        raise MissingExtraError(f"exporting to transformers needs the '{EXTRA}' extra ({e.name} is not installed): "
                                f"{INSTALL_HINT}") from None
    return transformers, safetensors.torch


# ----------------------------------------------------------------------------- the fairseq side


@dataclass
class Source:
    """What the export reads from a checkpoint: the model kind, its settings and its tensors."""

    path: str
    kind: str  # "pretraining" or "ctc"
    model_name: str
    arch: dict  # the wav2vec 2.0 model's settings (w2v_args.model for a fine-tuned one)
    task: dict
    outer: dict  # the fine-tuned model's own settings ({} for pretraining)
    tensors: Dict[str, torch.Tensor]
    prefix: str  # where the wav2vec 2.0 model's tensors start
    updates: int = 0
    criterion: dict = field(default_factory=dict)


def _plain(cfg) -> dict:
    if cfg is None:
        return {}
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover (fairseq depends on omegaconf)
        pass
    return dict(cfg) if not isinstance(cfg, dict) else cfg


def _with_defaults(arch: dict) -> dict:
    """The model's settings with the dataclass defaults for keys an older checkpoint lacks."""
    import dataclasses

    from .models.hypervq_wav2vec2 import HyperVQWav2Vec2Config

    defaults = {}
    for f in dataclasses.fields(HyperVQWav2Vec2Config):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    return {**defaults, **arch}  # a null in the checkpoint stays null (e.g. no feature clipping)


def read_source(path) -> Source:
    """The checkpoint at ``path`` as a :class:`Source`; named errors for models that cannot be exported."""
    state = read_checkpoint(path)
    cfg = state["cfg"]
    name = cfg.model.get("_name")
    history = state.get("optimizer_history") or [{}]
    updates = int(history[-1].get("num_updates", 0) or 0)
    tensors = state["model"]
    if name in PRETRAINING_MODELS:
        return Source(str(path), "pretraining", name, _with_defaults(_plain(cfg.model)), _plain(cfg.get("task")), {},
                      tensors, "", updates)
    if name in CTC_MODELS:
        w2v_args = cfg.model.get("w2v_args")
        if w2v_args is None or w2v_args.get("model") is None:
            raise ExportError(f"{path}: the fine-tuned model holds no w2v_args.model (the settings of its wav2vec 2.0 "
                              f"encoder), so its architecture is unknown")
        inner = w2v_args.model.get("_name")
        if inner not in PRETRAINING_MODELS:
            raise ExportError(f"{path}: fine-tuned from a '{inner}' model; only {', '.join(PRETRAINING_MODELS)} "
                              f"encoders can be exported to Wav2Vec2ForCTC")
        return Source(str(path), "ctc", name, _with_defaults(_plain(w2v_args.model)), _plain(cfg.get("task")),
                      _plain(cfg.model), tensors, "w2v_encoder.w2v_model.", updates, _plain(cfg.get("criterion")))
    if name in FINETUNED_MODELS:
        raise ExportError(f"{path} holds a '{name}' model; the export handles pretraining checkpoints "
                          f"({', '.join(PRETRAINING_MODELS)}) and CTC fine-tuned ones ({', '.join(CTC_MODELS)})")
    raise ExportError(f"{path} holds a '{name}' model; the export handles pretraining checkpoints "
                      f"({', '.join(PRETRAINING_MODELS)}) and CTC fine-tuned ones ({', '.join(CTC_MODELS)})")


def conv_layers(arch: dict) -> List[Tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` (e.g. ``"[(512, 10, 5)] * 2"``), read by the safe parser."""
    spec = arch["conv_feature_layers"]
    try:
        layers = parse_layer_spec(spec)
    except ValueError:
        raise ExportError(f"model.conv_feature_layers {spec!r} is not a list of (dim, kernel, stride)") from None
    if not layers or any(len(layer) != 3 for layer in layers):
        raise ExportError(f"model.conv_feature_layers {spec!r} is not a list of (dim, kernel, stride)")
    return layers


def check_representable(src: Source) -> None:
    """Refuse, by name, every setting a transformers ``Wav2Vec2Model`` computes differently."""
    a = src.arch
    refuse = []
    if a.get("layer_type", "transformer") != "transformer":
        refuse.append(f"model.layer_type={a['layer_type']} (transformers' Wav2Vec2 has plain transformer layers)")
    if int(a.get("pos_conv_depth", 1) or 1) != 1:
        refuse.append(f"model.pos_conv_depth={a['pos_conv_depth']} (transformers' Wav2Vec2 has one positional conv)")
    if a.get("conv_pos_batch_norm"):
        refuse.append("model.conv_pos_batch_norm=true (transformers' positional conv is weight-normed, no batch norm)")
    if int(a.get("crop_seq_to_multiple", 1) or 1) != 1:
        refuse.append(f"model.crop_seq_to_multiple={a['crop_seq_to_multiple']} (transformers never drops frames)")
    if a.get("quantize_input"):
        refuse.append("model.quantize_input=true (transformers' encoder reads the CNN features, not codes)")
    if a.get("extractor_mode") not in EXTRACTOR_MODES:
        refuse.append(f"model.extractor_mode={a.get('extractor_mode')} (transformers has {', '.join(EXTRACTOR_MODES)})")
    if a.get("activation_fn") not in ACTIVATIONS:
        refuse.append(f"model.activation_fn={a.get('activation_fn')} (mapped: {', '.join(ACTIVATIONS)})")
    heads, dim = int(a["encoder_attention_heads"]), int(a["encoder_embed_dim"])
    if dim % heads:
        refuse.append(f"model.encoder_embed_dim={dim} is not divisible by encoder_attention_heads={heads}")
    if src.kind == "ctc":
        weight, mode = float(src.outer.get("blank_weight", 0) or 0), src.outer.get("blank_mode", "add")
        if weight != 0 and mode != "add":
            refuse.append(f"model.blank_weight={weight} with blank_mode={mode} (a fixed blank logit has no "
                          f"transformers equivalent; 'add' is folded into the head's bias)")
    if refuse:
        raise ExportError(f"{src.path} cannot be exported to transformers: " + "; ".join(refuse))


# ----------------------------------------------------------------------------- config


def hf_config_kwargs(src: Source, vocab_size: Optional[int] = None) -> dict:
    """``Wav2Vec2Config`` arguments from the fairseq settings (architecture first, then training-only ones)."""
    a = src.arch
    layers = conv_layers(a)
    kw = dict(
        hidden_size=int(a["encoder_embed_dim"]),
        num_hidden_layers=int(a["encoder_layers"]),
        num_attention_heads=int(a["encoder_attention_heads"]),
        intermediate_size=int(a["encoder_ffn_embed_dim"]),
        hidden_act=ACTIVATIONS[a["activation_fn"]],
        feat_extract_norm=EXTRACTOR_MODES[a["extractor_mode"]],
        feat_extract_activation="gelu",  # fairseq: nn.GELU() in the CNN and after the positional conv
        conv_dim=[d for d, _, _ in layers],
        conv_kernel=[k for _, k, _ in layers],
        conv_stride=[s for _, _, s in layers],
        conv_bias=bool(a.get("conv_bias", False)),
        num_conv_pos_embeddings=int(a["conv_pos"]),
        num_conv_pos_embedding_groups=int(a["conv_pos_groups"]),
        do_stable_layer_norm=bool(a.get("layer_norm_first", False)),
        layer_norm_eps=1e-5,  # fairseq's LayerNorm default, everywhere in wav2vec 2.0
        # training only (dropouts, LayerDrop): the values the checkpoint trained with
        hidden_dropout=float(a.get("dropout", 0.1)),
        attention_dropout=float(a.get("attention_dropout", 0.1)),
        activation_dropout=float(a.get("activation_dropout", 0.0)),
        feat_proj_dropout=float(a.get("dropout_input", 0.0)),
        layerdrop=float(a.get("encoder_layerdrop", 0.0)),
        # what the pretraining quantizer had (transformers' own quantizer is not filled: see quantizer.json)
        num_codevectors_per_group=int(a.get("latent_vars", 320)),
        num_codevector_groups=int(a.get("latent_groups", 2)),
        codevector_dim=_vq_dim(a),
        proj_codevector_dim=_final_dim(a),
    )
    if src.kind == "ctc":
        o = src.outer
        kw.update(
            vocab_size=int(vocab_size),
            pad_token_id=0, bos_token_id=1, eos_token_id=2,  # 0 is the CTC blank (see ctc_vocabulary)
            final_dropout=float(o.get("final_dropout", 0.0)),
            mask_time_prob=float(o.get("mask_prob", 0.05)),
            mask_time_length=int(o.get("mask_length", 10)),
            mask_feature_prob=float(o.get("mask_channel_prob", 0.0)),
            mask_feature_length=int(o.get("mask_channel_length", 10)),
            ctc_zero_infinity=bool(src.criterion.get("zero_infinity", False)),
        )
    return kw


# ----------------------------------------------------------------------------- tensors, by name


def _rules(src: Source) -> List[Tuple[re.Pattern, str]]:
    """(fairseq name pattern, transformers name) pairs; names relative to the wav2vec 2.0 model."""
    p = re.escape(src.prefix)
    mode = src.arch["extractor_mode"]
    rules = [
        (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
        (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
        (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
        (r"mask_emb", "masked_spec_embed"),
        (r"encoder\.pos_conv\.0\.bias", "encoder.pos_conv_embed.conv.bias"),
        # weight norm: fairseq's old-style weight_g / weight_v, or torch's parametrization names
        (r"encoder\.pos_conv\.0\.(?:weight_g|parametrizations\.weight\.original0)",
         "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
        (r"encoder\.pos_conv\.0\.(?:weight_v|parametrizations\.weight\.original1)",
         "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
        (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
        (r"encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
         r"encoder.layers.\1.attention.\2.\3"),
        (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
        (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
        (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
        (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    ]
    if mode == "default":  # group norm after the first conv only
        rules.append((r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",
                      r"feature_extractor.conv_layers.0.layer_norm.\1"))
    else:  # layer norm after every conv (TransposeLast, Fp32LayerNorm, TransposeLast)
        rules.append((r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",
                      r"feature_extractor.conv_layers.\1.layer_norm.\2"))
    return [(re.compile(p + pattern), target) for pattern, target in rules]


@dataclass
class Mapping:
    """Where every checkpoint tensor went."""

    mapped: Dict[str, str] = field(default_factory=dict)  # fairseq name -> transformers name
    left_out: Dict[str, str] = field(default_factory=dict)  # fairseq name -> why
    synthesized: Dict[str, str] = field(default_factory=dict)  # transformers name -> what it holds
    notes: List[str] = field(default_factory=list)


def map_tensors(src: Source, hf_prefix: str = "") -> Mapping:
    """Each checkpoint tensor's transformers name, or why it is left out; unknown tensors are refused."""
    rules = _rules(src)
    m = Mapping()
    unknown = []
    for name in src.tensors:
        if src.kind == "ctc" and name in ("w2v_encoder.proj.weight", "w2v_encoder.proj.bias"):
            m.mapped[name] = "lm_head." + name.rsplit(".", 1)[1]
            continue
        rel = name[len(src.prefix):] if name.startswith(src.prefix) else None
        if rel is not None and rel.startswith(PRETRAINING_HEADS):
            why = ("the quantizer: not part of Wav2Vec2Model, exported to quantizer.safetensors"
                   if rel.startswith("quantizer.") else "a pretraining loss head (not part of Wav2Vec2Model)")
            m.left_out[name] = why
            continue
        for pattern, target in rules:
            hit = pattern.fullmatch(name)
            if hit:
                m.mapped[name] = hf_prefix + hit.expand(target)
                break
        else:
            unknown.append(name)
    if unknown:
        raise ExportError(f"{src.path}: {len(unknown)} tensor(s) have no transformers counterpart, e.g. "
                          f"{', '.join(unknown[:5])}; refusing to export a model that would lose them")
    return m


def fill_state_dict(src: Source, m: Mapping, expected: Dict[str, torch.Tensor], hf_prefix: str = "") -> dict:
    """The transformers state dict: mapped tensors (shape-checked), and the few filled by construction."""
    out, dropped = {}, []
    for name, target in m.mapped.items():
        if target not in expected:
            if target == hf_prefix + "masked_spec_embed":  # transformers builds it only when masking is on
                m.left_out[name] = "the mask embedding: this transformers config masks nothing (mask_time_prob 0)"
                dropped.append(name)
                continue
            raise ExportError(f"{src.path}: tensor {name} maps to {target}, which the transformers model lacks")
        tensor = src.tensors[name]
        if tuple(tensor.shape) != tuple(expected[target].shape):
            raise ExportError(f"{src.path}: tensor {name} has shape {tuple(tensor.shape)} but {target} needs "
                              f"{tuple(expected[target].shape)}")
        out[target] = tensor.detach().to(torch.float32).clone()

    for name in dropped:
        del m.mapped[name]

    # fairseq has no post_extract_proj when the CNN's width equals the encoder's: the projection is the identity
    proj_w, proj_b = hf_prefix + "feature_projection.projection.weight", hf_prefix + "feature_projection.projection.bias"
    if proj_w not in out and proj_w in expected and src.prefix + "post_extract_proj.weight" not in src.tensors:
        rows, cols = expected[proj_w].shape
        if rows != cols:
            raise ExportError(f"{src.path}: no post_extract_proj, yet the CNN gives {cols} channels for a "
                              f"{rows}-wide encoder")
        out[proj_w] = torch.eye(rows)
        out[proj_b] = torch.zeros(rows)
        m.synthesized[proj_w] = "identity (fairseq has no post_extract_proj: CNN width = encoder width)"
        m.synthesized[proj_b] = "zeros (same)"

    if src.kind == "ctc":
        weight = float(src.outer.get("blank_weight", 0) or 0)
        if weight:
            out["lm_head.bias"] = out["lm_head.bias"].clone()
            out["lm_head.bias"][0] += weight
            m.notes.append(f"blank_weight {weight} (mode add) folded into lm_head.bias[0]")

    missing = sorted(set(expected) - set(out))
    if missing:
        raise ExportError(f"{src.path}: {len(missing)} transformers parameter(s) have no tensor in the checkpoint, "
                          f"e.g. {', '.join(missing[:5])}")
    return out


# ----------------------------------------------------------------------------- CTC vocabulary


def read_letter_dictionary(path) -> List[str]:
    """The symbols of a fairseq ``dict.ltr.txt`` (``SYMBOL COUNT`` per line), in file order."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} not found: give the fine-tuning letter dictionary (dict.ltr.txt beside the "
                          f"fine-tuning manifests) with --dict")
    symbols = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rstrip().split(" ")
        flags = parts[2:] if len(parts) > 2 else []
        if len(parts) < 2 or flags not in ([], ["#fairseq:overwrite"]):
            raise ExportError(f"{path}:{number}: expected 'SYMBOL COUNT', got {line!r}")
        symbols.append(parts[0])
    return symbols


def ctc_vocabulary(symbols: List[str]) -> Dict[str, int]:
    """token -> id for the CTC head, id ``i`` being output ``i`` of fairseq's head.

    fairseq's Dictionary puts ``<s> <pad> </s> <unk>`` at 0..3, then the file's symbols; the CTC
    criterion uses index 0 (``<s>``) as the blank. transformers' CTC tokenizer drops its pad
    token when decoding and its CTC loss uses ``pad_token_id`` as the blank, so index 0 is named
    ``<pad>`` here and index 1 (fairseq's pad, never a target) ``<s>``: the names swap, the ids do not.
    """
    vocab = {}
    for i, symbol in enumerate(["<pad>", "<s>", "</s>", "<unk>"] + list(symbols)):
        if symbol in vocab or (i >= 4 and symbol in FAIRSEQ_SPECIALS):
            raise ExportError(f"symbol {symbol!r} appears twice in the letter dictionary (fairseq refuses it too)")
        vocab[symbol] = i
    return vocab


def fairseq_dictionary_size(symbols: List[str]) -> int:
    return 4 + len(symbols)


# ----------------------------------------------------------------------------- quantizer


def quantizer_export(src: Source) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``(tensors, config)`` of the pretraining checkpoint's quantizer, for ``quantizer.safetensors/.json``.

    HyperVQ's tensors keep their names (the module of ``quantizers.hyperbolic_vq``); fairseq's stock
    Gumbel quantizer is renamed, by name, to ``quantizers.euclidean_gumbel_vq``'s layout (the same
    computation in eval mode: argmax of the projection's logits per group).
    """
    a = src.arch
    raw = {k[len("quantizer."):]: v for k, v in src.tensors.items() if k.startswith("quantizer.")}
    if not raw:
        raise ExportError(f"{src.path} has no quantizer tensors (quantize_targets=false, or saved without "
                          f"pretraining modules): nothing to tokenize with")
    layers = conv_layers(a)
    stride = math.prod(s for _, _, s in layers)
    vq_dim = _vq_dim(a)
    qtype = a.get("quantizer_type", "gumbel") if src.model_name == "hypervq_wav2vec2" else "gumbel"
    config = {
        "format": "hypervq-quantizer", "version": 1, "type": str(qtype),
        "dim": layers[-1][0], "num_vars": int(a["latent_vars"]), "groups": int(a["latent_groups"]),
        "combine_groups": False, "vq_dim": vq_dim,
        "weight_proj_depth": int(a.get("quantizer_depth", 1)), "weight_proj_factor": int(a.get("quantizer_factor", 3)),
        "activation": "gelu", "temp": [float(t) for t in _literal(a["latent_temp"])],
        "input": "extract_features (the layer-normed CNN features, B x T x C)",
        "frame_stride": stride, "sample_rate": int(src.task.get("sample_rate", 16000)),
        "normalize": bool(src.task.get("normalize", False)), "updates": src.updates,
        "fingerprint": tensors_fingerprint(raw), "checkpoint": os.path.basename(src.path),
    }
    if qtype == "hyperbolic":
        clip = a.get("hyperbolic_clip_radius", DEFAULT_CLIP_RADIUS)
        config.update(
            curvature=float(a.get("hyperbolic_curvature", DEFAULT_CURVATURE)),
            learn_curvature=bool(a.get("hyperbolic_learn_curvature", False)),
            clip_radius=None if clip is None else float(clip),
            clip_mode=str(a.get("hyperbolic_clip_mode", DEFAULT_CLIP_MODE)),
            logit_scale=float(a.get("hyperbolic_logit_scale", DEFAULT_LOGIT_SCALE)),
            learn_logit_scale=bool(a.get("hyperbolic_learn_logit_scale", False)),
            r_init=[float(r) for r in _literal(a.get("hyperbolic_r_init", (0.1, 0.5)))],
        )
        tensors = dict(raw)
    else:
        tensors = _stock_gumbel_tensors(src, raw, config)
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}, config


def _stock_gumbel_tensors(src: Source, raw: Dict[str, torch.Tensor], config: dict) -> Dict[str, torch.Tensor]:
    """fairseq's ``GumbelVectorQuantizer`` names -> ``EuclideanGumbelQuantizer``'s, by name."""
    depth, groups, num_vars = config["weight_proj_depth"], config["groups"], config["num_vars"]
    out = {}
    for name, tensor in raw.items():
        if name == "vars":
            if tensor.shape[1] == num_vars and groups > 1:
                config["combine_groups"] = True
                out["vars"] = tensor.reshape(1, num_vars, -1)
            else:
                out["vars"] = tensor.reshape(groups, num_vars, -1)
            continue
        hit = re.fullmatch(r"weight_proj\.(weight|bias)", name) if depth <= 1 else None
        if hit:
            out[name] = tensor
            continue
        hit = re.fullmatch(r"weight_proj\.(\d+)\.0\.(weight|bias)", name)  # hidden blocks: Sequential(Linear, act)
        if hit and depth > 1:
            out[f"weight_proj.{2 * int(hit.group(1))}.{hit.group(2)}"] = tensor
            continue
        hit = re.fullmatch(r"weight_proj\.(\d+)\.(weight|bias)", name)  # the last Linear of a deeper projection
        if hit and depth > 1 and int(hit.group(1)) == depth - 1:
            out[f"weight_proj.{2 * (depth - 1)}.{hit.group(2)}"] = tensor
            continue
        raise ExportError(f"{src.path}: quantizer tensor quantizer.{name} is not part of fairseq's "
                          f"GumbelVectorQuantizer (depth {depth}); refusing to guess where it goes")
    return out


def _final_dim(a: dict) -> int:
    return int(a["final_dim"]) if int(a.get("final_dim", 0) or 0) > 0 else int(a["encoder_embed_dim"])


def _vq_dim(a: dict) -> int:
    """The quantizer's output width, as fairseq's wav2vec 2.0 builds it (latent_dim, else final_dim)."""
    return int(a["latent_dim"]) if int(a.get("latent_dim", 0) or 0) > 0 else _final_dim(a)


def _literal(value):
    """A tuple setting as fairseq's argparse tools may store it: a string such as ``"(2, 0.5, 0.999995)"``."""
    return ast.literal_eval(value) if isinstance(value, str) else value


# ----------------------------------------------------------------------------- the export


@dataclass
class ExportResult:
    out: Path
    kind: str
    model_class: str
    mapped: int
    left_out: Dict[str, str]
    synthesized: Dict[str, str]
    notes: List[str]
    files: List[str]


REPORT = "export.json"  # what the export did; also how --overwrite recognises a folder it may replace


def _is_export(folder: Path) -> bool:
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and "transformers_class" in report and "mapped" in report


def export(checkpoint, out, *, dictionary=None, overwrite: bool = False) -> ExportResult:
    """Export ``checkpoint`` to the transformers folder ``out`` (see the module's docstring)."""
    transformers, st = require_hf()
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not _is_export(out):
        raise OutputError(f"{out} holds files that no export wrote (no {REPORT} from hypervq-export-hf): "
                          f"--overwrite replaces only an earlier export or an empty folder; choose another OUT")
    src = read_source(checkpoint)
    check_representable(src)

    symbols = None
    if src.kind == "ctc":
        if dictionary is None:
            raise ExportError(f"{checkpoint} is a CTC model: give its letter dictionary with --dict "
                              f"(dict.ltr.txt beside the fine-tuning manifests) for the processor's vocabulary")
        symbols = read_letter_dictionary(dictionary)
        head = src.tensors.get("w2v_encoder.proj.weight")
        if head is None:
            raise ExportError(f"{checkpoint}: the fine-tuned model has no CTC head (w2v_encoder.proj)")
        size = fairseq_dictionary_size(symbols)
        if head.shape[0] != size:
            raise ExportError(f"{dictionary} gives {size} CTC outputs (4 fairseq specials + {size - 4} symbols) but "
                              f"the head of {checkpoint} has {head.shape[0]}: is it the fine-tuning run's dictionary?")
    elif dictionary is not None:
        raise ExportError(f"--dict is for CTC models; {checkpoint} is a pretraining checkpoint")

    config = transformers.Wav2Vec2Config(**hf_config_kwargs(src, None if symbols is None else
                                                            fairseq_dictionary_size(symbols)))
    cls = transformers.Wav2Vec2ForCTC if src.kind == "ctc" else transformers.Wav2Vec2Model
    hf_prefix = "wav2vec2." if src.kind == "ctc" else ""
    mapping = map_tensors(src, hf_prefix)
    model = cls(config).eval()  # its random initial weights are all replaced below
    expected = model.state_dict()
    weights = fill_state_dict(src, mapping, expected, hf_prefix)
    model.load_state_dict(weights, strict=True)

    with atomic_folder(out) as staging:  # the folder appears complete or not at all
        model.save_pretrained(staging, safe_serialization=True)
        extractor = transformers.Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=int(src.task.get("sample_rate", 16000)), padding_value=0.0,
            do_normalize=bool(src.task.get("normalize", False)),
            # transformers' advice: group-norm CNNs are run without a mask on unpadded input; layer-norm ones take one
            return_attention_mask=config.feat_extract_norm == "layer")
        if src.kind == "ctc":
            vocab_file = staging / "vocab.json"
            vocab_file.write_text(json.dumps(ctc_vocabulary(symbols), ensure_ascii=False, indent=1), encoding="utf-8")
            tokenizer = transformers.Wav2Vec2CTCTokenizer(
                str(vocab_file), bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                word_delimiter_token="|", do_lower_case=False, clean_up_tokenization_spaces=False)
            transformers.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(staging)
        else:
            extractor.save_pretrained(staging)
            if any(k.startswith("quantizer.") for k in src.tensors):
                q_tensors, q_config = quantizer_export(src)
                st.save_file(q_tensors, str(staging / "quantizer.safetensors"))
                (staging / "quantizer.json").write_text(json.dumps(q_config, indent=1) + "\n", encoding="utf-8")
            else:
                mapping.notes.append("the checkpoint has no quantizer (quantize_targets=false, or saved without "
                                     "pretraining modules): no quantizer files written")
        report = {
            "source": os.path.basename(str(checkpoint)), "source_model": src.model_name, "kind": src.kind,
            "transformers_class": cls.__name__, "transformers_version": transformers.__version__,
            "updates": src.updates, "mapped": mapping.mapped, "left_out": mapping.left_out,
            "synthesized": mapping.synthesized, "notes": mapping.notes,
        }
        (staging / REPORT).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        files = sorted(p.name for p in staging.iterdir())
    return ExportResult(out, src.kind, cls.__name__, len(mapping.mapped), mapping.left_out, mapping.synthesized,
                        mapping.notes, files)


# ----------------------------------------------------------------------------- checking an export


@torch.no_grad()
def verify(checkpoint, out, manifest, limit: int = 8, dictionary=None) -> dict:
    """Run fairseq's model and the exported one on the first ``limit`` utterances of ``manifest``.

    Both models get the same input tensor (fairseq's: the waveform, layer-normed when the task
    normalises). Returns the largest absolute differences (``hidden_states``: every layer's
    output and ``last_hidden_state``; ``extract_features``; ``logits`` for CTC), the frames
    whose exported-quantizer ids differ from ``hypervq-tokenize``'s (pretraining), and, when the
    task normalises, how far the transformers feature extractor's normalisation (and the
    ``last_hidden_state`` computed from it) is from fairseq's.
    """
    import torch.nn.functional as F

    transformers, _ = require_hf()
    from ..data.audio import read_audio
    from ..quantizers.exported import load_exported_quantizer

    src = read_source(checkpoint)
    lines = Path(manifest).read_text(encoding="utf-8").splitlines()
    root = Path(lines[0])
    files = [root / line.split("\t")[0] for line in lines[1:1 + limit] if line.strip()]
    normalize = bool(src.task.get("normalize", False))
    report = {"utterances": 0, "frames": 0, "hidden_states": 0.0, "extract_features": 0.0}
    if src.kind == "pretraining":
        from .checkpoints import load_pretrained
        from .encode import encode

        pm = load_pretrained(checkpoint)
        fs = pm.model
        hf = transformers.Wav2Vec2Model.from_pretrained(out).eval()
        quantizer = load_exported_quantizer(out)
        report["token_frames_differing"] = 0
    else:
        from fairseq import checkpoint_utils

        task_data = str(Path(dictionary).parent) if dictionary else src.task.get("data")  # fairseq reads the dict there
        models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": task_data} if task_data else None)
        ctc = models[0].eval()
        fs = ctc.w2v_encoder.w2v_model
        hf = transformers.Wav2Vec2ForCTC.from_pretrained(out).eval()
        report["logits"] = 0.0
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(out)
    if normalize:
        report["feature_extractor_input"] = 0.0
        report["last_hidden_state_via_feature_extractor"] = 0.0

    def worst(key, a, b):
        report[key] = max(report[key], float((a.float() - b.float()).abs().max()))

    for path in files:
        wave = torch.as_tensor(read_audio(str(path), expected_rate=extractor.sampling_rate), dtype=torch.float32)
        x = (F.layer_norm(wave, wave.shape) if normalize else wave)[None]
        if normalize:
            theirs_in = extractor(wave.numpy(), sampling_rate=extractor.sampling_rate, return_tensors="pt").input_values
            worst("feature_extractor_input", theirs_in, x)
        res = fs.extract_features(x, padding_mask=None, mask=False)
        model = hf if src.kind == "pretraining" else hf.wav2vec2
        o = model(x, output_hidden_states=True)
        for i, (layer_out, _, _) in enumerate(res["layer_results"]):
            worst("hidden_states", o.hidden_states[i + 1], layer_out.transpose(0, 1))
        worst("hidden_states", o.last_hidden_state, res["x"])
        if normalize:  # the feature extractor normalises with eps 1e-7, fairseq's task with layer_norm's 1e-5
            worst("last_hidden_state_via_feature_extractor", model(theirs_in).last_hidden_state, res["x"])
        worst("extract_features", o.extract_features, res["features"])
        if src.kind == "pretraining":
            ids = quantizer.tokens(o.extract_features)[0]
            report["token_frames_differing"] += int((ids != encode(pm, [wave])[0]).any(-1).sum())
        else:
            worst("logits", hf.lm_head(o.last_hidden_state), ctc.get_logits(ctc(source=x, padding_mask=None)).transpose(0, 1))
        report["utterances"] += 1
        report["frames"] += int(o.last_hidden_state.shape[1])
    return report
