"""HyperbolicVectorQuantizer as a drop-in for fairseq's GumbelVectorQuantizer, and its numerics.

What is proven here: the code vectors are ``r_k ẑ_k`` of the argmax code, gradients reach the
hyperplanes and the input through the straight-through path, the temperature schedule, the
perplexities on a hand-built example, identical output keys/shapes/dtypes to the real fairseq
module, finiteness at huge norms and in half precision (the math stays fp32 with half
parameters and under autocast), the README snippet, and the construction errors.
"""
import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hypervq_fairseq import EuclideanGumbelQuantizer, HyperbolicVectorQuantizer, unidirectional_mlr_logits
from hypervq_fairseq.quantizers.hyperbolic_vq import parse_temp
from hypervq_fairseq.errors import InputError

from _hyperbolic_reference import mp_closed_form_logits

TEMP = (2.0, 0.5, 0.9)


def make(cls=HyperbolicVectorQuantizer, *, dim=12, num_vars=6, groups=2, vq_dim=8, combine_groups=False,
         time_first=True, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(dim, num_vars, TEMP, groups, combine_groups, vq_dim, time_first, **kw)


def frames(b=2, t=5, c=12, *, time_first=True, seed=1, scale=1.0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, generator=gen) * scale
    return (x if time_first else x.transpose(1, 2)).to(dtype)


def reference_logits(q: HyperbolicVectorQuantizer, rows: torch.Tensor) -> torch.Tensor:
    """Logits computed outside the module: projection by hand, then the core function per group."""
    w, b = q.weight_proj.weight.double(), q.weight_proj.bias.double()
    v = (rows.double() @ w.t() + b).view(rows.shape[0], q.groups, q.var_dim)
    normals, offsets = q.normals.double(), q.offsets.double()
    c = q.curvature.double()
    return torch.stack([
        unidirectional_mlr_logits(v[:, g], normals[0 if q.combine_groups else g], offsets[0 if q.combine_groups else g], c=c)
        for g in range(q.groups)
    ], dim=1)


# -- code vectors, gradients, temperature, perplexities -----------------------------------------

@pytest.mark.parametrize("combine_groups", [False, True])
@pytest.mark.parametrize("time_first", [True, False])
def test_eval_output_is_offset_times_unit_normal_of_argmax_code(combine_groups, time_first):
    q = make(combine_groups=combine_groups, time_first=time_first).eval()
    x = frames(time_first=time_first)
    out, targets = q.forward_idx(x)
    rows = x if time_first else x.transpose(1, 2)
    rows, out_rows = rows.reshape(-1, 12), (out if time_first else out.transpose(1, 2)).reshape(-1, 8)
    idx = reference_logits(q, rows).argmax(-1)                          # (N, G)
    assert torch.equal(targets.reshape(-1, 2), idx)
    for n in range(rows.shape[0]):
        expected = []
        for g in range(q.groups):
            book = 0 if combine_groups else g
            z, r = q.normals[book, idx[n, g]], q.offsets[book, idx[n, g]]
            expected.append(r * z / z.norm())
        torch.testing.assert_close(out_rows[n], torch.cat(expected), rtol=1e-6, atol=1e-7)


def test_gradients_reach_hyperplanes_and_input_through_straight_through():
    q = make().train()
    x = frames().requires_grad_()
    out = q(x)
    weights = torch.randn_like(out["x"])
    (out["x"] * weights).sum().backward()                              # no perplexity term: ST path only
    for name, grad in [("normals", q.normals.grad), ("offsets", q.offsets.grad), ("input", x.grad),
                       ("weight_proj", q.weight_proj.weight.grad)]:
        assert grad is not None and bool(torch.isfinite(grad).all()), name
        assert grad.abs().sum() > 0, name
    # and the offsets of codes nobody picked get gradient only through the logits, still finite
    assert bool(torch.isfinite(q.offsets.grad).all())


def test_gradients_are_finite_at_the_origin():
    q = make().train()
    with torch.no_grad():
        q.weight_proj.bias.zero_()
    x = torch.zeros(2, 5, 12, requires_grad=True)                       # every tangent vector is exactly 0
    out = q(x)
    (out["x"].sum() + (out["num_vars"] - out["prob_perplexity"]) / out["num_vars"]).backward()
    for t in (out["x"], x.grad, q.normals.grad, q.offsets.grad, q.weight_proj.weight.grad):
        assert bool(torch.isfinite(t).all())


def test_temperature_schedule():
    q = make()
    assert q.curr_temp == 2.0 and q(frames())["temp"] == 2.0
    q.set_num_updates(3)
    assert q.curr_temp == pytest.approx(2.0 * 0.9**3) and q(frames())["temp"] == pytest.approx(2.0 * 0.9**3)
    q.set_num_updates(10**6)
    assert q.curr_temp == 0.5
    q.set_num_updates(0)
    assert q.curr_temp == 2.0


def test_parse_temp_forms_and_errors():
    assert parse_temp("(2, 0.5, 0.999995)") == (2.0, 0.5, 0.999995)
    assert parse_temp([1, 1, 1]) == (1.0, 1.0, 1.0)
    for bad in ["(2, 0.5)", "abc", "(2, 'x', 0.9)", (2, 0.5, 0.9, 1), (0, 0.5, 0.9), (2, -1, 0.9),
                (2, 0.5, 1.5), (2, 0.5, 0), (0.5, 2, 0.9), 3.0]:
        with pytest.raises(ValueError, match="temp"):
            parse_temp(bad)
    with pytest.raises(ValueError, match="temp"):
        make(cls=HyperbolicVectorQuantizer).__class__(12, 6, "(2, 0.5)", 2, False, 8, True)


def _fairseq_perplexity(p):
    return math.exp(-sum(pi * math.log(pi + 1e-7) for pi in p))


def test_perplexities_on_hand_built_example():
    """Two groups, three codes in 2-d: normals e1, −e1, e2, offsets 0, inputs of norm n = ln2/4.

    With c = 1 and r = 0 the logit is 2·asinh(sinh(2n)·cos∠(v, z_k)) = 4n·cos∠ ∈ {ln2, −ln2, 0},
    so each frame's softmax has the closed forms (4, 1, 2)/7, (1, 4, 2)/7 or (1, 1, 2)/4.
    """
    q = make(dim=4, num_vars=3, groups=2, vq_dim=4, diagnostics=True, clip_radius=None, logit_scale=1.0).double().eval()  # the paper's logits
    with torch.no_grad():
        q.weight_proj.weight.copy_(torch.eye(4))
        q.weight_proj.bias.zero_()
        q.normals.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]).expand(2, 3, 2))
        q.offsets.zero_()
    n = math.log(2) / 4
    e1, e2 = [n, 0.0], [0.0, n]
    m1 = [-n, 0.0]
    group0 = [e1, m1, e2, e1]                                          # codes 0, 1, 2, 0
    group1 = [e2, e2, e2, m1]                                          # codes 2, 2, 2, 1
    x = torch.tensor([g0 + g1 for g0, g1 in zip(group0, group1)], dtype=torch.float64)  # (T, G·d)
    out = q(x.unsqueeze(0), produce_targets=True)

    assert out["targets"][0].tolist() == [[0, 2], [1, 2], [2, 2], [0, 1]]
    code0, code1 = _fairseq_perplexity([2 / 4, 1 / 4, 1 / 4]), _fairseq_perplexity([0, 1 / 4, 3 / 4])
    prob0 = _fairseq_perplexity([43 / 112, 31 / 112, 38 / 112])       # mean of the four softmaxes
    prob1 = _fairseq_perplexity([25 / 112, 37 / 112, 50 / 112])
    assert out["code_perplexity"].item() == pytest.approx(code0 + code1, rel=1e-6)  # counted in float32
    assert out["prob_perplexity"].item() == pytest.approx(prob0 + prob1, rel=1e-9)
    assert out["code_perplexity_g0"].item() == pytest.approx(code0, rel=1e-6)
    assert out["prob_perplexity_g1"].item() == pytest.approx(prob1, rel=1e-9)
    assert out["code_counts"].tolist() == [[2, 1, 1], [0, 1, 3]]
    assert out["hyperbolic_radius"].item() == pytest.approx(2 * n, rel=1e-12)


