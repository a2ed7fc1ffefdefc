"""Frozen-feature classifier probe (paper §5.3, Tables 3 and 7).

The trained VQ-VAE's encoder, residual stack and quantizer are frozen; their output
``z_q`` feeds a light classifier: a 3×3 convolution with ReLU, global average pooling and
two fully connected layers. Only the classifier trains (cross-entropy). Features are
computed once in eval mode (hard codes, no Gumbel noise), which is what "frozen" means for
the Gumbel-type quantizers too.
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..files import atomic_write_json
from .batches import batches, ordered_batches
from .loop import TrainState, log_scalars, train_loop
from .model import VQVAE
from .runtime import device_of


class ProbeHead(nn.Module):
    def __init__(self, in_channels: int, classes: int, hidden: int = 128):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, z):
        h = F.relu(self.conv(z)).mean(dim=(2, 3))   # conv + ReLU, global average pool
        return self.fc2(F.relu(self.fc1(h)))


@torch.no_grad()
def frozen_features(model: VQVAE, ds, batch_size: int = 256, workers: int = 0) -> TensorDataset:
    model.eval()
    feats, labels = [], []
    for x, y in ordered_batches(ds, batch_size, device=device_of(model), workers=workers):
        feats.append(model.encode(x)[1].z_q)
        labels.append(y)
    return TensorDataset(torch.cat(feats), torch.cat(labels).long())


def accuracy(head: ProbeHead, feats: TensorDataset, batch_size: int = 512) -> float:
    head.eval()
    correct = 0
    with torch.no_grad():
        for z, y in ordered_batches(feats, batch_size):
            correct += (head(z).argmax(1) == y).sum().item()
    return 100.0 * correct / len(feats)


def train_probe(model: VQVAE, train_ds, test_ds, *, classes: int, out: str, steps: int, batch_size: int = 128,
                lr: float = 1e-3, hidden: int = 128, seed: int = 0, resume: bool = False, log_every: int = 10,
                save_every: int = 200, quiet: bool = False, workers: int = 0) -> dict:
    # the head and its optimizer, then the checkpoint to continue from
    torch.manual_seed(seed)
    head = ProbeHead(model.cfg.embedding_dim, classes, hidden).to(device_of(model))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    state = TrainState(os.path.join(out, "probe.pt"), "probe", head, opt, meta={"classes": classes, "hidden": hidden})
    if resume:
        state.resume()

    # the frozen features, computed once
    train_f = frozen_features(model, train_ds, workers=workers)
    test_f = frozen_features(model, test_ds, workers=workers)
    if not quiet:
        print(f"[probe] {model.cfg.quantizer}: features {tuple(train_f.tensors[0].shape[1:])} classes={classes} "
              f"train={len(train_f)} test={len(test_f)} steps={state.step}->{steps}")

    def step(i: int, batch) -> dict:
        z, y = batch
        logits = head(z)
        return {"loss": F.cross_entropy(logits, y), "train_acc": 100 * (logits.argmax(1) == y).float().mean()}

    it = batches(train_f, batch_size, seed=seed, start_step=state.step)
    train_loop(state, step, it, steps=steps, log_every=log_every, save_every=save_every, tensorboard=out,
               tb_prefix="probe", desc=f"probe {model.cfg.quantizer}", quiet=quiet)
    metrics = {"accuracy": accuracy(head, test_f), "train_accuracy": accuracy(head, train_f), "steps": steps,
               "test_images": len(test_f)}
    log_scalars(out, "probe", {"test_accuracy": metrics["accuracy"]}, steps)
    atomic_write_json(os.path.join(out, "probe_metrics.json"), metrics)
    return metrics
