"""Seeded batches: step ``s`` of a run sees the same images whether or not the run stopped before it.

Epoch ``e`` is a permutation seeded by ``(seed, e)``; its full batches are taken in order and
the last partial batch is dropped. A run resumed at step ``s`` starts inside epoch
``s // steps_per_epoch`` at batch ``s % steps_per_epoch``, so it draws exactly the batches
the uninterrupted run would have drawn. ``on_epoch(e)`` runs before epoch ``e``'s first
batch (VQ-SA draws each epoch's corruptions there).

In-memory datasets are indexed directly; lazily decoded ones (ImageFolder) go through a
``DataLoader`` when ``workers`` > 0. That loader gets its own generator: iterating a
``DataLoader`` draws a base seed, which must not move the global RNG that the Gumbel noise
of the next steps comes from.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..errors import InputError

# Spreads (seed, epoch) pairs apart so that nearby seeds do not share epoch permutations.
EPOCH_SEED_STRIDE = 100003


def steps_per_epoch(n: int, batch_size: int) -> int:
    if n // batch_size == 0:
        raise InputError(f"batch size {batch_size} is larger than the dataset ({n} items): lower --batch-size")
    return n // batch_size


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> List[torch.Tensor]:
    """The index batches of epoch ``epoch``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch))
    return [perm[i * batch_size:(i + 1) * batch_size] for i in range(n // batch_size)]


def _take(ds: Dataset, idx: torch.Tensor):
    if isinstance(ds, TensorDataset):
        return tuple(t[idx] for t in ds.tensors)
    items = [ds[int(i)] for i in idx]
    return tuple(torch.stack([torch.as_tensor(it[j]) for it in items]) for j in range(len(items[0])))


def _moved(batch, device):
    return tuple(t.to(device, non_blocking=True) for t in batch) if device is not None else tuple(batch)


def _iterate(ds: Dataset, idx: List[torch.Tensor], device, workers: int) -> Iterator[tuple]:
    """Batches of ``ds`` for the index batches ``idx``, in this process or in ``workers`` processes."""
    if isinstance(ds, TensorDataset) or workers == 0:
        for b in idx:
            yield _moved(_take(ds, b), device)
        return
    loader = DataLoader(ds, batch_sampler=[b.tolist() for b in idx], num_workers=workers,
                        pin_memory=torch.cuda.is_available(), generator=torch.Generator())
    for b in loader:
        yield _moved(b, device)


def batches(ds: Dataset, batch_size: int, *, seed: int, start_step: int = 0, device=None, workers: int = 0,
            on_epoch: Optional[Callable[[int], None]] = None) -> Iterator[tuple]:
    """Endless shuffled batches from step ``start_step`` on; a batch larger than ``ds`` fails here, at once."""
    per_epoch = steps_per_epoch(len(ds), batch_size)

    def endless():
        epoch, offset = divmod(start_step, per_epoch)
        while True:
            if on_epoch is not None:
                on_epoch(epoch)
            yield from _iterate(ds, epoch_order(len(ds), batch_size, seed, epoch)[offset:], device, workers)
            epoch, offset = epoch + 1, 0

    return endless()


def ordered_batches(ds: Dataset, batch_size: int, *, device=None, workers: int = 0) -> Iterator[tuple]:
    """The dataset in order, for evaluation."""
    idx = [torch.arange(s, min(s + batch_size, len(ds))) for s in range(0, len(ds), batch_size)]
    return _iterate(ds, idx, device, workers)
