"""One training loop for every vision trainer: VQ-VAE, probe, prior and VQ-SA.

A trainer writes only its step: ``step_fn(step, batch)`` runs the forward pass (and whatever
follows the update count: temperature schedule, learning rate) and returns a dict of
scalars whose ``"loss"`` is minimised. The loop does the rest, the same way for all:

- resume: :meth:`TrainState.resume` restores model, optimizer, step and RNG state, and the
  batches come from :func:`~.batches.batches` started at that step, so a resumed run is
  bit-for-bit the uninterrupted one (Gumbel noise included);
- a non-finite loss stops the run before the update, so no checkpoint holds poisoned weights;
- every ``log_every`` steps the scalars go to the progress bar and, with ``tensorboard``,
  to TensorBoard as ``PREFIX/KEY``;
- a checkpoint is written atomically every ``save_every`` steps (and at each epoch's end when
  ``epoch_steps`` is given), and once more at the end.

Checkpoints keep the layout of earlier releases (see :mod:`.checkpoint`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional

import torch
from tqdm import tqdm

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

StepFn = Callable[[int, tuple], Dict[str, Any]]


def make_writer(out: str, filename_suffix: str = ""):
    """A TensorBoard writer on ``out/tb`` (the folder is created on the first event).

    tensorboardX names event files by the second and the host: two writers opened within one
    second need different suffixes, or the second overwrites the first's file.
    """
    from tensorboardX import SummaryWriter

    return SummaryWriter(os.path.join(out, "tb"), filename_suffix=filename_suffix)


def log_scalars(out: str, prefix: str, scalars: Dict[str, float], step: int) -> None:
    """Add ``PREFIX/KEY`` scalars to ``out/tb`` outside a training loop (test metrics, scores)."""
    writer = make_writer(out, filename_suffix=f".{prefix}")  # never the training writer's file name
    for key, value in scalars.items():
        writer.add_scalar(f"{prefix}/{key}", value, step)
    writer.close()


@dataclass
class TrainState:
    """What a checkpoint holds (``model``, ``optimizer``, ``step``, RNG, ``meta``) and where it lives."""

    path: str
    kind: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    meta: dict = field(default_factory=dict)  # trainer-specific entries: config, dataset, ...
    step: int = 0

    def resume(self, check: Optional[Callable[[dict], None]] = None) -> bool:
        """Continue from ``path`` if it exists; ``check(stored)`` may refuse it. Whether it resumed."""
        if not os.path.exists(self.path):
            return False
        stored = load_checkpoint(self.path, kind=self.kind)
        if check is not None:
            check(stored)
        self.model.load_state_dict(stored["model"])
        self.optimizer.load_state_dict(stored["optimizer"])
        set_rng_state(stored["rng"])
        self.step = stored["step"]
        return True

    def save(self) -> None:
        save_checkpoint(self.path, {"kind": self.kind, **self.meta, "model": self.model.state_dict(),
                                    "optimizer": self.optimizer.state_dict(), "step": self.step, "rng": rng_state()})


def _floats(scalars: Dict[str, Any]) -> Dict[str, float]:
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in scalars.items()}


def train_loop(state: TrainState, step_fn: StepFn, batches: Iterator[tuple], *, steps: int, log_every: int = 10,
               save_every: int = 200, epoch_steps: int = 0, tensorboard: Optional[str] = None,
               tb_prefix: str = "train", desc: str = "train", quiet: bool = False) -> float:
    """Train ``state.model`` from ``state.step`` to ``steps``; returns the seconds taken, model in eval mode.

    ``tensorboard`` is the run's output folder (logs go to its ``tb/``); None logs nowhere.
    """
    writer = make_writer(tensorboard) if tensorboard else None
    bar = tqdm(total=steps, initial=state.step, desc=desc, disable=quiet, dynamic_ncols=True)
    state.model.train()
    t0 = time.time()
    try:
        while state.step < steps:
            # forward: the trainer's step
            scalars = step_fn(state.step, next(batches))
            loss = scalars["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: non-finite loss at step {state.step}: {_floats(scalars)}")

            # update
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.step += 1
            bar.update(1)

            # report, checkpoint
            if state.step % log_every == 0 or state.step == steps:
                values = _floats(scalars)
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
                if writer is not None:
                    for key, value in values.items():
                        writer.add_scalar(f"{tb_prefix}/{key}", value, state.step)
            at_epoch_end = epoch_steps > 0 and state.step % epoch_steps == 0
            if state.step < steps and (state.step % save_every == 0 or at_epoch_end):
                state.save()
        state.save()
        seconds = time.time() - t0
        if writer is not None:
            writer.add_scalar(f"{tb_prefix}/seconds", seconds, state.step)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    state.model.eval()
    return seconds
