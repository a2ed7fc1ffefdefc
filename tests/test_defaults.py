"""One set of HyperVQ defaults: the quantizer class, the fairseq model config, every shipped YAML.

A shipped config may differ from the class default only with a comment on that line naming the
measurement behind it (the word "measured" and where: BENCHMARKS.md, docs/...).
"""
import inspect
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hypervq_fairseq.quantizers import HyperbolicVectorQuantizer

REPO = Path(__file__).resolve().parents[1]
# option of the class -> field of the fairseq model config
OPTIONS = {
    "curvature": "hyperbolic_curvature",
    "learn_curvature": "hyperbolic_learn_curvature",
    "clip_radius": "hyperbolic_clip_radius",
    "clip_mode": "hyperbolic_clip_mode",
    "r_init": "hyperbolic_r_init",
    "logit_scale": "hyperbolic_logit_scale",
    "learn_logit_scale": "hyperbolic_learn_logit_scale",
    "reseed_every": "hyperbolic_reseed_every",
}


def class_defaults() -> dict:
    params = inspect.signature(HyperbolicVectorQuantizer.__init__).parameters
    return {name: params[name].default for name in OPTIONS}


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(map(float, a)) == list(map(float, b))
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def test_the_model_config_defaults_are_the_class_defaults():
    pytest.importorskip("fairseq")
    from hypervq_fairseq.fairseq.models.hypervq_wav2vec2 import HyperVQWav2Vec2Config

    cfg = HyperVQWav2Vec2Config()
    for option, field in OPTIONS.items():
        value = getattr(cfg, field)
        value = str(value) if option == "clip_mode" else value
        assert same(value, class_defaults()[option]), f"{field}={value!r} but the quantizer's {option} defaults to {class_defaults()[option]!r}"


YAMLS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "finetune" not in p.parts)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_configs_use_the_defaults_or_say_why(path):
    model = OmegaConf.to_container(OmegaConf.load(path)).get("model", {})
    if model.get("quantizer_type", "hyperbolic") != "hyperbolic":
        return
    lines = path.read_text().splitlines()
    defaults = class_defaults()
    for option, field in OPTIONS.items():
        if field not in model:
            continue
        if same(model[field], defaults[option]):
            continue
        line = next(l for l in lines if re.match(rf"\s*{field}\s*:", l))
        assert "measured" in line.split("#", 1)[-1] if "#" in line else False, (
            f"{path.name}: {field}={model[field]!r} differs from the quantizer's default {defaults[option]!r} "
            f"without a comment naming the measurement")


def test_the_vision_trainers_use_the_defaults():
    """VQ-VAE, compare and VQ-SA build HyperVQ through these adapters and this command line."""
    from hypervq_fairseq.vision.cli import build_parser
    from hypervq_fairseq.vision.quantizers import HyperEmbMatVQ, HyperVQ

    defaults = class_defaults()
    for adapter in (HyperVQ, HyperEmbMatVQ):
        params = inspect.signature(adapter.__init__).parameters
        for option in ("clip_radius", "clip_mode", "logit_scale"):
            assert same(params[option].default, defaults[option]), f"{adapter.__name__}.{option}"
    q = HyperVQ(4, 8).inner
    assert q.clip_radius == defaults["clip_radius"] and float(q.log_logit_scale.exp()[0]) == pytest.approx(defaults["logit_scale"])
    args = build_parser().parse_args(["train", "--out", "x"])
    assert same(args.clip_radius, defaults["clip_radius"]) and args.clip_mode == defaults["clip_mode"]
    assert same(args.logit_scale, defaults["logit_scale"])
