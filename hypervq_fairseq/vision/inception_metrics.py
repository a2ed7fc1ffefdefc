"""FID and Inception Score from user-supplied Inception-v3 weights (paper Table 2).

Nothing downloads here: ``--inception-weights PATH`` must point at a torchvision
``inception_v3`` state dict (the ImageNet one, ``inception_v3_google-*.pth``). Images in
``[-0.5, 0.5]`` are made 3-channel, resized to 299×299 and normalised with ImageNet
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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_inception(path: str):
    from torchvision.models import inception_v3

    if not os.path.exists(path):
        raise FileNotFoundError(f"Inception weights {path!r} not found (a torchvision inception_v3 state dict is expected)")
    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if [m for m in missing if not m.startswith("AuxLogits")] or unexpected:
        raise ValueError(f"{path} is not an inception_v3 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval()


@torch.no_grad()
def inception_outputs(net, images: torch.Tensor, batch_size: int = 32):
    """Pooled features ``(N, 2048)`` and class probabilities ``(N, 1000)``."""
    feats, probs = [], []
    pooled = {}
    hook = net.avgpool.register_forward_hook(lambda m, i, o: pooled.__setitem__("x", o.flatten(1)))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size] + 0.5
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            logits = net((x - mean) / std)
            feats.append(pooled["x"])
            probs.append(F.softmax(logits, dim=1))
    finally:
        hook.remove()
    return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """``‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½)``."""
    from scipy import linalg

    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    cov_a, cov_b = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def inception_score(probs: np.ndarray, splits: int = 10):
    """Mean and std over ``splits`` of ``exp(E_x KL(p(y|x) ‖ p(y)))``."""
    splits = max(1, min(splits, len(probs)))
    scores = []
    for part in np.array_split(probs, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
