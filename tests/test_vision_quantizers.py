"""Vision quantizers, VQ-VAE shapes, PixelCNN causality and the metric helpers (no CLI)."""
import math

import numpy as np
import pytest
import torch

from hypervq_fairseq.core import distance, expmap0
from hypervq_fairseq.vision import VQVAE, VQVAEConfig
from hypervq_fairseq.vision.disentangle import cluster_scores, corrupt
from hypervq_fairseq.vision.inception_metrics import frechet_distance, inception_score, trace_sqrt_product
from hypervq_fairseq.vision.pixelcnn import GatedPixelCNN
from hypervq_fairseq.vision.quantizers import (QUANTIZERS, HyperKmeansVQ, KmeansVQ, build_quantizer, canonical_name,
                                             options_for, register)

NAMES = ["kmeans", "gumbel", "hypervq", "hyper_kmeans", "hyper_embmat"]


def tiny(q, **kw):
    cfg = VQVAEConfig(in_channels=1, quantizer=q, num_codes=32, embedding_dim=8, hidden=8, res_blocks=1, res_hidden=4, **kw)
    return VQVAE(cfg)


@pytest.mark.parametrize("name", NAMES)
def test_each_quantizer_trains_a_step_with_finite_loss(name):
    torch.manual_seed(0)
    model = tiny(name)
    x = torch.rand(4, 1, 28, 28) - 0.5
    recon, vq, z_e = model(x)
    assert recon.shape == x.shape
    assert z_e.shape == vq.z_q.shape == (4, 8, 7, 7)
    assert vq.indices.shape == (4, 7, 7) and vq.indices.dtype == torch.long
    assert 0.99 <= vq.perplexity.item() <= 32.0
    loss = torch.nn.functional.mse_loss(recon, x) + vq.loss
    assert torch.isfinite(loss)
    loss.backward()
    enc_grad = model.encoder.proj.weight.grad
    assert enc_grad is not None and torch.isfinite(enc_grad).all() and enc_grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_eval_output_is_the_embedded_codes(name):
    """In eval mode z_q must equal the code vectors of the chosen indices (what decoding a prior sample uses)."""
    torch.manual_seed(1)
    q = build_quantizer(name, 6, 16).eval()
    z_e = torch.randn(2, 6, 3, 5)
    with torch.no_grad():
        out = q(z_e)
        assert torch.allclose(out.z_q, q.embed(out.indices), atol=1e-5)
    assert q.codebook().shape == (16, 6)


def test_registry_rejects_unknown_and_duplicate_names_and_accepts_new_ones():
    with pytest.raises(ValueError, match="unknown quantizer 'nope'"):
        build_quantizer("nope", 4, 8)
    with pytest.raises(ValueError, match="already registered"):
        register("kmeans", HyperKmeansVQ)
    register("kmeans_test_alias", KmeansVQ)
    try:
        assert isinstance(build_quantizer("kmeans_test_alias", 4, 8), KmeansVQ)
    finally:
        QUANTIZERS.pop("kmeans_test_alias")


def test_kmeans_picks_nearest_code_and_ema_moves_codes_to_their_members():
    q = KmeansVQ(2, 2, ema=True, decay=0.5)
    with torch.no_grad():
        q.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
        q.embed_sum.copy_(q.embedding)
        q.cluster_size.fill_(1.0)
    z = torch.tensor([[[[1.0, 9.0]], [[1.0, 9.0]]]])  # (B=1, C=2, H=1, W=2): points (1,1) and (9,9)
    q.train()
    out = q(z)
    assert out.indices.flatten().tolist() == [0, 1]
    assert torch.allclose(q.embedding, torch.tensor([[0.5, 0.5], [9.5, 9.5]]), atol=1e-3)
    # β·mean((z_e − e)²) against the updated codes (0.5 away per coordinate); no codebook term with EMA
    assert out.loss.item() == pytest.approx(0.25 * 0.25, rel=1e-4)


def test_hyper_kmeans_assignment_is_the_geodesic_nearest_code():
    torch.manual_seed(0)
    q = HyperKmeansVQ(5, 40, curvature=0.7, init_radius=0.8)
    with torch.no_grad():
        q.tangent_codes.mul_(torch.rand(40, 1) * 2)  # spread the norms too
    rows = torch.randn(300, 5) * 1.5
    x = expmap0(rows, c=0.7)
    e = q.ball_codes().detach()
    ours = q.assign(x, e)
    full = distance(x.unsqueeze(1), e.unsqueeze(0), c=0.7).argmin(dim=1)
    assert (ours == full).float().mean() > 0.99  # ties within float32 rounding are allowed to differ


def test_gated_pixelcnn_is_causal():
    torch.manual_seed(0)
    net = GatedPixelCNN(num_codes=5, dim=8, layers=3, kernel=5)
    codes = torch.randint(0, 5, (1, 6, 6))
    emb = net.embed(codes).permute(0, 3, 1, 2).detach().requires_grad_(True)
    v, h = emb, emb
    for layer in net.layers:
        v, h = layer(v, h)
    i, j = 3, 2
    net.head(h)[0, :, i, j].sum().backward()
    dep = emb.grad[0].abs().sum(0)
    future = torch.zeros(6, 6, dtype=torch.bool)
    future[i, j:] = True
    future[i + 1:] = True
    assert dep[future].max() == 0
    assert dep[i, j - 1] > 0 and dep[i - 1, j + 1] > 0  # it does see the left neighbour and the row above
    samples = net.sample(2, (3, 4), generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 3, 4) and samples.max() < 5


