"""FID and Inception Score from user-supplied Inception-v3 weights (paper Table 2).

Nothing downloads here: ``--inception-weights PATH`` must point at a torchvision
``inception_v3`` state dict (the ImageNet one, ``inception_v3_google-*.pth``). Images in
``[-0.5, 0.5]`` are made 3-channel, resized to ``INPUT_SIZE`` (299) and normalised with ImageNet
statistics (torchvision's ``transform_input`` convention). FID uses the 2048-d pooled
features; IS the softmax over the 1000 classes, averaged over ``splits``.
Scores from these weights are comparable with each other, not necessarily with
other FID implementations (which use a TF-ported network).
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..safe_load import load_checkpoint_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 299  # the resolution the ImageNet weights were trained at (75 is the network's minimum)


def load_inception(path: str):
    from torchvision.models import inception_v3

    if not os.path.exists(path):
        raise FileNotFoundError(f"Inception weights {path!r} not found (a torchvision inception_v3 state dict is expected)")
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    state = load_checkpoint_file(path, what="weights")
    expected = set(net.state_dict())
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise InputError(f"{path} is not a torchvision inception_v3 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    net.load_state_dict(state, assign=True)
    return net.eval()


@torch.no_grad()
def inception_outputs(net, images: torch.Tensor, batch_size: int = 32):
    """Pooled features ``(N, 2048)`` and class probabilities ``(N, 1000)``."""
    feats, probs = [], []
    pooled = {}
    hook = net.avgpool.register_forward_hook(lambda m, i, o: pooled.__setitem__("x", o.flatten(1)))
    device = next(net.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(mean.device) + 0.5
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            logits = net((x - mean) / std)
            feats.append(pooled["x"].cpu())
            probs.append(F.softmax(logits, dim=1).cpu())
    finally:
        hook.remove()
    return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


def trace_sqrt_product(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """``Tr((Σ_a Σ_b)^½)`` for the sample covariances of two feature sets, without ``sqrtm``.

    The eigenvalues of ``Σ_a Σ_b`` are those of the symmetric ``Σ_a^½ Σ_b Σ_a^½`` (≥ 0). With
    fewer samples than dimensions, ``Σ_a = AᵀA/(n_a−1)`` and ``Σ_b = BᵀB/(n_b−1)`` (centred rows),
    and the non-zero eigenvalues are the squared singular values of ``ABᵀ/√((n_a−1)(n_b−1))``:
    an ``n_a × n_b`` SVD instead of a ``2048 × 2048`` matrix square root.
    """
    a = feat_a - feat_a.mean(0)
    b = feat_b - feat_b.mean(0)
    na, nb, d = len(a), len(b), a.shape[1]
    if min(na, nb) <= d:
        return float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((na - 1) * (nb - 1)))
    cov_a, cov_b = a.T @ a / (na - 1), b.T @ b / (nb - 1)
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0, None)).sum())


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """``‖μ_a − μ_b‖² + Tr(Σ_a) + Tr(Σ_b) − 2·Tr((Σ_a Σ_b)^½)``."""
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    tr_a = float(((feat_a - mu_a) ** 2).sum() / (len(feat_a) - 1))
    tr_b = float(((feat_b - mu_b) ** 2).sum() / (len(feat_b) - 1))
    return float(((mu_a - mu_b) ** 2).sum()) + tr_a + tr_b - 2 * trace_sqrt_product(feat_a, feat_b)


def inception_score(probs: np.ndarray, splits: int = 10):
    """Mean and std over ``splits`` of ``exp(E_x KL(p(y|x) ‖ p(y)))``."""
    splits = max(1, min(splits, len(probs)))
    scores = []
    for part in np.array_split(probs, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
