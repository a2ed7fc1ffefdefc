"""The registered hypervq_wav2vec2 model, in process: quantizer swap, stock features, monitoring."""
import dataclasses
import math
import os

import pytest
import torch

fairseq = pytest.importorskip("fairseq")  # part of install_requires; skip only where it cannot import

from fairseq.models import MODEL_DATACLASS_REGISTRY, MODEL_REGISTRY  # noqa: E402
from fairseq.modules import GumbelVectorQuantizer  # noqa: E402

import hypervq_fairseq  # noqa: E402,F401  (registers the model and the task)
from hypervq_fairseq.fairseq.patches import UserDirConflictError, check_user_dir  # noqa: E402
from hypervq_fairseq.fairseq.models.hypervq_wav2vec2 import (  # noqa: E402
    DeadCodeMonitor,
    HyperVQWav2Vec2Config,
    HyperVQWav2Vec2Model,
)
from hypervq_fairseq.quantizers import HyperbolicVectorQuantizer  # noqa: E402

TINY = dict(
    quantize_targets=True,
    conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
    encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
    conv_pos=16, conv_pos_groups=4, final_dim=16, latent_vars=16, latent_groups=2,
    mask_length=3, num_negatives=5, latent_temp=(2.0, 0.5, 0.9), dead_code_window=3,
    encoder_layerdrop=0.0,
)


def tiny(**overrides) -> HyperVQWav2Vec2Model:
    torch.manual_seed(0)
    return HyperVQWav2Vec2Model.build_model(HyperVQWav2Vec2Config(**{**TINY, **overrides}))


def audio(batch=2, samples=16000):
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(1))


def test_registered_with_a_config_subclassing_wav2vec2():
    from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config

    assert MODEL_REGISTRY["hypervq_wav2vec2"] is HyperVQWav2Vec2Model
    assert MODEL_DATACLASS_REGISTRY["hypervq_wav2vec2"] is HyperVQWav2Vec2Config
    assert issubclass(HyperVQWav2Vec2Config, Wav2Vec2Config)
    stock = {f.name for f in dataclasses.fields(Wav2Vec2Config)}
    ours = [f for f in dataclasses.fields(HyperVQWav2Vec2Config) if f.name not in stock]
    assert {f.name for f in ours} >= {"quantizer_type", "hyperbolic_curvature", "hyperbolic_clip_radius",
                                      "hyperbolic_r_init", "hyperbolic_learn_curvature", "dead_code_window"}
    for f in ours:
        assert f.metadata.get("help"), f"field {f.name} has no help text"


def test_quantizers_swapped_and_shared():
    model = tiny(quantize_input=True, same_quantizer=True)
    assert isinstance(model.quantizer, HyperbolicVectorQuantizer)
    assert model.input_quantizer is model.quantizer
    separate = tiny(quantize_input=True, same_quantizer=False)
    assert isinstance(separate.input_quantizer, HyperbolicVectorQuantizer)
    assert separate.input_quantizer is not separate.quantizer
    assert separate.input_quantizer.vq_dim == TINY["encoder_embed_dim"]
    stock = tiny(quantizer_type="gumbel")
    assert isinstance(stock.quantizer, GumbelVectorQuantizer)
    assert not any(isinstance(m, HyperbolicVectorQuantizer) for m in stock.modules())


