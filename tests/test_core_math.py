"""The Poincaré-ball core against independent references: float64 first and tight, then fp32/fp16/bf16.

Tolerances (relative to ``1 + |ℓ|``, logits of size up to ~300 here):
- float64 vs the float64 Möbius/Ganea reference: 1e-9 (the reference's own limit: it goes through
  ball points, where ``1 − c‖x‖²`` has relative error ~1e-16·e^{2s}; inputs kept to s ≤ 8.5);
- float64 vs the same route in mpmath (100 digits), norms up to 30: 1e-12;
- float32 math (fp32, fp16 and bf16 inputs, compared at the rounded input): 5e-4, the float32
  rounding of ``A`` amplified near the hyperplanes.
"""
import math
import sys

import pytest
import torch

from hypervq_fairseq.core import (
    check_curvature,
    conformal_factor,
    distance,
    distance_to_origin_from_tangent,
    expmap0,
    logmap0,
    mobius_add,
    unidirectional_mlr_logits,
)
from hypervq_fairseq.core.guards import DIRECT_EVAL_MAX, artanh, clamped_norm, sinh_over_x

from _hyperbolic_reference import ganea_logits_ref, mobius_add_ref, mp_closed_form_logits, mp_ganea_logits

CURVATURES = [0.1, 1.0, 2.5]
F64_VS_F64_REF, F64_VS_MP, F32_VS_MP = 1e-9, 1e-12, 5e-4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs() / (1 + b.double().abs())).max().item()


def tangent_batch(n: int, d: int, lo: float, hi: float, *, seed: int, dtype=torch.float64) -> torch.Tensor:
    """``n`` random directions with norms log-spaced over ``[lo, hi]``."""
    gen = torch.Generator().manual_seed(seed)
    norms = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    dirs = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)
    return (dirs * norms[:, None]).to(dtype)


def hyperplanes(k: int, d: int, *, seed: int, groups=None):
    gen = torch.Generator().manual_seed(seed + 1)
    shape = (k,) if groups is None else (groups, k)
    z = torch.randn(*shape, d, generator=gen, dtype=torch.float64)
    r = torch.rand(*shape, generator=gen, dtype=torch.float64) * 1.2 - 0.4      # both signs
    return z, r


# -- Poincaré-ball identities -----------------------------------------------------------------

