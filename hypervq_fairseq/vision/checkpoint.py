"""Checkpoints every vision trainer writes: atomic, typed by ``kind``, with the RNG state for exact resume.

A checkpoint is a ``torch.save``'d dict with ``kind`` (``vqvae``, ``probe``, ``prior``,
``vqsa``), ``model``, ``optimizer``, ``step``, ``rng`` and the trainer's own entries
(``config``, ``dataset``, ...). It is written through :func:`hypervq_fairseq.files.atomic_write`,
so a kill leaves the previous checkpoint intact. The RNG state holds the CPU generator and,
where there is one, every CUDA generator, so that resumed Gumbel noise continues exactly.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from ..errors import CheckpointError
from ..files import atomic_write
from ..safe_load import load_checkpoint_file


def save_checkpoint(path: str, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str, kind: Optional[str] = None) -> dict:
    """The checkpoint at ``path``; with ``kind``, refuses one written by another trainer."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} not found")
    state = load_checkpoint_file(path)  # weights only: a checkpoint cannot run code
    if kind is not None and (not isinstance(state, dict) or state.get("kind") != kind):
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path!r} holds a {found!r} model, expected {kind!r}")
    return state


def rng_state() -> dict:
    """CPU and (if present) CUDA generator states."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state) -> None:
    if isinstance(state, torch.Tensor):  # checkpoints of earlier releases: the CPU state alone
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
