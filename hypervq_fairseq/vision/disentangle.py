"""Disentanglement and cluster quality (paper §5.3.1, Table 5, Figure 5).

A VQ-VAE with latent dimension 3 and K = 16 codes is trained; 1,000 pre-quantization
embeddings ``z_e`` (one per sampled latent position of test images) are labelled by the
code they are assigned, and scikit-learn scores the clustering: silhouette (higher is
better) and Davies–Bouldin (lower is better). The "noisy" condition re-encodes the same
images after a random rotation (±30°), a random horizontal flip and additive Gaussian
noise, and scores the same positions again. A 3-D scatter PNG shows both.

Scores need at least two distinct codes among the samples; otherwise they are reported
as NaN with the reason.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..files import atomic_write
from .batches import ordered_batches
from .model import VQVAE

ROTATION_DEG = 30.0
NOISE_STD = 0.1   # on the [-0.5, 0.5] pixel scale


def cluster_scores(x: np.ndarray, labels: np.ndarray) -> dict:
    """Silhouette and Davies–Bouldin scores of ``x (N, D)`` under ``labels (N,)``."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return {"silhouette": math.nan, "davies_bouldin": math.nan, "clusters": n_labels,
                "note": f"scores need 2..N-1 clusters, got {n_labels}"}
    return {"silhouette": float(silhouette_score(x, labels)), "davies_bouldin": float(davies_bouldin_score(x, labels)),
            "clusters": n_labels}


def corrupt(images: torch.Tensor, *, seed: int) -> torch.Tensor:
    """Random rotation, random horizontal flip and Gaussian noise, per image, seeded."""
    from torchvision.transforms.functional import rotate

    g = torch.Generator().manual_seed(seed)
    out = []
    for img in images:
        angle = float(torch.empty(1).uniform_(-ROTATION_DEG, ROTATION_DEG, generator=g))
        img = rotate(img + 0.5, angle) - 0.5          # rotate with black (= -0.5) fill
        if torch.rand(1, generator=g).item() < 0.5:
            img = img.flip(-1)
        out.append(img + NOISE_STD * torch.randn(img.shape, generator=g))
    return torch.stack(out).clamp(-0.5, 0.5)


@torch.no_grad()
def embeddings_and_codes(model: VQVAE, images: torch.Tensor):
    """Rows of ``z_e`` (N·H·W, D) and their code indices."""
    model.eval()
    feats, codes = [], []
    device = next(model.parameters()).device
    for (x,) in ordered_batches(torch.utils.data.TensorDataset(images), 256, device=device):
        z_e, vq = model.encode(x)
        feats.append(z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]))
        codes.append(vq.indices.reshape(-1))
    return torch.cat(feats).cpu().numpy(), torch.cat(codes).cpu().numpy()


def evaluate_disentanglement(model: VQVAE, images: torch.Tensor, *, samples: int = 1000, seed: int = 0):
    """Scores for clean and corrupted images, plus the sampled points for plotting."""
    clean_x, clean_k = embeddings_and_codes(model, images)
    noisy_x, noisy_k = embeddings_and_codes(model, corrupt(images, seed=seed))
    rng = np.random.RandomState(seed)
    pick = rng.choice(len(clean_k), size=min(samples, len(clean_k)), replace=False)
    result = {"clean": cluster_scores(clean_x[pick], clean_k[pick]), "noisy": cluster_scores(noisy_x[pick], noisy_k[pick]),
              "samples": int(len(pick))}
    points = {"clean": (clean_x[pick], clean_k[pick]), "noisy": (noisy_x[pick], noisy_k[pick])}
    return result, points


def scatter_png(points: dict, path: str, title: str) -> None:
    """3-D scatter of the sampled embeddings, coloured by code, clean and noisy side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 5))
    for i, (name, (x, k)) in enumerate(points.items()):
        ax = fig.add_subplot(1, len(points), i + 1, projection="3d")
        x3 = x[:, :3] if x.shape[1] >= 3 else np.pad(x, ((0, 0), (0, 3 - x.shape[1])))
        ax.scatter(x3[:, 0], x3[:, 1], x3[:, 2], c=k, cmap="tab20", s=4)
        ax.set_title(f"{title}: {name}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)
