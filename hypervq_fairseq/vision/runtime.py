"""What every vision subcommand shares: atomic checkpoints, exact resume, seeded batches, logs.

Resume is exact: the checkpoint holds the model, the optimizer, the step and torch's RNG
state, and batches are drawn from a permutation seeded by ``(seed, epoch)``, so step ``s``
sees the same batch whether or not the run was interrupted before it.
"""
from __future__ import annotations

import os
from typing import Iterator, Optional

import torch
from torch.utils.data import Dataset, TensorDataset

from ..files import atomic_write


def save_checkpoint(path: str, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str, kind: Optional[str] = None) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if kind is not None and state.get("kind") != kind:
        raise ValueError(f"checkpoint {path!r} holds a {state.get('kind')!r} model, expected {kind!r}")
    return state


def resume_training(path: str, kind: str, module, optimizer) -> Optional[dict]:
    """Restore module, optimizer and RNG state from ``path`` if it exists; the state, or None."""
    if not os.path.exists(path):
        return None
    state = load_checkpoint(path, kind=kind)
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return state


def make_writer(out: str):
    from tensorboardX import SummaryWriter

    return SummaryWriter(os.path.join(out, "tb"))


def _take(ds: Dataset, idx: torch.Tensor):
    if isinstance(ds, TensorDataset):
        return tuple(t[idx] for t in ds.tensors)
    items = [ds[int(i)] for i in idx]
    return tuple(torch.stack([torch.as_tensor(it[j]) for it in items]) for j in range(len(items[0])))


def _index_batches(n: int, batch_size: int, seed: int, start_step: int) -> Iterator[torch.Tensor]:
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the dataset ({n} items)")
    step = start_step
    while True:
        epoch, i = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        yield perm[i * batch_size:(i + 1) * batch_size]
        step += 1


def _moved(batch, device):
    return tuple(t.to(device, non_blocking=True) for t in batch) if device is not None else tuple(batch)


def _loader(ds: Dataset, index_batches, workers: int):
    """Lazy datasets (ImageFolder) go through a DataLoader so that ``workers`` decode in parallel."""
    from torch.utils.data import DataLoader

    return DataLoader(ds, batch_sampler=[b.tolist() for b in index_batches] if isinstance(index_batches, list)
                      else _IterSampler(index_batches), num_workers=workers, pin_memory=torch.cuda.is_available())


class _IterSampler:
    def __init__(self, it):
        self.it = it

    def __iter__(self):
        for idx in self.it:
            yield idx.tolist()


def _iterate(ds: Dataset, idx, device, workers: int) -> Iterator[tuple]:
    """Batches of ``ds`` for the index lists ``idx``, in memory or through worker processes."""
    if isinstance(ds, TensorDataset) or workers == 0:
        for b in idx:
            yield _moved(_take(ds, b), device)
    else:
        for b in _loader(ds, idx, workers):
            yield _moved(b, device)


def batches(ds: Dataset, batch_size: int, *, seed: int, start_step: int = 0, device=None, workers: int = 0) -> Iterator[tuple]:
    """Endless shuffled batches (last partial batch dropped); step ``s`` is reproducible."""
    return _iterate(ds, _index_batches(len(ds), batch_size, seed, start_step), device, workers)


def ordered_batches(ds: Dataset, batch_size: int, *, device=None, workers: int = 0) -> Iterator[tuple]:
    """The dataset in order, for evaluation."""
    idx = [torch.arange(s, min(s + batch_size, len(ds))) for s in range(0, len(ds), batch_size)]
    return _iterate(ds, idx, device, workers)


def device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def rng_state() -> dict:
    """CPU and (if present) CUDA generator states, so resumed Gumbel noise continues exactly."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state) -> None:
    if isinstance(state, torch.Tensor):  # older checkpoints: CPU state only
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def set_threads(threads: int) -> None:
    if threads and threads > 0:
        torch.set_num_threads(threads)
