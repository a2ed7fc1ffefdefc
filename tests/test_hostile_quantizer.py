"""Hostile input to the quantizers: NaN/Inf frames, any finite norm, integers, empty batches, bad sizes, meta.

A non-finite frame must never come out as a valid code (it raises, or with
``invalid_frames="mark"`` gets the code -1, a zero vector and no gradient); frames of any finite
norm up to the dtype's largest value get finite logits, outputs and gradients, and the same code
as the same direction at a merely huge norm; empty batches give finite statistics.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from hypervq_fairseq import EuclideanGumbelQuantizer, HyperbolicVectorQuantizer, unidirectional_mlr_logits
from hypervq_fairseq.core import mlr
from hypervq_fairseq.errors import InputError, NonFiniteInputError
from hypervq_fairseq.quantizers.gumbel_base import INVALID_CODE
from hypervq_fairseq.quantizers.hyperbolic_vq import DEFAULT_CURVATURE

QUANTIZERS = [HyperbolicVectorQuantizer, EuclideanGumbelQuantizer]
TEMP = (2.0, 0.5, 0.9)


def make(cls, *, seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    return cls(12, 8, TEMP, 2, False, 8, kw.pop("time_first", True), **kw).to(dtype)


def frames(b=2, t=6, *, seed=1, dtype=torch.float32):
    return torch.randn(b, t, 12, generator=torch.Generator().manual_seed(seed)).to(dtype)


def poison(x):
    """NaN in a whole frame, one Inf sample in another, -Inf in a third."""
    x = x.clone()
    x[0, 1] = float("nan")
    x[0, 4, 3] = float("inf")
    x[1, 0, 0] = float("-inf")
    return x


BAD = [(0, 1), (0, 4), (1, 0)]


def loss_of(out):
    return out["x"].float().square().mean() + (out["num_vars"] - out["prob_perplexity"]) / out["num_vars"]


# -- NaN / Inf frames ----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("time_first", [True, False])
def test_nonfinite_frames_raise_naming_where_they_are(cls, train, time_first):
    q = make(cls, time_first=time_first).train(train)
    x = poison(frames())
    with pytest.raises(NonFiniteInputError) as err:
        q(x if time_first else x.transpose(1, 2), produce_targets=True)
    message = str(err.value)
    assert "3 frame(s) with NaN or Inf" in message and "invalid_frames='mark'" in message
    for b, t in BAD:
        assert f"(batch {b}, time {t})" in message
    assert isinstance(err.value, ValueError)            # code catching ValueError keeps working


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_marked_frames_get_the_invalid_code_and_nothing_else_changes(cls):
    clean = frames()
    ref = make(cls).eval()
    q = make(cls, invalid_frames="mark").eval()
    out = q(poison(clean), produce_targets=True)
    targets = out["targets"]
    bad = torch.zeros(2, 6, dtype=torch.bool)
    for b, t in BAD:
        bad[b, t] = True
    assert bool((targets[bad] == INVALID_CODE).all()) and bool((targets[~bad] >= 0).all())
    assert bool((out["x"][bad] == 0).all()) and bool(torch.isfinite(out["x"]).all())
    # the valid frames are coded exactly as a module without marking codes them
    good = ref(clean, produce_targets=True)
    assert torch.equal(targets[~bad], good["targets"][~bad]) and torch.equal(out["x"][~bad], good["x"][~bad])
    # the statistics count the valid frames only
    only_good = ref(clean[~bad].unsqueeze(0), produce_targets=True)
    for key in ("code_perplexity", "prob_perplexity"):
        assert out[key].item() == pytest.approx(only_good[key].item(), rel=1e-6)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_marked_frames_take_no_part_in_the_gradient(cls):
    q = make(cls, invalid_frames="mark", diagnostics=True).train()
    x = poison(frames()).requires_grad_()
    out = q(x, produce_targets=True)
    loss_of(out).backward()
    assert bool((out["targets"][0, 1] == INVALID_CODE).all())
    for b, t in BAD:
        assert bool((x.grad[b, t] == 0).all())
    assert bool(torch.isfinite(x.grad).all()) and bool(x.grad.abs().sum() > 0)
    for name, p in q.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    assert all(math.isfinite(v.item()) for k, v in out.items() if k != "x" and torch.is_tensor(v) and v.dim() == 0)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_nan_weights_never_give_codes(cls):
    q = make(cls).eval()
    with torch.no_grad():
        q.weight_proj.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteInputError, match="the quantizer's weights hold NaN or Inf"):
        q(frames(), produce_targets=True)


# -- any finite norm ------------------------------------------------------------------------------

def norms(dtype):
    top = torch.finfo(dtype).max
    return [1e19, 1e20, 1e30, 1e36, top / 1e3, top / 2, top]


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("train", [True, False])
def test_any_finite_norm_gives_finite_outputs_gradients_and_valid_codes(cls, dtype, train):
    q = make(cls, dtype=dtype, diagnostics=True).train(train)
    for norm in norms(dtype):
        x = (F.normalize(frames(dtype=dtype), dim=-1) * norm).requires_grad_()
        assert bool(torch.isfinite(x).all())
        out = q(x, produce_targets=True)
        loss_of(out).backward()
        assert bool(torch.isfinite(out["x"]).all()), norm
        assert bool(((out["targets"] >= 0) & (out["targets"] < 8)).all()), norm
        for k in ("prob_perplexity", "code_perplexity", "hyperbolic_radius", "sample_is_argmax"):
            assert k not in out or math.isfinite(out[k].item()), (norm, k)
        for p in [x] + list(q.parameters()):
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), norm
        q.zero_grad()


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_beyond_a_huge_norm_the_code_depends_on_the_direction_only(cls, dtype):
    """Rows whose projection overflows are projected again at a smaller norm: that changes no code."""
    q = make(cls, dtype=dtype).eval()
    direction = F.normalize(frames(b=4, t=8, dtype=dtype), dim=-1)
    codes = [q(direction * n, produce_targets=True)["targets"] for n in norms(dtype)[2:]]
    assert all(torch.equal(codes[0], c) for c in codes[1:])
    assert len(torch.unique(codes[0])) > 1                  # not trivially equal


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_core_logits_are_finite_for_any_finite_norm(dtype):
    z = torch.randn(16, 8, dtype=dtype, generator=torch.Generator().manual_seed(3))
    r = torch.rand(16, dtype=dtype, generator=torch.Generator().manual_seed(4))
    direction = F.normalize(torch.randn(32, 8, dtype=dtype, generator=torch.Generator().manual_seed(5)), dim=-1)
    picked = []
    for norm in [1e18, 1e19, 1e20] + norms(dtype):
        v = (direction * norm).requires_grad_()
        zz, rr = z.clone().requires_grad_(), r.clone().requires_grad_()
        logits = unidirectional_mlr_logits(v, zz, rr, c=1.0)
        torch.log_softmax(logits, dim=-1)[:, 0].mean().backward()
        for t in (logits, v.grad, zz.grad, rr.grad):
            assert bool(torch.isfinite(t).all()), norm
        picked.append(logits.argmax(-1))
    assert all(torch.equal(picked[-1], p) for p in picked[5:])    # from 1e30 on: the direction decides


def test_compiled_form_of_the_far_rows_equals_the_eager_one():
    """torch.compile runs the far rows branch-free (no graph break); same logits and gradients as eager."""
    gen = torch.Generator().manual_seed(6)
    scales = torch.tensor([0.0, 1e-3, 1.0, 10.0, 14.9, 15.1, 1e3, 1e20, 3e38]).repeat_interleave(4)
    v = F.normalize(torch.randn(len(scales), 2, 8, generator=gen), dim=-1) * scales[:, None, None]
    z, r = torch.randn(2, 12, 8, generator=gen), torch.rand(2, 12, generator=gen)
    z_norm = z.norm(dim=-1)
    results = []
    for branch_free in (False, True):
        vv, zz = v.clone().requires_grad_(), z.clone().requires_grad_()
        logits = mlr._logits(vv, zz / z_norm[..., None], z_norm, r, 1.0, branch_free=branch_free)
        torch.log_softmax(logits, dim=-1).sum().backward()
        results.append((logits.detach(), vv.grad, zz.grad))
    for eager, free in zip(*results):
        assert bool(torch.isfinite(free).all())
        torch.testing.assert_close(free, eager, rtol=1e-5, atol=1e-6)


def test_core_function_traces_without_graph_breaks():
    import torch._dynamo

    v = torch.randn(6, 2, 4) * torch.tensor([0.1, 100.0]).view(1, 2, 1)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(unidirectional_mlr_logits)(v, torch.randn(2, 5, 4), torch.rand(2, 5))
    assert explained.graph_break_count == 0 and explained.graph_count == 1


# -- wrong dtype, empty batches ---------------------------------------------------------------------

@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_float_input_is_a_named_error(cls, dtype):
    with pytest.raises(InputError, match=f"must be floating point .*got {dtype}"):
        make(cls)(torch.ones(1, 3, 12).to(dtype))


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("shape", [(0, 5, 12), (2, 0, 12)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("mark", ["raise", "mark"])
def test_empty_batches_give_finite_statistics(cls, shape, train, mark):
    q = make(cls, diagnostics=True, invalid_frames=mark).train(train)
    x = torch.zeros(shape).requires_grad_()
    out = q(x, produce_targets=True)
    assert out["x"].shape == (*shape[:2], 8) and out["targets"].shape == (*shape[:2], 2)
    for k, v in out.items():
        if torch.is_tensor(v) and v.is_floating_point():
            assert bool(torch.isfinite(v).all()), k
    assert out["code_perplexity"].item() == out["prob_perplexity"].item() == 2.0   # 1 per group: nothing used
    loss_of(out).backward()
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in q.parameters())


# -- construction -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("kwargs, message", [
    (dict(vq_dim=0), r"vq_dim must be an integer, at least 1; got 0"),
    (dict(dim=0), r"dim must be an integer, at least 1; got 0"),
    (dict(groups=0, vq_dim=8), r"groups must be an integer, at least 1; got 0"),
    (dict(num_vars=2.5), r"num_vars \(codes per group\) must be an integer, at least 2; got 2.5"),
    (dict(temp=(float("nan"), 0.5, 0.9)), r"temp needs finite 0 < min_temp"),
    (dict(temp=(2.0, -0.5, 0.9)), r"temp needs finite 0 < min_temp"),
    (dict(invalid_frames="skip"), r"invalid_frames must be one of raise, mark, got 'skip'"),
])
def test_impossible_sizes_and_options_are_named(cls, kwargs, message):
    args = dict(dim=12, num_vars=8, temp=TEMP, groups=2, combine_groups=False, vq_dim=8, time_first=True)
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("invalid_frames",) if k in args}
    with pytest.raises(InputError, match=message) as err:
        cls(**args, **extra)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(r_init=(float("nan"), 1.0)), r"r_init must be a range \(low, high\) of finite numbers"),
    (dict(r_init=(0.1, float("inf"))), r"r_init must be a range"),
    (dict(curvature=float("nan")), r"curvature c must be a finite number > 0"),
    (dict(clip_radius=float("inf")), r"clip_radius must be a finite number > 0"),
])
def test_impossible_hyperbolic_options_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        make(HyperbolicVectorQuantizer, **kwargs)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_built_on_the_meta_device_then_materialised(cls):
    with torch.device("meta"):
        q = make(cls)
    assert all(p.is_meta for p in q.parameters())
    with pytest.raises(InputError, match="built on the meta device .*to_empty.*reset_parameters"):
        q(frames())
    with pytest.raises(InputError, match="meta device and holds no values"):
        make(cls)(frames().to("meta"))
    q = q.to_empty(device="cpu")
    q.reset_parameters()
    out = q.eval()(frames(), produce_targets=True)
    assert bool(torch.isfinite(out["x"]).all()) and len(torch.unique(out["targets"])) > 1
    if cls is HyperbolicVectorQuantizer:
        ball = 1 / math.sqrt(DEFAULT_CURVATURE)  # r_init (0.1, 0.5) is in units of the ball's radius
        assert bool(((q.offsets >= 0.1 * ball) & (q.offsets <= 0.5 * ball)).all())
        assert q.curvature.item() == pytest.approx(DEFAULT_CURVATURE)
