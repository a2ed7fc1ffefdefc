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
from tqdm import tqdm

from ..files import atomic_write_json
from .model import VQVAE
from .runtime import (batches, device_of, make_writer, ordered_batches, resume_training, rng_state, save_checkpoint)


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
    ckpt = os.path.join(out, "probe.pt")
    torch.manual_seed(seed)
    head = ProbeHead(model.cfg.embedding_dim, classes, hidden).to(device_of(model))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    state = resume_training(ckpt, "probe", head, opt) if resume else None
    step = state["step"] if state else 0
    train_f = frozen_features(model, train_ds, workers=workers)
    test_f = frozen_features(model, test_ds, workers=workers)
    if not quiet:
        print(f"[probe] {model.cfg.quantizer}: features {tuple(train_f.tensors[0].shape[1:])} classes={classes} "
              f"train={len(train_f)} test={len(test_f)} steps={step}->{steps}")

    def save():
        save_checkpoint(ckpt, {"kind": "probe", "model": head.state_dict(), "optimizer": opt.state_dict(),
                               "step": step, "rng": rng_state(), "classes": classes, "hidden": hidden})

    writer = make_writer(out)
    it = batches(train_f, batch_size, seed=seed, start_step=step)
    bar = tqdm(total=steps, initial=step, desc=f"probe {model.cfg.quantizer}", disable=quiet, dynamic_ncols=True)
    head.train()
    while step < steps:
        z, y = next(it)
        logits = head(z)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % log_every == 0 or step == steps:
            acc = (logits.argmax(1) == y).float().mean().item() * 100
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.1f}")
            writer.add_scalar("probe/loss", loss.item(), step)
            writer.add_scalar("probe/train_acc", acc, step)
        if step % save_every == 0 and step < steps:
            save()
        bar.update(1)
    bar.close()
    save()
    metrics = {"accuracy": accuracy(head, test_f), "train_accuracy": accuracy(head, train_f), "steps": steps,
               "test_images": len(test_f)}
    writer.add_scalar("probe/test_accuracy", metrics["accuracy"], steps)
    writer.close()
    atomic_write_json(os.path.join(out, "probe_metrics.json"), metrics)
    return metrics
