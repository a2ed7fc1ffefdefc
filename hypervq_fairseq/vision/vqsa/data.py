"""Images as uint8 arrays for VQ-SA: the corruptions work on pixels, the model on normalised tensors.

ImageNet-C corruptions are defined on uint8 RGB images, so every source here yields
``(H, W, 3)`` uint8 images and labels; normalisation happens after corruption.

- ``fashion-mnist`` / ``digits``: loaded through :func:`hypervq_fairseq.vision.data.load_dataset`
  (the Debian idx files, scikit-learn's digits), turned back into uint8, padded (Fashion-MNIST,
  28 → 32) or upsampled (digits, 8 → 32) to the 32×32 the corruption library needs, and
  replicated to three channels.
- ``imagenet``: ``ImageFolder`` on ``ROOT/train`` and ``ROOT/val`` (random-resized crop + flip
  for training, resize 256 + centre crop 224 for evaluation, as for a torchvision ResNet-50).
- ImageNet-C itself (Hendrycks & Dietterich's released folders ``ROOT/<corruption>/<severity>/``)
  can replace on-the-fly corruption of the validation set with ``--imagenet-c``.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .corruptions import RandomCorruption, corrupt_image, seed_for

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class ImageArray(Dataset):
    """In-memory uint8 images ``(N, H, W, 3)`` with labels; ``[i]`` gives ``(image, label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.num_classes = images, np.asarray(labels, dtype=np.int64), num_classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def _gray_to_rgb32(gray: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` uint8 → ``(N, 32, 32, 3)``: zero-pad 28×28, upsample 8×8 by 4 (nearest)."""
    h = gray.shape[1]
    if h == 8:
        gray = gray.repeat(4, axis=1).repeat(4, axis=2)
    elif h < 32:
        p = (32 - h) // 2
        gray = np.pad(gray, ((0, 0), (p, 32 - h - p), (p, 32 - h - p)))
    return np.repeat(gray[..., None], 3, axis=-1)


def load_small(name: str, *, train: bool, root: Optional[str] = None, cache_dir: Optional[str] = None,
               limit: int = 0, seed: int = 0) -> ImageArray:
    """Fashion-MNIST or scikit-learn digits as 32×32 RGB uint8; ``limit`` > 0 keeps a seeded random subset."""
    from ..data import load_dataset

    if name not in ("fashion-mnist", "digits"):
        raise ValueError(f"load_small handles 'fashion-mnist' and 'digits', got {name!r}")
    ds = load_dataset(name, root, train=train, cache_dir=cache_dir)
    images, labels = ds.tensors
    scale = 16.0 if name == "digits" else 255.0  # the loader's scale, undone exactly
    gray = ((images[:, 0].double() + 0.5) * scale).round()
    gray = (gray * (255.0 / scale)).round().clamp(0, 255).to(torch.uint8).numpy()
    labels = labels.numpy()
    if limit and limit < len(labels):
        keep = np.random.default_rng(seed).permutation(len(labels))[:limit]
        gray, labels = gray[keep], labels[keep]
    return ImageArray(_gray_to_rgb32(gray), labels, 10)


class ImageFolderUint8(Dataset):
    """torchvision ``ImageFolder`` yielding uint8 ``(H, W, 3)`` arrays after the crop/resize transform."""

    def __init__(self, folder: str, *, train: bool, size: int = 224, resize: Optional[int] = 256):
        import torchvision
        import torchvision.transforms as T

        if not os.path.isdir(folder):
            raise FileNotFoundError(f"image folder {folder!r} not found: expected one sub-folder per class (ImageFolder layout)")
        if train:
            tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip()])
        else:
            tf = T.Compose(([T.Resize(resize)] if resize else []) + [T.CenterCrop(size)])
        self.inner = torchvision.datasets.ImageFolder(folder, transform=tf)
        self.num_classes = len(self.inner.classes)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        img, label = self.inner[i]
        return np.asarray(img.convert("RGB"), dtype=np.uint8), label


class Normalise:
    """uint8 ``(H, W, 3)`` → float ``(3, H, W)`` with per-channel mean/std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        return (x - self.mean) / self.std


class TrainPairs(Dataset):
    """VQ-SA's training batches hold clean images *and* corrupted copies: ``(clean, corrupted, label)``.

    With ``corruption=None`` (the backbone-alone reference) items are ``(clean, label)``.
    Call :meth:`set_epoch` so each epoch draws new corruptions.
    """

    def __init__(self, base: Dataset, normalise: Normalise, corruption: Optional[RandomCorruption]):
        self.base, self.normalise, self.corruption, self.epoch = base, normalise, corruption, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, label = self.base[i]
        if self.corruption is None:
            return self.normalise(image), label
        return self.normalise(image), self.normalise(self.corruption(image, i, self.epoch)), label


class CorruptedView(Dataset):
    """Evaluation images under one corruption and severity (``name=None``: clean), seeded per image."""

    def __init__(self, base: Dataset, normalise: Normalise, name: Optional[str] = None, severity: int = 0, seed: int = 0):
        self.base, self.normalise, self.name, self.severity, self.seed = base, normalise, name, severity, seed

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, label = self.base[i]
        if self.name is not None:
            image = corrupt_image(image, self.name, self.severity, seed_for(self.seed, "eval", self.name, self.severity, i))
        return self.normalise(image), label