# -- drop-in contract with fairseq's GumbelVectorQuantizer --------------------------------------

def _signature(value):
    if torch.is_tensor(value):
        return ("tensor", tuple(value.shape), value.dtype)
    return (type(value).__name__,)


@pytest.mark.parametrize("combine_groups", [False, True])
@pytest.mark.parametrize("time_first", [True, False])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_outputs_match_fairseq_gumbel_quantizer(combine_groups, time_first, train, dtype):
    from fairseq.modules import GumbelVectorQuantizer

    args = dict(dim=12, num_vars=6, temp=TEMP, groups=2, combine_groups=combine_groups, vq_dim=8, time_first=time_first)
    ours = [HyperbolicVectorQuantizer(**args), EuclideanGumbelQuantizer(**args)]
    stock = GumbelVectorQuantizer(**args)
    x = frames(time_first=time_first, dtype=dtype)
    for module in [stock] + ours:
        module.to(dtype).train(train)
    for produce_targets in (False, True):
        expected = {k: _signature(v) for k, v in stock(x, produce_targets=produce_targets).items()}
        for module in ours:
            got = {k: _signature(v) for k, v in module(x, produce_targets=produce_targets).items()}
            assert got == expected, type(module).__name__
    for module in ours:
        y, t = module.forward_idx(x)
        ys, ts = stock.forward_idx(x)
        assert (y.shape, y.dtype, t.shape, t.dtype) == (ys.shape, ys.dtype, ts.shape, ts.dtype)
        s, s_stock = module.sample_from_codebook(3, 7), stock.sample_from_codebook(3, 7)
        assert (s.shape, s.dtype) == (s_stock.shape, s_stock.dtype)


