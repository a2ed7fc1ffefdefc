"""What every vision subcommand shares: atomic checkpoints, exact resume, seeded batches, logs.

Resume is exact: the checkpoint holds the model, the optimizer, the step and torch's RNG
state, and batches are drawn from a permutation seeded by ``(seed, epoch)``, so step ``s``
sees the same batch whether or not the run was interrupted before it.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Iterator, Optional

import torch
from torch.utils.data import Dataset, TensorDataset


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)``, then move the file into place with ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path: str, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str, kind: Optional[str] = None) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if kind is not None and state.get("kind") != kind:
        raise ValueError(f"checkpoint {path!r} holds a {state.get('kind')!r} model, expected {kind!r}")
    return state


def write_json(path: str, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
    atomic_write(path, write)


def make_writer(out: str):
    from tensorboardX import SummaryWriter

    return SummaryWriter(os.path.join(out, "tb"))


def _take(ds: Dataset, idx: torch.Tensor):
    if isinstance(ds, TensorDataset):
        return tuple(t[idx] for t in ds.tensors)
    items = [ds[int(i)] for i in idx]
    return tuple(torch.stack([torch.as_tensor(it[j]) for it in items]) for j in range(len(items[0])))


def batches(ds: Dataset, batch_size: int, *, seed: int, start_step: int = 0) -> Iterator[tuple]:
    """Endless shuffled batches (last partial batch dropped); step ``s`` is reproducible."""
    n = len(ds)
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the dataset ({n} items)")
    step = start_step
    while True:
        epoch, i = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        yield _take(ds, perm[i * batch_size:(i + 1) * batch_size])
        step += 1


def ordered_batches(ds: Dataset, batch_size: int) -> Iterator[tuple]:
    """The dataset in order, for evaluation."""
    for start in range(0, len(ds), batch_size):
        yield _take(ds, torch.arange(start, min(start + batch_size, len(ds))))


def set_threads(threads: int) -> None:
    if threads and threads > 0:
        torch.set_num_threads(threads)
