"""Precision: fairseq's fp16 and bf16 paths, autocast, half quantizer parameters, extreme inputs.

Measured on CPU (docs/reliability.md): ``common.bf16=true`` runs as is; ``common.fp16=true`` dies in
fairseq's ``FP16Optimizer`` (flat fp32 copy on a CUDA device) unless
``common.fp16_no_flatten_grads=true``, with which fairseq's real fp16 path (half model, fp32
master weights, dynamic loss scaling) runs. Both are trained here through ``fairseq-hydra-train``.
In process: a full wav2vec 2.0 + HyperVQ training step with real speech under CPU autocast
(bf16 and fp16) and with the whole model cast to half, as fairseq does; and the quantizer driven
at the ball's boundary and with input norms up to 1e6 in fp32/bf16/fp16, against float64.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from fairseq.criterions.wav2vec_criterion import Wav2vecCriterion

import hypervq_fairseq  # noqa: F401
from hypervq_fairseq.fairseq.models.hypervq_wav2vec2 import HyperVQWav2Vec2Config, HyperVQWav2Vec2Model
from hypervq_fairseq.quantizers import HyperbolicVectorQuantizer
from helpers.runs import run, train_command

HALF = (torch.float16, torch.bfloat16)
TINY = dict(quantize_targets=True, conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
            encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
            conv_pos=16, conv_pos_groups=4, final_dim=16, latent_vars=16, latent_groups=2, mask_length=3,
            num_negatives=5, latent_temp=(2.0, 0.5, 0.9), encoder_layerdrop=0.0)


# -- fairseq's own fp16 / bf16 training paths ----------------------------------------------------

@pytest.mark.parametrize("precision", [
    ["common.fp16=true", "common.fp16_no_flatten_grads=true"],
    ["common.bf16=true"],
], ids=["fp16", "bf16"])
@pytest.mark.slow
def test_fairseq_low_precision_pretraining_has_finite_losses(tiny_speech_manifest, tmp_path, precision):
    save = tmp_path / "ckpt"
    log = run(train_command(str(tiny_speech_manifest), str(save),
                            ["task._name=hypervq_audio_pretraining", "optimization.max_update=3", *precision]),
              cwd=str(tmp_path), timeout=400)
    assert log.returncode == 0, log.tail()
    updates = log.updates
    assert sorted(updates) == [1, 2, 3]
    for n, rec in updates.items():
        for key in ("loss", "loss_0", "loss_1", "loss_2", "prob_perplexity", "code_perplexity", "gnorm"):
            assert math.isfinite(float(rec[key])), (n, key, rec[key])
    assert math.isfinite(float(log.records["valid"][-1]["valid_loss"]))
    state = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    # fairseq's half path really ran: the model cast to half with fp32 master weights (it saves
    # the weights as fp32, so the optimizer's name is the evidence), plus loss scaling for fp16
    assert state["optimizer_history"][-1]["optimizer_name"] == "FP16Optimizer"
    half = "fp16" if "common.fp16=true" in precision else "bf16"
    assert state["cfg"]["common"][half] is True
    assert ("loss_scale" in updates[3]) == (half == "fp16")


# -- a training step in process: autocast and half models ------------------------------------------

@pytest.fixture(scope="module")
def speech_batch(tiny_speech_manifest):
    """A real batch from the tiny corpus through the task's dataset and collater."""
    from omegaconf import OmegaConf

    from hypervq_fairseq.fairseq.tasks import HyperVQAudioPretrainingConfig, HyperVQAudioPretrainingTask

    cfg = OmegaConf.structured(HyperVQAudioPretrainingConfig(data=str(tiny_speech_manifest), max_sample_size=16000,
                                                             min_sample_size=4000))
    root = OmegaConf.create({"common": {"tpu": False, "seed": 1, "fp16": False, "fp16_no_flatten_grads": False,
                                        "memory_efficient_fp16": False}, "task": cfg})
    task = HyperVQAudioPretrainingTask.setup_task(root.task)
    task.load_dataset("valid")
    ds = task.datasets["valid"]
    return task, ds.collater([ds[i] for i in range(len(ds))])