@pytest.mark.parametrize("quantizer_type", ["hyperbolic", "gumbel"])
def test_training_forward_loss_and_gradients(quantizer_type):
    model = tiny(quantizer_type=quantizer_type, codebook_negatives=3).train()
    out = model(source=audio())
    logits = model.get_logits(out)
    # positives + 5 sampled negatives + 3 codebook negatives per masked frame
    assert logits.shape[-1] == 1 + TINY["num_negatives"] + 3
    loss = torch.nn.functional.cross_entropy(logits.float(), model.get_targets(None, out), reduction="sum")
    extra = model.get_extra_losses(out)
    assert len(extra) == 2  # diversity from prob_perplexity, feature penalty
    diversity = extra[0]
    assert 0 <= float(diversity) < 1 and diversity.requires_grad
    total = loss + 0.1 * out["x"].shape[1] * sum(extra)
    assert torch.isfinite(total)
    total.backward()
    q = model.quantizer
    grads = [p.grad for p in q.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_diagnostics_in_output_and_hyperbolic_ones_absent_for_gumbel():
    out = tiny().train()(source=audio())
    for key in ("code_perplexity_g0", "code_perplexity_g1", "prob_perplexity_g0", "prob_perplexity_g1",
                "dead_codes", "hyperbolic_radius"):
        assert key in out, key
    assert float(out["code_perplexity_g0"]) + float(out["code_perplexity_g1"]) == pytest.approx(
        float(out["code_perplexity"]), rel=1e-5)
    assert 0 <= out["dead_codes"] <= 2 * TINY["latent_vars"]
    assert float(out["hyperbolic_radius"]) > 0
    gumbel = tiny(quantizer_type="gumbel").train()(source=audio())
    assert "hyperbolic_radius" not in gumbel and "dead_codes" in gumbel and "prob_perplexity" in gumbel
    quiet = tiny(quantizer_diagnostics=False).train()(source=audio())
    assert "dead_codes" not in quiet and "code_perplexity_g0" not in quiet


def test_temperature_anneals_through_set_num_updates():
    model = tiny()
    model.set_num_updates(7)
    assert model.quantizer.curr_temp == pytest.approx(max(2.0 * 0.9**7, 0.5))
    out = model.train()(source=audio())
    assert out["temp"] == pytest.approx(2.0 * 0.9**7)
    model.set_num_updates(1000)
    assert model.quantizer.curr_temp == 0.5


def test_dead_code_window_slides_with_updates():
    monitor = DeadCodeMonitor(groups=1, num_vars=4, window=2)
    assert monitor.dead_codes() is None
    monitor.observe(torch.tensor([[3.0, 0, 0, 0]]))
    assert monitor.dead_codes() == 3
    monitor.set_num_updates(1)
    monitor.observe(torch.tensor([[0, 1.0, 0, 0]]))
    assert monitor.dead_codes() == 2          # codes 0 and 1 used in the last 2 updates
    monitor.set_num_updates(2)                # slot of update 0 is reused: code 0 forgotten
    monitor.observe(torch.tensor([[0, 0, 0, 0.0]]))
    assert monitor.dead_codes() == 3
    with pytest.raises(ValueError, match="dead_code_window"):
        DeadCodeMonitor(1, 4, 0)


def test_quantize_and_remove_pretraining_modules():
    model = tiny().eval()
    x, targets = model.quantize(audio())
    assert x.shape[:2] == targets.shape[:2] and targets.shape[-1] == TINY["latent_groups"]
    assert targets.max() < TINY["latent_vars"] and x.shape[-1] == TINY["final_dim"]
    model.remove_pretraining_modules()
    assert model.quantizer is None and model.monitor is None
    feats = model.extract_features(audio(), padding_mask=None)["x"]
    assert feats.shape[-1] == TINY["encoder_embed_dim"] and torch.isfinite(feats).all()


def test_bad_hyperbolic_options_are_named():
    with pytest.raises(ValueError, match="r_init"):
        tiny(hyperbolic_r_init=(0.0, 0.0))
    with pytest.raises(ValueError, match="hyperbolic_r_init"):
        tiny(hyperbolic_r_init="(0.1, 0.2, 0.3)")
    assert tiny(hyperbolic_r_init="(0.2, 0.3)").quantizer.offsets.min() >= 0.2


def test_user_dir_guard(tmp_path):
    installed = os.path.dirname(hypervq_fairseq.__file__)
    check_user_dir(None)
    check_user_dir(installed)                   # the loaded copy: fine
    check_user_dir(str(tmp_path / "elsewhere"))  # another package name: not ours to judge
    clone = tmp_path / "clone"
    (clone / "hypervq_fairseq").mkdir(parents=True)
    (clone / "setup.py").write_text("")
    with pytest.raises(UserDirConflictError) as err:
        check_user_dir(str(clone / "hypervq_fairseq"))
    message = str(err.value)
    assert installed in message and f"pip install -e {clone}" in message
    assert fairseq.utils.import_user_module._hypervq_patch


@pytest.mark.parametrize("size", ["", "_tiny"])
def test_configs_pair_up_and_build(size):
    """hypervq_w2v2*.yaml and gumbel_w2v2*.yaml differ only in the quantizer; the model builds."""
    from pathlib import Path

    from fairseq.dataclass.utils import merge_with_parent
    from omegaconf import OmegaConf

    configs = Path(__file__).resolve().parents[1] / "configs"
    hyper = OmegaConf.to_container(OmegaConf.load(configs / f"hypervq_w2v2{size}.yaml"))
    gumbel = OmegaConf.to_container(OmegaConf.load(configs / f"gumbel_w2v2{size}.yaml"))
    assert hyper["model"].pop("quantizer_type") == "hyperbolic"
    assert gumbel["model"].pop("quantizer_type") == "gumbel"
    assert hyper == gumbel
    assert hyper["task"]["data"] == "???"
    for key in ("tensorboard_logdir", "fp16", "user_dir"):
        assert key in hyper["common"]
    assert {"save_dir"} <= set(hyper["checkpoint"]) and {"max_update", "update_freq"} <= set(hyper["optimization"])
    assert "max_tokens" in hyper["dataset"] and "distributed_world_size" in hyper["distributed_training"]
    assert set(hyper["criterion"]["log_keys"]) >= {"code_perplexity", "prob_perplexity", "temp", "dead_codes",
                                                  "hyperbolic_radius", "code_perplexity_g0", "prob_perplexity_g1"}

    cfg = merge_with_parent(HyperVQWav2Vec2Config(), OmegaConf.create(hyper["model"]))
    model = HyperVQWav2Vec2Model.build_model(cfg)
    q = model.quantizer
    assert isinstance(q, HyperbolicVectorQuantizer)
    assert (q.groups, q.num_vars, q.vq_dim) == (cfg.latent_groups, cfg.latent_vars, cfg.final_dim)
    if size == "":  # the paper's BASE setting
        assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.latent_vars, cfg.latent_groups, cfg.final_dim) == (
            12, 768, 320, 2, 256)
        assert hyper["common"]["fp16"] and hyper["dataset"]["max_tokens"] == 1400000
        assert hyper["distributed_training"]["distributed_world_size"] == 64
        assert hyper["optimization"]["max_update"] == 400000 and hyper["lr_scheduler"]["warmup_updates"] == 32000


