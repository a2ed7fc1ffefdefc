"""Codes a reviewer compares a quantizer with: k-means on MFCC, k-means on a transformer layer, random codes.

- **k-means on MFCC** (HuBERT's first-iteration targets): 13 Kaldi-style MFCCs with their first
  and second differences (39 values), computed on exactly the model's frames: a window of the
  conv stack's receptive field every stride (25 ms every 20 ms for the stock stack), no
  padding, so MFCC frame ``t`` covers the samples code ``t`` was computed from.
- **k-means on layer N** (HuBERT's later iterations): the output of transformer layer N of the
  same checkpoint, in eval mode.
- **random codes**: the quantizer's own codes shuffled across frames with a seeded permutation,
  so the code distribution (hence codes used, entropy and bitrate) is exactly the quantizer's
  and only the link to the audio is gone: the floor any code must beat.

k-means is scikit-learn's ``KMeans`` (k-means++ initialisation, seeded), fitted on at most
``max_fit_frames`` frames drawn with the same seed, then every frame gets its nearest centre.
K cannot exceed the number of distinct frames; a smaller K than asked is recorded.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch

MFCC_CEPS = 13


def mfcc_frames(wave: np.ndarray, *, sample_rate: int, stride: int, receptive_field: int) -> np.ndarray:
    """``(T, 39)`` float32: MFCC + Δ + ΔΔ on windows of ``receptive_field`` samples every ``stride`` samples."""
    import torchaudio.compliance.kaldi as kaldi
    import torchaudio.functional as AF

    x = torch.as_tensor(np.asarray(wave, dtype=np.float32) * 32768.0)[None]  # Kaldi's int16 scale
    if x.shape[1] < receptive_field:
        return np.zeros((0, 3 * MFCC_CEPS), dtype=np.float32)
    mfcc = kaldi.mfcc(x, sample_frequency=sample_rate, frame_length=1000.0 * receptive_field / sample_rate,
                      frame_shift=1000.0 * stride / sample_rate, num_ceps=MFCC_CEPS, dither=0.0, snip_edges=True,
                      use_energy=False)  # (T, 13)
    d1 = AF.compute_deltas(mfcc.T[None])[0].T
    d2 = AF.compute_deltas(d1.T[None])[0].T
    return torch.cat([mfcc, d1, d2], dim=1).numpy().astype(np.float32)


def fit_kmeans(features: np.ndarray, k: int, *, seed: int, max_fit_frames: int):
    """A fitted ``KMeans`` with ``min(k, distinct frames)`` centres, on at most ``max_fit_frames`` frames."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    fit = features if len(features) <= max_fit_frames else features[rng.choice(len(features), max_fit_frames,
                                                                               replace=False)]
    fit = np.asarray(fit, dtype=np.float32)
    distinct = len(np.unique(fit, axis=0))
    return KMeans(n_clusters=max(1, min(k, distinct)), n_init=1, random_state=seed).fit(fit)


def kmeans_codes(features: Dict[str, np.ndarray], k: int, *, seed: int, max_fit_frames: int = 100_000
                 ) -> Tuple[Dict[str, np.ndarray], int]:
    """Cluster ids ``(T, 1)`` per utterance of k-means fitted on all utterances' frames; and the K used."""
    keys = list(features)
    stacked = np.concatenate([np.asarray(features[u], dtype=np.float32) for u in keys])
    model = fit_kmeans(stacked, k, seed=seed, max_fit_frames=max_fit_frames)
    labels = model.predict(stacked).astype(np.int64)
    return split_like(labels[:, None], features), int(model.n_clusters)


def random_codes(codes: Dict[str, np.ndarray], *, seed: int) -> Dict[str, np.ndarray]:
    """``codes`` (``(T, G)`` per utterance) with frames permuted across the whole set: same distribution, no signal."""
    keys = list(codes)
    stacked = np.concatenate([codes[u] for u in keys])
    permuted = stacked[np.random.default_rng(seed).permutation(len(stacked))]
    return split_like(permuted, codes)


def split_like(stacked: np.ndarray, like: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Cut rows of ``stacked`` back into utterances with the frame counts of ``like``."""
    out, start = {}, 0
    for u, v in like.items():
        out[u] = stacked[start:start + len(v)]
        start += len(v)
    return out


def kmeans_sizes(codes_used: List[int], k: int) -> List[int]:
    """The K values to fit: each quantizer's number of codes in use, and ``k``; sorted, without repeats."""
    return sorted({int(n) for n in codes_used if n > 0} | {int(k)})