def _step(task, batch, model, autocast_dtype=None, input_dtype=None):
    crit = Wav2vecCriterion(task, infonce=True, loss_weights=[0.1, 10], log_keys=["prob_perplexity", "temp"])
    if input_dtype is not None:
        batch = {**batch, "net_input": {**batch["net_input"], "source": batch["net_input"]["source"].to(input_dtype)}}
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        loss, sample_size, logs = crit(model, batch)
    loss.float().backward()
    return loss, logs


def _model(task, dtype=None):
    """The tiny model as the task builds it (config checks, autocast-safe masking)."""
    torch.manual_seed(0)
    model = task.build_model(OmegaConf.structured(HyperVQWav2Vec2Config(_name="hypervq_wav2vec2", **TINY))).train()
    assert isinstance(model, HyperVQWav2Vec2Model)
    return model if dtype is None else model.to(dtype)


@pytest.mark.parametrize("dtype", HALF, ids=["fp16", "bf16"])
def test_training_step_under_cpu_autocast_is_finite_and_quantizes_in_fp32(speech_batch, dtype):
    task, batch = speech_batch
    model = _model(task)
    seen = {}
    model.quantizer.register_forward_hook(
        lambda m, i, o: seen.update(given=i[0].dtype, x=o["x"].dtype, ppl=o["prob_perplexity"].dtype))
    loss, logs = _step(task, batch, model, autocast_dtype=dtype)
    assert torch.isfinite(loss) and math.isfinite(logs["prob_perplexity"])
    assert seen["ppl"] == torch.float32 and seen["x"] == seen["given"]  # fp32 inside, the caller's dtype out
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 10 and all(torch.isfinite(g).all() for g in grads)
    assert model.quantizer.normals.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", HALF, ids=["fp16", "bf16"])
def test_training_step_with_the_whole_model_in_half(speech_batch, dtype):
    """What fairseq's --fp16/--bf16 do to the model: every parameter and input cast to half."""
    task, batch = speech_batch
    model = _model(task, dtype)
    assert model.quantizer.normals.dtype == dtype and model.quantizer.log_curvature.dtype == dtype
    loss, logs = _step(task, batch, model, input_dtype=dtype)
    assert torch.isfinite(loss.float()) and math.isfinite(logs["prob_perplexity"])
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert p.grad.dtype == dtype and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("dtype", HALF, ids=["fp16", "bf16"])
def test_half_quantizer_parameters_get_fp32_math(speech_batch, dtype):
    """Half storage only rounds the parameters: the choice equals an fp32 quantizer holding the
    same rounded values, on the real features of the batch."""
    task, batch = speech_batch
    model = _model(task).eval()
    with torch.no_grad():
        feats = model.feature_extractor(batch["net_input"]["source"]).transpose(1, 2)
        feats = model.layer_norm(feats)
    q_half = _clone(model.quantizer).to(dtype).eval()
    q_rounded = _clone(q_half).float().eval()
    with torch.no_grad():
        y_half, t_half = q_half.forward_idx(feats.to(dtype))
        y_round, t_round = q_rounded.forward_idx(feats.to(dtype).float())
    assert torch.equal(t_half, t_round) and y_half.dtype == dtype
    assert torch.equal(y_half, y_round.to(dtype))


def _clone(q):
    """A fresh quantizer with ``q``'s shape and values (deepcopy would follow the model's hooks)."""
    twin = HyperbolicVectorQuantizer(q.input_dim, q.num_vars, (q.max_temp, q.min_temp, q.temp_decay), q.groups,
                                     q.combine_groups, q.vq_dim, q.time_first).to(q.normals.dtype)
    twin.load_state_dict(q.state_dict())
    return twin.train(q.training)