def test_plugin_dataclasses_work_with_fairseq_argparse_tools():
    """fairseq-train/-validate build argparse options from the dataclasses; string annotations
    (``from __future__ import annotations``) break that with 'field should be a type'."""
    import argparse

    from fairseq.dataclass.utils import gen_parser_from_dataclass
    from fairseq.tasks import TASK_DATACLASS_REGISTRY

    import hypervq_fairseq

    ours = [dc for dc in list(MODEL_DATACLASS_REGISTRY.values()) + list(TASK_DATACLASS_REGISTRY.values())
            if dc.__module__.startswith(hypervq_fairseq.__name__)]
    assert HyperVQWav2Vec2Config in ours
    for dc in ours:
        parser = argparse.ArgumentParser()
        gen_parser_from_dataclass(parser, dc())  # raises RuntimeError on string annotations
        assert parser._actions, dc


def test_half_precision_model_keeps_monitoring_finite():
    """fairseq's --fp16/--bf16 cast the whole model; the diagnostics must survive the cast."""
    model = tiny().train().to(torch.bfloat16)
    assert model.monitor.used.dtype == torch.bool  # the cast leaves the usage window alone
    out = model(source=audio().to(torch.bfloat16))
    loss = model.get_logits(out).float().logsumexp(-1).sum() + sum(model.get_extra_losses(out))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.quantizer.parameters() if p.grad is not None)
    for key in ("prob_perplexity", "code_perplexity_g0", "hyperbolic_radius"):
        assert math.isfinite(float(out[key])), key
    assert out["dead_codes"] < 2 * TINY["latent_vars"]


@pytest.mark.parametrize("quantizer_type", ["hyperbolic", "gumbel"])
def test_both_quantizers_report_selection_statistics(quantizer_type):
    """The stock quantizer is watched through hooks; its outputs stay those of fairseq's module."""
    torch.manual_seed(0)
    model = tiny(quantizer_type=quantizer_type).train()
    out = model(source=audio())
    for key in ("sample_is_argmax", "sample_is_argmax_g0", "logit_gap", "logit_std_g1", "dead_codes"):
        assert math.isfinite(float(out[key])), key
    assert 0 < float(out["sample_is_argmax"]) <= 1
    if quantizer_type == "gumbel":
        assert isinstance(model.quantizer, GumbelVectorQuantizer)
        q = model.quantizer.eval()
        y = torch.randn(2, 7, model.quantizer.weight_proj.in_features)
        torch.manual_seed(1)
        watched = q(y, produce_targets=False)
        assert "targets" not in watched  # outside the model's forward, nothing is asked of it
    model.eval()
    assert float(model(source=audio())["sample_is_argmax"]) == 1.0