@pytest.mark.parametrize("c", CURVATURES)
def test_expmap0_logmap0_round_trip_float64(c):
    v = tangent_batch(64, 5, 1e-8, 5 / math.sqrt(c), seed=0)       # √c‖v‖ ≤ 5: artanh well conditioned
    x = expmap0(v, c=c)
    assert bool((c * (x * x).sum(-1) < 1).all())
    torch.testing.assert_close(logmap0(x, c=c), v, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("c", CURVATURES)
def test_expmap0_logmap0_round_trip_float32(c):
    v = tangent_batch(64, 5, 1e-6, 2 / math.sqrt(c), seed=1, dtype=torch.float32)
    torch.testing.assert_close(logmap0(expmap0(v, c=c), c=c), v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("c", CURVATURES)
def test_conformal_factor_is_two_cosh_squared(c):
    v = tangent_batch(64, 5, 1e-8, 5 / math.sqrt(c), seed=2)
    lam = conformal_factor(expmap0(v, c=c), c=c)
    expected = 2 * torch.cosh(math.sqrt(c) * v.norm(dim=-1)) ** 2
    torch.testing.assert_close(lam, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("c", CURVATURES)
def test_distance_to_origin_is_twice_tangent_norm(c):
    v = tangent_batch(64, 5, 1e-6, 5 / math.sqrt(c), seed=3)
    x = expmap0(v, c=c)
    d = distance(torch.zeros_like(x), x, c=c)
    torch.testing.assert_close(d, 2 * v.norm(dim=-1), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(distance_to_origin_from_tangent(v, c=c), 2 * v.norm(dim=-1), rtol=1e-15, atol=0)
    big = torch.full((2, 64), 1e30)                                    # ‖v‖² overflows float32
    assert torch.equal(distance_to_origin_from_tangent(big, c=c), torch.full((2,), 1.6e31))


@pytest.mark.parametrize("c", CURVATURES)
def test_mobius_add_matches_formula_and_left_cancels(c):
    x = expmap0(tangent_batch(32, 4, 1e-3, 2 / math.sqrt(c), seed=4), c=c)
    y = expmap0(tangent_batch(32, 4, 1e-3, 2 / math.sqrt(c), seed=5), c=c)
    torch.testing.assert_close(mobius_add(x, y, c=c), mobius_add_ref(x, y, c), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mobius_add(-x, mobius_add(x, y, c=c), c=c), y, rtol=1e-9, atol=1e-12)


def test_logmap0_of_boundary_point_is_finite():
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([[1.0, 0.0], [0.6, 0.8], [3.0, 4.0]], dtype=dtype)   # on / past the boundary
        x.requires_grad_()
        v = logmap0(x, c=1.0)
        v.sum().backward()
        assert bool(torch.isfinite(v).all()) and bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ball_maps_in_half_precision_compute_wide_and_return_half(dtype):
    v = torch.cat([torch.zeros(1, 4), tangent_batch(15, 4, 1e-3, 3.0, seed=6, dtype=torch.float32)]).to(dtype)
    x = expmap0(v, c=1.0)
    assert x.dtype == dtype and bool(torch.isfinite(x).all())
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(x.double(), expmap0(v.double(), c=1.0), rtol=tol, atol=tol)
    back = logmap0(expmap0(v[:8], c=1.0), c=1.0)                      # √c‖v‖ ≤ ~0.5 here: well conditioned
    assert back.dtype == dtype and bool(torch.isfinite(back).all())
    torch.testing.assert_close(back.double(), v[:8].double(), rtol=4 * tol, atol=4 * tol)
    assert conformal_factor(x, c=1.0).dtype == torch.float32


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), torch.tensor(-0.5)])
def test_check_curvature_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="curvature c must be a finite number > 0"):
        check_curvature(bad)


def test_guards_are_smooth_at_their_edges():
    x = torch.tensor([0.0, 1e-6, 1e-4, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    y = sinh_over_x(x)
    expected = torch.where(x == 0, torch.ones_like(x), torch.sinh(x) / x.clamp_min(1e-300)).detach()
    torch.testing.assert_close(y.detach(), expected, rtol=1e-15, atol=0)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g[0], torch.tensor(0.0, dtype=torch.float64))
    a = torch.tensor([-1.0, 1.0, 0.3], requires_grad=True)
    out = artanh(a)
    out.sum().backward()
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(a.grad).all())
    v = torch.zeros(3, 4, requires_grad=True)
    clamped_norm(v).sum().backward()
    assert bool(torch.isfinite(v.grad).all())