def test_deeper_projection_matches_fairseq_shapes():
    from fairseq.modules import GumbelVectorQuantizer

    args = dict(dim=12, num_vars=6, temp=TEMP, groups=2, combine_groups=False, vq_dim=8, time_first=True,
                weight_proj_depth=2, weight_proj_factor=2)
    x = frames()
    got = HyperbolicVectorQuantizer(**args)(x)
    want = GumbelVectorQuantizer(**args)(x)
    assert {k: _signature(v) for k, v in got.items()} == {k: _signature(v) for k, v in want.items()}


def test_sample_from_codebook_draws_code_vectors():
    q = make(num_vars=4, groups=2, vq_dim=6)
    s = q.sample_from_codebook(5, 3)
    codes = q.codebook_vectors().detach()                                # (G, V, d)
    for row in s.reshape(-1, 6):
        for g in range(2):
            assert bool((codes[g] - row[3 * g:3 * g + 3]).abs().sum(-1).min() < 1e-6)
    with pytest.raises(ValueError, match="sample size 16"):
        q.sample_from_codebook(1, 16)


def test_wrong_input_layout_is_a_clear_error():
    q = make()
    with pytest.raises(ValueError, match=r"B×T×C with C = 12; got shape \(2, 12, 5\)"):
        q(torch.zeros(2, 12, 5))


# -- numerics: huge inputs, half precision, autocast ---------------------------------------------

@pytest.mark.parametrize("norm", [1e4, 1e6])
@pytest.mark.parametrize("cls", [HyperbolicVectorQuantizer, EuclideanGumbelQuantizer])
def test_huge_inputs_give_finite_outputs_and_gradients(norm, cls):
    q = make(cls).train()
    x = F.normalize(frames(), dim=-1) * norm
    x.requires_grad_()
    out = q(x)
    (out["x"].square().mean() + (out["num_vars"] - out["prob_perplexity"]) / out["num_vars"]).backward()
    assert bool(torch.isfinite(out["x"]).all()) and math.isfinite(out["prob_perplexity"].item())
    for p in [x] + list(q.parameters()):
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())


