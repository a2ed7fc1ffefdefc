"""ImageNet-C corruptions for training augmentation and robustness evaluation.

The corruptions come from ``imagecorruptions`` (Michaelis et al.'s packaging of Hendrycks &
Dietterich's ImageNet-C code). The original PyPI release 1.1.2 no longer imports with
current setuptools (it imports ``pkg_resources``); we depend on its maintained fork
``imagecorruptions-imaug``, which installs the same import package ``imagecorruptions``.
It refuses images smaller than 32×32, so Fashion-MNIST is padded to 32×32 first.

Known / unknown split. The HyperVQ paper (§5.4, Table 6) reports accuracy on "known" and
"unknown" corruptions without listing them. We use ImageNet-C's own split, which its
numbers fit (a plain ResNet-50 scores 37.4 % on "known", the usual ImageNet-C accuracy):

- known = the 15 benchmark corruptions (noise, blur, weather, digital): training
  augmentation, and the set mCE averages over;
- unknown = the 4 held-out corruptions Hendrycks & Dietterich released for validation
  (speckle noise, Gaussian blur, spatter, saturate): never seen in training.

Determinism: the library draws from NumPy's global generator. Each image is corrupted
under its own seed (``seed_for``), so a sample's corruption depends only on the run's seed,
the corruption, the severity and the sample index, never on batch order.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Iterable, List, Sequence

import numpy as np

from ...errors import InputError

KNOWN_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
UNKNOWN_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIZE = 32  # imagecorruptions refuses smaller images


def check_split(known: Sequence[str], unknown: Sequence[str]) -> None:
    """Fail unless ``known`` ⊆ the 15 training corruptions, ``unknown`` ⊆ the 4 held-out ones, both non-empty."""
    if not known or not unknown:
        raise InputError(f"need at least one known and one unknown corruption, got known={list(known)} unknown={list(unknown)}")
    bad_known = [c for c in known if c not in KNOWN_CORRUPTIONS]
    bad_unknown = [c for c in unknown if c not in UNKNOWN_CORRUPTIONS]
    if bad_known:
        raise InputError(f"known (training) corruptions must be among {KNOWN_CORRUPTIONS}; got {bad_known}")
    if bad_unknown:
        raise InputError(f"unknown (held-out) corruptions must be among {UNKNOWN_CORRUPTIONS}; got {bad_unknown}")
    if len(set(known)) != len(known) or len(set(unknown)) != len(unknown):
        raise InputError(f"duplicate corruption names in known={list(known)} or unknown={list(unknown)}")


def parse_names(text: str, default: Sequence[str]) -> List[str]:
    """``"all"`` → ``default``; otherwise a comma-separated list of corruption names."""
    if text in ("all", ""):
        return list(default)
    return [t.strip() for t in text.split(",") if t.strip()]


def seed_for(*parts) -> int:
    """A stable 32-bit seed from any printable parts (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little")


def corrupt_image(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """One ImageNet-C corruption of a ``(H, W, 3)`` uint8 image (H, W ≥ 32), under its own seed."""
    from imagecorruptions import corrupt

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} dtype {image.dtype}")
    if min(image.shape[:2]) < MIN_SIZE:
        raise ValueError(f"imagecorruptions needs images of at least {MIN_SIZE}×{MIN_SIZE}, got {image.shape[:2]}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be in {SEVERITIES}, got {severity}")
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            out = corrupt(image, corruption_name=name, severity=severity)
    finally:
        np.random.set_state(state)
    out = np.asarray(out)
    # A few corruptions return a slightly different size or float NaN on flat inputs: restore the contract.
    out = np.nan_to_num(out.astype(np.float32), nan=0.0)[: image.shape[0], : image.shape[1]]
    return np.clip(out, 0, 255).astype(np.uint8)


def corrupt_batch(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt every image of ``(N, H, W, 3)`` uint8 ``images``; image ``i`` uses ``seed_for(seed, name, severity, i)``."""
    return np.stack([corrupt_image(img, name, severity, seed_for(seed, name, severity, i)) for i, img in enumerate(images)])


class RandomCorruption:
    """Training augmentation: with probability ``p`` apply a random known corruption at a random severity.

    Call with ``(image, index, epoch)``; the draw is seeded by ``(seed, epoch, index)``.
    """

    def __init__(self, names: Iterable[str], *, seed: int, p: float = 1.0, severities: Sequence[int] = SEVERITIES):
        self.names, self.seed, self.p, self.severities = list(names), seed, p, tuple(severities)
        if not self.names:
            raise ValueError("RandomCorruption needs at least one corruption name")

    def __call__(self, image: np.ndarray, index: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(seed_for(self.seed, "train", epoch, index))
        if rng.random() >= self.p:
            return image
        name = self.names[rng.integers(len(self.names))]
        severity = int(self.severities[rng.integers(len(self.severities))])
        return corrupt_image(image, name, severity, int(rng.integers(2**31)))