def test_fused_scaled_asinh_matches_torch_asinh_and_differentiates_twice():
    from hypervq_fairseq.core.mlr import _ScaledAsinh

    gen = torch.Generator().manual_seed(7)
    for dtype, tol in ((torch.float64, 1e-15), (torch.float32, 3e-7)):
        m = torch.cat([torch.randn(500, generator=gen) * 30, torch.randn(100, generator=gen) * 1e-6,
                       torch.tensor([0.0, -0.0, 1e30, -1e30])]).to(dtype)
        ref = torch.asinh(m.double())
        one = torch.ones(1, dtype=dtype)
        assert (((_ScaledAsinh.apply(m, one).double() - ref).abs()) / (1 + ref.abs())).max() < tol
        huge = torch.tensor([torch.finfo(dtype).max, -torch.finfo(dtype).max], dtype=dtype)
        assert bool(torch.isfinite(_ScaledAsinh.apply(huge, one)).all())
    m = (torch.randn(5, 3, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    w = (torch.rand(3, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(_ScaledAsinh.apply, (m, w))
    assert torch.autograd.gradgradcheck(_ScaledAsinh.apply, (m, w))


# -- unidirectional MLR logits: float64 ---------------------------------------------------------

@pytest.mark.parametrize("c", CURVATURES)
def test_logits_match_float64_mobius_ganea_reference(c):
    v = tangent_batch(48, 6, 1e-8, min(30.0, 8.5 / math.sqrt(c)), seed=10)
    z, r = hyperplanes(7, 6, seed=10)
    ours = unidirectional_mlr_logits(v, z, r, c=c)
    assert ours.dtype == torch.float64 and ours.shape == (48, 7)
    assert rel_err(ours, ganea_logits_ref(v, z, r, c)) < F64_VS_F64_REF


@pytest.mark.parametrize("c", CURVATURES)
def test_logits_match_high_precision_reference_up_to_norm_30_and_beyond(c):
    # norms 1e-8 … 30, plus rows past the log-domain switch (2√c‖v‖ > DIRECT_EVAL_MAX) for every c
    far_lo = 0.55 * DIRECT_EVAL_MAX / math.sqrt(c)
    v = torch.cat([tangent_batch(16, 5, 1e-8, 30.0, seed=11), tangent_batch(8, 5, far_lo, 1.5 * far_lo, seed=12)])
    z, r = hyperplanes(5, 5, seed=11)
    ref = mp_ganea_logits(v, z, r, c, dps=120)
    far = 2 * math.sqrt(c) * v.norm(dim=-1) > DIRECT_EVAL_MAX
    ours = unidirectional_mlr_logits(v, z, r, c=c)
    assert rel_err(ours, ref) < F64_VS_MP
    assert rel_err(ours[far], ref[far]) < F64_VS_MP and int(far.sum()) >= 5       # log-domain branch


def test_closed_form_reference_agrees_with_mobius_reference():
    # the closed form is the reference used at norms where no ball point is representable
    v = tangent_batch(10, 4, 1e-3, 20.0, seed=12)
    z, r = hyperplanes(4, 4, seed=12)
    torch.testing.assert_close(mp_closed_form_logits(v, z, r, 1.3), mp_ganea_logits(v, z, r, 1.3), rtol=1e-14, atol=1e-14)


def test_logits_are_continuous_across_the_log_domain_switch():
    z, r = hyperplanes(6, 3, seed=13)
    u = torch.nn.functional.normalize(torch.randn(1, 3, dtype=torch.float64), dim=-1)
    edge = DIRECT_EVAL_MAX / 2                                         # c = 1: 2s = DIRECT_EVAL_MAX
    v = torch.cat([u * (edge - 1e-9), u * (edge + 1e-9)])
    lo, hi = unidirectional_mlr_logits(v, z, r, c=1.0)
    torch.testing.assert_close(lo, hi, rtol=1e-7, atol=1e-7)


def test_logit_gradients_match_finite_differences_in_both_branches():
    far_lo = 0.6 * DIRECT_EVAL_MAX / math.sqrt(0.7)
    v = torch.cat([tangent_batch(4, 3, 1e-3, 6.0, seed=14), tangent_batch(3, 3, far_lo, 1.3 * far_lo, seed=15)])
    z, r = hyperplanes(4, 3, seed=14)
    args = (v.requires_grad_(), z.requires_grad_(), r.requires_grad_())
    assert torch.autograd.gradcheck(lambda a, b, e: unidirectional_mlr_logits(a, b, e, c=0.7), args)


@pytest.mark.parametrize("c", CURVATURES)
def test_grouped_logits_equal_per_group_logits(c):
    groups, d = 3, 4
    v = tangent_batch(2 * 5 * groups, d, 1e-8, 30.0, seed=16).view(2, 5, groups, d)   # (B, T, G, d)
    z, r = hyperplanes(6, d, seed=16, groups=groups)                                 # (G, K, d), (G, K)
    ours = unidirectional_mlr_logits(v, z, r, c=c)
    assert ours.shape == (2, 5, groups, 6)
    for g in range(groups):
        rows = v[:, :, g].reshape(-1, d)
        torch.testing.assert_close(ours[:, :, g].reshape(-1, 6), unidirectional_mlr_logits(rows, z[g], r[g], c=c),
                                   rtol=1e-13, atol=1e-13)
        assert rel_err(ours[:, :, g].reshape(-1, 6), mp_ganea_logits(rows, z[g], r[g], c)) < F64_VS_MP


def test_shape_mismatch_is_a_clear_error():
    z, r = hyperplanes(4, 3, seed=17, groups=2)
    with pytest.raises(ValueError, match=r"expected v \(\.\.\., G, d\)"):
        unidirectional_mlr_logits(torch.zeros(5, 3, 3), z, r)
    with pytest.raises(ValueError, match="expected normals"):
        unidirectional_mlr_logits(torch.zeros(5, 3), z[0], r)


def test_curvature_may_be_a_learnable_tensor():
    v = tangent_batch(6, 3, 0.1, 12.0, seed=18)
    z, r = hyperplanes(4, 3, seed=18)
    log_c = torch.tensor(math.log(0.8), dtype=torch.float64, requires_grad=True)
    out = unidirectional_mlr_logits(v, z, r, c=log_c.exp())
    assert rel_err(out.detach(), mp_ganea_logits(v, z, r, 0.8)) < 1e-11
    (g,) = torch.autograd.grad(out.sum(), log_c)
    assert math.isfinite(g.item()) and g.item() != 0


# -- unidirectional MLR logits: low precision and huge inputs --------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("c", [0.1, 1.0])
def test_low_precision_inputs_compute_in_float32(dtype, c):
    v = tangent_batch(24, 5, 1e-6, 30.0, seed=19).to(dtype)
    z, r = hyperplanes(5, 5, seed=19)
    ours = unidirectional_mlr_logits(v, z.to(dtype), r.to(dtype), c=c)
    assert ours.dtype == torch.float32                                 # logits never narrower than fp32
    ref = mp_ganea_logits(v.double(), z.to(dtype).double(), r.to(dtype).double(), c)   # at the rounded inputs
    assert rel_err(ours, ref) < F32_VS_MP


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gradients_are_finite_at_zero_and_at_huge_norms(dtype):
    big = 6e4 if dtype == torch.float16 else 1e6                       # fp16's largest finite ~6.5e4
    v = torch.cat([torch.zeros(2, 4), tangent_batch(6, 4, 1e2, big, seed=20, dtype=torch.float32)]).to(dtype)
    z, r = hyperplanes(5, 4, seed=20)
    v.requires_grad_()
    z, r = z.to(dtype).requires_grad_(), r.to(dtype).requires_grad_()
    out = unidirectional_mlr_logits(v, z, r, c=1.0)
    torch.log_softmax(out, dim=-1)[:, 0].mean().backward()          # bounded dL/dℓ, as in a softmax
    for t in (out, v.grad, z.grad, r.grad):
        assert bool(torch.isfinite(t).all())
    assert bool((v.grad[:2] != 0).any())                               # the origin still gets a gradient


def test_autocast_does_not_narrow_the_logits():
    v = tangent_batch(16, 4, 1e-3, 1e3, seed=22, dtype=torch.float32)
    z, r = hyperplanes(5, 4, seed=22)
    z, r = z.float(), r.float()
    plain = unidirectional_mlr_logits(v, z, r, c=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = unidirectional_mlr_logits(v, z, r, c=1.0)
    assert auto.dtype == torch.float32 and torch.equal(plain, auto)


@pytest.mark.parametrize("norm", [1e4, 1e6])
def test_argmax_at_huge_norms_equals_reference(norm):
    v = tangent_batch(32, 8, norm, norm, seed=21)
    z, r = hyperplanes(16, 8, seed=21)
    ref = mp_closed_form_logits(v, z, r, 1.0)
    for dtype in (torch.float64, torch.float32):
        ours = unidirectional_mlr_logits(v.to(dtype), z.to(dtype), r.to(dtype), c=1.0)
        assert bool(torch.isfinite(ours).all())
        assert torch.equal(ours.argmax(-1), ref.argmax(-1))
    assert rel_err(unidirectional_mlr_logits(v, z, r, c=1.0), ref) < 1e-12


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