# -- quantizer stress: the ball's boundary and norms up to 1e6 -----------------------------------

def _quantizer(num_vars=32, seed=0):
    torch.manual_seed(seed)
    return HyperbolicVectorQuantizer(24, num_vars, (2.0, 0.5, 0.9), 2, False, 16, True)


def _clear(logits64, rel=1e-4):
    """Rows whose top two logits differ by more than ``rel`` of their scale (not a near-tie)."""
    top = logits64.topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]) > rel * top.abs().amax(-1).clamp_min(1.0)


# largest finite norm each input dtype can carry (fp16 tops out at 65504)
NORMS = {torch.float32: [1e-6, 1.0, 5.0, 9.0, 30.0, 1e3, 1e5, 1e6], torch.bfloat16: [1e-6, 1.0, 9.0, 1e3, 1e6],
         torch.float16: [1e-3, 1.0, 9.0, 1e3, 3e4]}


@pytest.mark.parametrize("dtype", [torch.float32, *HALF], ids=["fp32", "fp16", "bf16"])
def test_stress_extreme_inputs_stay_finite_and_pick_the_float64_code(dtype):
    q = _quantizer().to(dtype).train()
    q64 = copy.deepcopy(q).double().eval()
    gen = torch.Generator().manual_seed(3)
    for norm in NORMS[dtype]:
        x = (F.normalize(torch.randn(4, 25, 24, generator=gen), dim=-1) * norm).to(dtype).requires_grad_()
        out = q(x)
        loss = out["x"].float().square().mean() + (out["num_vars"] - out["prob_perplexity"]) / out["num_vars"]
        loss.backward()
        assert torch.isfinite(out["x"]).all() and math.isfinite(float(out["prob_perplexity"])), norm
        for name, p in [("x", x), *q.named_parameters()]:
            assert p.grad is not None and torch.isfinite(p.grad).all(), (norm, name)
        q.zero_grad()
        # eval choice against float64 on the same (rounded) input and parameters
        q.eval()
        with torch.no_grad():
            _, targets = q.forward_idx(x.detach())
            rows = x.detach().double().reshape(-1, 24)
            logits64 = q64.logits(q64.tangent(rows))
        q.train()
        clear = _clear(logits64)
        assert clear.float().mean() > 0.9, norm
        assert torch.equal(targets.reshape(-1, 2)[clear], logits64.argmax(-1)[clear]), norm


@pytest.mark.parametrize("s", [8.0, 9.5, 15.0, 15.01, 40.0, 1e3, 1e6])
def test_stress_tangent_vectors_at_the_boundary(s):
    """Points with c|x|^2 = tanh(s)^2 == 1 in fp32 (s >= 9): logits and their gradients stay
    finite and the argmax equals float64's, on both sides of the log-domain switch (2s = 30)."""
    q = _quantizer(num_vars=64)
    gen = torch.Generator().manual_seed(5)
    v = F.normalize(torch.randn(200, 2, 8, generator=gen, dtype=torch.float64), dim=-1) * s
    assert bool((torch.tanh(v.float().norm(dim=-1)) == 1).all()) == (s >= 9.5)
    v32 = v.float().requires_grad_()
    logits = q.logits(v32)
    logits.logsumexp(-1).sum().backward()
    assert torch.isfinite(logits).all() and torch.isfinite(v32.grad).all()
    assert torch.isfinite(q.normals.grad).all() and torch.isfinite(q.offsets.grad).all()
    logits64 = copy.deepcopy(q).double().logits(v)
    clear = _clear(logits64)
    assert clear.float().mean() > 0.9
    assert torch.equal(logits.argmax(-1)[clear], logits64.argmax(-1)[clear])
    rel = ((logits.double() - logits64).abs() / logits64.abs().clamp_min(1.0)).max()
    assert rel < 1e-3, float(rel)