@pytest.mark.parametrize("norm", [1e4, 1e6])
def test_argmax_at_huge_norms_equals_float64_reference(norm):
    q = make(num_vars=16, groups=2, vq_dim=8).eval()
    x = F.normalize(frames(b=2, t=8), dim=-1) * norm
    _, targets = q.forward_idx(x)
    with torch.no_grad():
        v = q.tangent(x.reshape(-1, 12)).double()                        # the fp32 tangent vectors, exactly
    for g in range(2):
        ref = mp_closed_form_logits(v[:, g], q.normals[g].detach().double(), q.offsets[g].detach().double(),
                                    float(q.curvature))
        assert torch.equal(targets.reshape(-1, 2)[:, g], ref.argmax(-1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_half_modules_and_inputs_stay_finite(dtype, scale):
    q = make().to(dtype).train()
    x = frames(scale=scale, dtype=dtype).requires_grad_()
    out = q(x)
    assert out["x"].dtype == dtype
    loss = out["x"].float().square().mean() + (out["num_vars"] - out["prob_perplexity"]) / out["num_vars"]
    loss.backward()
    assert bool(torch.isfinite(out["x"]).all())
    for p in [x] + list(q.parameters()):
        assert p.grad is not None and p.grad.dtype == dtype and bool(torch.isfinite(p.grad).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_parameters_still_compute_in_float32(dtype):
    q32 = make(num_vars=32).eval()
    q_half = copy.deepcopy(q32).to(dtype)
    q_rounded = copy.deepcopy(q_half).float()                            # the half values, held in fp32
    x = frames(b=4, t=16).to(dtype)
    _, t_half = q_half.forward_idx(x)
    y_rounded, t_rounded = q_rounded.forward_idx(x.float())
    assert torch.equal(t_half, t_rounded)                                # fp32 math: identical choices
    # against the unrounded fp32 module: the same code wherever its choice is not a near-tie
    logits = reference_logits(q32, x.float().reshape(-1, 12))
    top2 = logits.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 0.05 * top2.abs().amax(-1)
    _, t32 = q32.forward_idx(x.float())
    assert clear.float().mean() > 0.8
    assert torch.equal(t_half.reshape(-1, 2)[clear], t32.reshape(-1, 2)[clear])


def test_autocast_does_not_change_the_choice():
    q = make(num_vars=32).eval()
    x = frames(b=4, t=16)
    _, plain = q.forward_idx(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, auto = q.forward_idx(x)
    assert torch.equal(plain, auto) and y.dtype == torch.float32


# -- construction errors ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(curvature=0.0), "curvature c must be a finite number > 0"),
    (dict(curvature=-1.0), "curvature c must be a finite number > 0"),
    (dict(vq_dim=9), "vq_dim 9 must be divisible by groups 2"),
    (dict(num_vars=1), "num_vars .* at least 2"),
    (dict(clip_radius=0.0), "clip_radius must be a finite number > 0"),
    (dict(r_init=(0.0, 0.0)), "r_init"),
    (dict(r_init=(0.5, 0.1)), "r_init"),
])
def test_construction_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(vq_dim=9), "vq_dim 9 must be divisible by groups 2"),
    (dict(num_vars=1), "num_vars .* at least 2"),
])
def test_euclidean_construction_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(EuclideanGumbelQuantizer, **kwargs)


def test_options_take_effect():
    clipped = make(clip_radius=0.5, curvature=1.0).eval()  # at c = 1 the ball unit is the tangent unit
    v = clipped.tangent(frames(scale=100.0).reshape(-1, 12))
    assert bool((v.norm(dim=-1) <= 0.5 + 1e-6).all())
    learned = make(learn_curvature=True, curvature=0.5)
    assert "log_curvature" in dict(learned.named_parameters())
    assert learned.curvature.item() == pytest.approx(0.5)
    out = learned(frames())
    out["prob_perplexity"].backward()
    assert learned.log_curvature.grad is not None and learned.log_curvature.grad.item() != 0
    assert "log_curvature" in dict(make().named_buffers())
    offsets = make(r_init=(0.2, 0.3), curvature=1.0).offsets
    assert bool(((offsets >= 0.2) & (offsets <= 0.3)).all())


