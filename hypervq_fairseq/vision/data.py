"""Image datasets from local paths, through torchvision; nothing downloads here.

- ``fashion-mnist``: the Debian package ``dataset-fashion-mnist`` ships the four idx ``.gz``
  files. torchvision's ``FashionMNIST`` reads the *decompressed* files from
  ``ROOT/FashionMNIST/raw/``, so :func:`prepare_fashion_mnist` decompresses them once into a
  cache folder (atomically) and the stock class does the rest.
- ``mnist``, ``cifar100``: torchvision's classes with ``download=False`` on ``--data-root``.
- ``imagenet``: ``ImageFolder`` on ``--data-root/train`` and ``--data-root/val``, resized and
  centre-cropped to ``--image-size`` (128 in the paper).
- ``digits``: scikit-learn's 8×8 digits (1,797 real images) for the smallest tests.

MNIST-type and CIFAR sets are turned into in-memory tensors (fast on a CPU); pixels are
scaled to ``[-0.5, 0.5]`` and MSE is reported on that scale.
"""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..errors import InputError
from ..files import atomic_write

# Where Debian's dataset-fashion-mnist package installs its files.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
DATASETS = ("fashion-mnist", "mnist", "cifar100", "imagenet", "digits")


@dataclass
class DatasetInfo:
    channels: int
    classes: int
    size: int


INFO = {
    "fashion-mnist": DatasetInfo(1, 10, 28),
    "mnist": DatasetInfo(1, 10, 28),
    "cifar100": DatasetInfo(3, 100, 32),
    "imagenet": DatasetInfo(3, 1000, 128),
    "digits": DatasetInfo(1, 10, 8),
}


def default_cache_dir() -> str:
    return os.environ.get("HYPERVQ_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "hypervq_fairseq"))


def _decompress(src: str, dst: str) -> None:
    with open(dst, "wb") as out, (gzip.open(src, "rb") if src.endswith(".gz") else open(src, "rb")) as inp:
        shutil.copyfileobj(inp, out)


def prepare_fashion_mnist(source_dir: str, cache_dir: str) -> str:
    """Decompress the Debian idx ``.gz`` files into ``cache_dir/FashionMNIST/raw``; return ``cache_dir``."""
    raw = os.path.join(cache_dir, "FashionMNIST", "raw")
    for name in FASHION_FILES:
        target = os.path.join(raw, name)
        if os.path.exists(target):
            continue
        src = os.path.join(source_dir, name + ".gz")
        if not os.path.exists(src):
            plain = os.path.join(source_dir, name)
            if not os.path.exists(plain):
                raise FileNotFoundError(
                    f"Fashion-MNIST file {src} not found: expected the four idx files ({', '.join(FASHION_FILES)}, "
                    f"optionally .gz) in {source_dir} (Debian package dataset-fashion-mnist, or pass --data-root)"
                )
            src = plain
        atomic_write(target, partial(_decompress, src))
    return cache_dir


def _to_unit(images: torch.Tensor, scale: float) -> torch.Tensor:
    return images.float() / scale - 0.5


def _missing(name: str, root: str, err: Exception):
    return FileNotFoundError(f"{name} not found under {root!r} ({err}); pass --data-root pointing at the extracted dataset")


def load_dataset(name: str, root: str = None, *, train: bool = True, image_size: int = None, cache_dir: str = None) -> Dataset:
    """A dataset of ``(image in [-0.5, 0.5], label)`` pairs."""
    import torchvision

    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        n = len(d.target)
        rng = np.random.RandomState(0)
        order = rng.permutation(n)
        split = order[: int(0.8 * n)] if train else order[int(0.8 * n):]
        images = torch.from_numpy(d.images[split]).unsqueeze(1)
        return TensorDataset(_to_unit(images, 16.0), torch.from_numpy(d.target[split]).long())
    if name == "fashion-mnist":
        source = root or DEBIAN_FASHION_MNIST
        cache = prepare_fashion_mnist(source, cache_dir or os.path.join(default_cache_dir(), "fashion-mnist"))
        ds = torchvision.datasets.FashionMNIST(cache, train=train, download=False)
        return TensorDataset(_to_unit(ds.data.unsqueeze(1), 255.0), ds.targets.long())
    if root is None:
        raise InputError(f"dataset {name} needs --data-root (nothing is downloaded)")
    if name == "mnist":
        try:
            ds = torchvision.datasets.MNIST(root, train=train, download=False)
        except RuntimeError as err:
            raise _missing("MNIST", root, err) from err
        return TensorDataset(_to_unit(ds.data.unsqueeze(1), 255.0), ds.targets.long())
    if name == "cifar100":
        try:
            ds = torchvision.datasets.CIFAR100(root, train=train, download=False)
        except RuntimeError as err:
            raise _missing("CIFAR-100", root, err) from err
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)
        return TensorDataset(_to_unit(images, 255.0), torch.tensor(ds.targets).long())
    # imagenet
    import torchvision.transforms as T

    folder = os.path.join(root, "train" if train else "val")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"ImageNet folder {folder!r} not found: expected {root}/train and {root}/val in ImageFolder layout")
    size = image_size or INFO["imagenet"].size
    tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize([0.5] * 3, [1.0] * 3)])
    return torchvision.datasets.ImageFolder(folder, transform=tf)


def subset(ds: Dataset, n: int, seed: int) -> Dataset:
    """A seeded random subset of ``n`` items (all of ``ds`` when ``n`` is 0 or too large)."""
    if not n or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    return Subset(ds, torch.randperm(len(ds), generator=g)[:n].tolist())