def test_cluster_scores_on_known_toy_clusters():
    rng = np.random.RandomState(0)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], dtype=float)
    labels = np.repeat(np.arange(3), 100)
    tight = centres[labels] + 0.3 * rng.randn(300, 3)
    good = cluster_scores(tight, labels)
    assert good["silhouette"] > 0.9 and good["davies_bouldin"] < 0.15 and good["clusters"] == 3
    shuffled = cluster_scores(tight, rng.permutation(labels))
    assert shuffled["silhouette"] < 0.05 and shuffled["davies_bouldin"] > 5
    single = cluster_scores(tight, np.zeros(300, dtype=int))
    assert math.isnan(single["silhouette"]) and "2..N-1" in single["note"]


def test_corruption_changes_images_but_keeps_range_and_is_seeded():
    x = torch.rand(3, 1, 28, 28) - 0.5
    a, b = corrupt(x, seed=3), corrupt(x, seed=3)
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -0.5 and a.max() <= 0.5 and (a - x).abs().mean() > 0.05


def test_frechet_distance_and_inception_score_match_closed_forms():
    rng = np.random.RandomState(0)
    f = rng.randn(500, 4)
    assert abs(frechet_distance(f, f)) < 1e-6
    shift = np.array([3.0, 0, 0, 0])
    assert frechet_distance(f, f + shift) == pytest.approx(9.0, rel=1e-6)
    uniform = np.full((20, 10), 0.1)
    assert inception_score(uniform, splits=2)[0] == pytest.approx(1.0, abs=1e-6)
    onehot = np.eye(10)[np.arange(20) % 10] * (1 - 1e-9) + 1e-10
    assert inception_score(onehot, splits=1)[0] == pytest.approx(10.0, rel=1e-3)


@pytest.mark.parametrize("n", [3, 400])  # fewer samples than dimensions (SVD form) and more (eigh form)
def test_trace_sqrt_product_matches_scipy_sqrtm(n):
    from scipy import linalg

    rng = np.random.RandomState(n)
    a, b = rng.randn(n, 6) @ rng.randn(6, 6), rng.randn(n + 2, 6)
    ref = np.trace(linalg.sqrtm(np.cov(a, rowvar=False) @ np.cov(b, rowvar=False))).real
    assert trace_sqrt_product(a, b) == pytest.approx(ref, rel=1e-6)


def test_hyper_kmeans_starts_with_many_codes_in_use():
    """Equal-norm initial codes: assignments follow direction, so a fresh codebook is not collapsed."""
    torch.manual_seed(0)
    q = HyperKmeansVQ(64, 512)
    out = q(torch.randn(8, 64, 7, 7) * 0.1)
    assert out.indices.unique().numel() > 100


@pytest.mark.parametrize("old, new, cls", [("hyper", "hypervq", "HyperVQ"), ("vq", "kmeans", "KmeansVQ")])
def test_old_names_still_build_with_one_line_naming_the_new_one(old, new, cls, capsys):
    with pytest.warns(DeprecationWarning, match=f"use '{new}'"):
        q = build_quantizer(old, 4, 8)
    assert type(q).__name__ == cls
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{old}'" in err[0] and f"'{new}'" in err[0]
    assert canonical_name(new) == new and capsys.readouterr().err == ""


def test_each_quantizer_takes_only_the_settings_it_knows():
    settings = {"temp": [2.0, 0.5, 0.9], "curvature": 0.5, "clip_radius": None, "beta": 0.3, "ema": True,
                "diversity_weight": 0.1}
    assert options_for("gumbel", settings) == {"temp": [2.0, 0.5, 0.9], "diversity_weight": 0.1}
    assert options_for("kmeans", settings) == {"beta": 0.3, "ema": True}
    assert options_for("hyper_kmeans", settings) == {"beta": 0.3, "curvature": 0.5}
    settings.update(clip_mode="soft", logit_scale=1.5)
    assert set(options_for("hypervq", settings)) == {"temp", "curvature", "clip_radius", "clip_mode", "logit_scale",
                                                     "diversity_weight"}
    assert set(options_for("hyper_embmat", settings)) == {"temp", "curvature", "clip_radius", "clip_mode",
                                                          "logit_scale"}
    for name in QUANTIZERS:
        build_quantizer(name, 4, 8, **options_for(name, settings))


def test_a_config_stored_under_an_old_name_loads_silently(recwarn, capsys):
    stored = VQVAEConfig(quantizer="hypervq", num_codes=8, embedding_dim=4, hidden=8).to_dict()
    stored["quantizer"] = "hyper"
    cfg = VQVAEConfig.from_dict(stored)
    assert cfg.quantizer == "hypervq" and not recwarn.list and capsys.readouterr().err == ""