@pytest.mark.parametrize("c", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("clip_radius", [None, 0.7])
def test_curvature_scales_in_ball_units(c, clip_radius):
    """At curvature c, clipping, offsets and normals are in units of the ball: the quantizer starts
    with the logits that c = 1 gives for the input sqrt(c)·v (same seed), and code vectors 1/sqrt(c) as long."""
    one = make(curvature=1.0, clip_radius=clip_radius).double().eval()
    q = make(curvature=c, clip_radius=clip_radius).double().eval()
    with torch.no_grad():                       # the same projection, rescaled by 1/sqrt(c)
        q.weight_proj.weight.copy_(one.weight_proj.weight / math.sqrt(c))
        q.weight_proj.bias.copy_(one.weight_proj.bias / math.sqrt(c))
    rows = frames(scale=3.0, dtype=torch.float64).reshape(-1, 12)
    v = q.tangent(rows)
    if clip_radius is not None:
        assert float(v.norm(dim=-1).max()) <= clip_radius / math.sqrt(c) * (1 + 1e-6)
        assert float(v.norm(dim=-1).max()) > clip_radius / math.sqrt(c) * 0.999  # some rows were clipped
    # parameters are drawn in float32 before .double(): c and r differ by ~1e-7 relative
    torch.testing.assert_close(q.logits(v), one.logits(one.tangent(rows)), rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(q.codebook_vectors() * math.sqrt(c), one.codebook_vectors(), rtol=1e-6, atol=1e-7)


def test_learned_curvature_moves_the_clip_radius():
    q = make(curvature=0.25, learn_curvature=True, clip_radius=1.0).eval()
    v = q.tangent(frames(scale=100.0).reshape(-1, 12))
    assert float(v.norm(dim=-1).max()) == pytest.approx(2.0, rel=1e-5)   # 1/sqrt(0.25)
    loss = v.norm(dim=-1).sum()
    loss.backward()
    assert q.log_curvature.grad is not None and q.log_curvature.grad.item() < 0  # larger c, shorter vectors


def test_core_and_quantizers_import_without_fairseq():
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'fairseq' or name.startswith('fairseq.'):\n"
        "            raise ImportError('fairseq blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch\n"
        "from hypervq_fairseq import HyperbolicVectorQuantizer, EuclideanGumbelQuantizer, unidirectional_mlr_logits\n"
        "q = HyperbolicVectorQuantizer(8, 4, (2, 0.5, 0.9), 2, False, 4, True)\n"
        "print(tuple(q(torch.randn(1, 3, 8))['x'].shape), 'fairseq' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 3, 4) False"


# -- README -------------------------------------------------------------------------------------

# -- the benchmark still runs ---------------------------------------------------------------------

def test_bench_quantizer_runs_on_tiny_shapes(tmp_path, capsys):
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_quantizer.py"
    spec = importlib.util.spec_from_file_location("bench_quantizer", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out_json = tmp_path / "bench.json"
    tiny = ["--batch", "1", "--frames", "16", "--dim", "32", "--num-vars", "8", "--vq-dim", "16"]
    bench.main(tiny + ["--repeats", "2", "--skip-memory", "--json", str(out_json)])
    table = capsys.readouterr().out
    assert "| hypervq |" in table and "| stock |" in table and "time ≤ 1.25× floor" in table
    result = json.loads(out_json.read_text())
    assert set(result["median_s"]) == {"hypervq", "stock", "floor"} and all(t > 0 for t in result["median_s"].values())
    mem = bench.measure_memory("hypervq", bench.build_parser().parse_args(tiny))
    assert mem["extra_peak_mib"] >= 0 and mem["method"] in ("VmHWM", "ru_maxrss")


def test_reseed_moves_unused_hyperplanes_onto_the_worst_fit_frames():
    q = make(num_vars=6, reseed_every=2, curvature=1.0)
    with torch.no_grad():  # code 5 of each group: a hyperplane far out, which no frame's argmax picks
        q.offsets[:, 5] = 20.0
    x = frames(b=4, t=8)
    before = (q.normals.detach().clone(), q.offsets.detach().clone())
    q.set_num_updates(2)  # no training batch seen yet (a resume): nothing moves
    assert torch.equal(q.normals, before[0]) and torch.equal(q.offsets, before[1])
    q.train()(x)
    assert bool((q._usage[:, 5] == 0).all())
    dead = [(q._usage[g] == 0).nonzero().flatten().tolist() for g in range(2)]
    with torch.no_grad():
        v = q.tangent(x.reshape(-1, 12))
    q.set_num_updates(1)  # not a re-seeding update
    assert torch.equal(q.offsets, before[1])
    q.set_num_updates(2)
    assert bool((q._usage == 0).all()) and q._pool is None
    for g in range(2):
        for k in range(6):
            if k not in dead[g]:  # codes in use keep their hyperplane
                assert torch.equal(q.normals[g, k], before[0][g, k]) and q.offsets[g, k] == before[1][g, k]
        for k in dead[g]:  # a moved normal points along one of the batch's frames, its offset half that frame's norm
            cos = F.cosine_similarity(v[:, g], q.normals[g, k].detach()[None], dim=-1)
            i = int(cos.argmax())
            assert float(cos[i]) == pytest.approx(1.0, abs=1e-5)
            assert float(q.offsets[g, k]) == pytest.approx(0.5 * float(v[i, g].norm()), rel=1e-5)
        # and the moved code now wins frames
        _, targets = q.eval().forward_idx(x)
        assert set(dead[g]) & set(targets.reshape(-1, 2)[:, g].tolist())


def test_reseed_options_are_checked():
    with pytest.raises(InputError, match="reseed_every"):
        make(reseed_every=-1)
    with pytest.raises(InputError, match="combine_groups"):
        make(reseed_every=10, combine_groups=True)
    q = make()  # off by default: no counting
    q.train()(frames())
    assert q._pool is None and not hasattr(q, "_usage")
