"""Train and evaluate a VQ-SA classifier with corruption augmentation (paper §5.4, Table 6).

    # offline, CPU, a few minutes: small backbone from scratch on Fashion-MNIST, all four rows
    hypervq-vision vqsa compare --out runs/vqsa --epochs-ref 3 --epochs 2

    # one model: HyperVQ-SA on a backbone trained before (its checkpoint), then its table row
    hypervq-vision vqsa train --quantizer hypervq --backbone-weights runs/vqsa/reference/checkpoint_last.pt --out runs/hvq
    hypervq-vision vqsa eval --out runs/hvq --reference runs/vqsa/reference/errors.json

    # the paper's setting, one GPU: ResNet-50 from a local torchvision state_dict, K=1024, 50 epochs
    hypervq-vision vqsa train --dataset imagenet --data-root /data/imagenet --backbone resnet50 \
        --backbone-weights resnet50.pth --quantizer hypervq --codes 1024 --dim 512 --pool 7 \
        --epochs 50 --batch-size 128 --lr 1e-3 --backbone-lr-mult 0.1 --device cuda --num-workers 16 \
        --out runs/hypervq_sa

Training follows VQ-SA: every batch holds clean images and corrupted copies of them (a random
known corruption at a random severity each); the loss is cross-entropy on both, the
quantizer's own loss, and a consistency term ``‖ẑ(corrupted) − sg(ẑ(clean))‖²`` that asks a
corrupted image to land on its clean image's codes (the "same discrete embedding space").
The reference row (backbone alone) is trained on clean images only, like the paper's ResNet-50.

Evaluation writes ``errors.json``: the clean top-1 error and ``E_{s,c}`` for every known and
unknown corruption ``c`` and severity ``s``; with a reference model's ``errors.json`` it also
writes ``metrics.json`` (clean / known / unknown accuracy, mCE; see :mod:`.metrics`).

Checkpoints (``checkpoint_last.pt``) are written atomically every ``--save-every`` steps and
at each epoch's end; ``--resume`` continues at the exact batch: batches come from a
permutation seeded by ``(seed, epoch)`` and corruptions are seeded per image.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ...errors import InputError
from ...files import atomic_write_json
from ...safe_load import load_checkpoint_file
from ..batches import batches, steps_per_epoch
from ..loop import TrainState, train_loop
from ..quantizers import canonical_name
from ..runtime import set_threads
from .config import ARCH_KEYS, VQSAConfig, add_config_arguments, config_from_args  # noqa: F401  (re-exported)
from .corruptions import RandomCorruption
from .data import (GRAY_MEAN, GRAY_STD, IMAGENET_MEAN, IMAGENET_STD, CorruptedView, ImageFolderUint8, Normalise,
                   TrainPairs, load_small)
from .metrics import summary
from .model import VQSAClassifier, build_backbone, load_resnet50_weights, num_parameters

CHECKPOINT = "checkpoint_last.pt"
KIND = "vqsa"


# -- data ---------------------------------------------------------------------------------

def normaliser(cfg: VQSAConfig) -> Normalise:
    return Normalise(IMAGENET_MEAN, IMAGENET_STD) if cfg.backbone == "resnet50" else Normalise(GRAY_MEAN, GRAY_STD)


def load_split(cfg: VQSAConfig, train: bool) -> Dataset:
    """uint8 images of the training or evaluation split, limited to a seeded subset when asked."""
    limit = cfg.train_limit if train else cfg.eval_limit
    if cfg.dataset in ("fashion-mnist", "digits"):
        return load_small(cfg.dataset, train=train, root=cfg.data_root, cache_dir=cfg.cache_dir, limit=limit, seed=cfg.seed)
    ds = ImageFolderUint8(os.path.join(cfg.data_root, "train" if train else "val"), train=train)
    if limit and limit < len(ds):
        g = torch.Generator().manual_seed(cfg.seed)
        ds = Subset(ds, torch.randperm(len(ds), generator=g)[:limit].tolist())
    return ds


def num_classes_of(ds: Dataset) -> int:
    return ds.dataset.num_classes if isinstance(ds, Subset) else ds.num_classes


# -- model --------------------------------------------------------------------------------

def build_model(cfg: VQSAConfig, num_classes: int) -> VQSAClassifier:
    backbone = build_backbone(cfg.backbone, width=cfg.width)
    model = VQSAClassifier(backbone, num_classes, quantizer=cfg.quantizer, dim=cfg.dim, num_codes=cfg.codes,
                           heads=cfg.heads, pool=cfg.pool, temp=cfg.temp, diversity_weight=cfg.diversity_weight)
    if cfg.backbone_weights:
        load_backbone_weights(model, cfg.backbone_weights, cfg.backbone)
    return model


def load_backbone_weights(model: VQSAClassifier, path: str, backbone: str) -> None:
    """Initialise the backbone from a vqsa checkpoint or, for resnet50, a torchvision state_dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights {path!r} not found")
    state = load_checkpoint_file(path, what="backbone weights")
    if isinstance(state, dict) and state.get("kind") == KIND:
        if state["config"]["backbone"] != backbone:
            raise InputError(f"{path} holds a {state['config']['backbone']!r} backbone, expected {backbone!r}")
        sub = {k[len("backbone."):]: v for k, v in state["model"].items() if k.startswith("backbone.")}
        model.backbone.load_state_dict(sub)
        return
    if backbone != "resnet50":
        raise InputError(f"{path} is not a vqsa checkpoint; only --backbone resnet50 accepts a torchvision state_dict")
    load_resnet50_weights(model.backbone.net, path)
    # The backbone-alone row of Table 6 is the pretrained ResNet-50 itself: keep its classifier.
    fc_w, fc_b = state.get("fc.weight"), state.get("fc.bias")
    head = model.head.classifier
    if model.quantizer_name == "none" and fc_w is not None and fc_w.shape == head.weight.shape:
        with torch.no_grad():
            head.weight.copy_(fc_w)
            head.bias.copy_(fc_b)


def make_optimizer(model: VQSAClassifier, cfg: VQSAConfig) -> torch.optim.Optimizer:
    groups = [
        {"params": list(model.backbone.parameters()), "lr_mult": cfg.backbone_lr_mult},
        {"params": list(model.head.parameters()), "lr_mult": 1.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over 3% of the steps, then cosine decay to 0."""
    warmup = max(1, int(0.03 * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


# -- training -----------------------------------------------------------------------------

def train_step(model: VQSAClassifier, batch, cfg: VQSAConfig, device) -> Dict[str, torch.Tensor]:
    """Forward and losses for one batch; returns the loss terms (``loss`` is their weighted sum)."""
    if len(batch) == 3:  # VQ-SA pairs: clean and corrupted copies share labels
        clean, corrupted, y = batch
        x, y, n_clean = torch.cat([clean, corrupted]).to(device), torch.cat([y, y]).to(device), clean.shape[0]
    else:
        x, y = batch
        x, y, n_clean = x.to(device), y.to(device), None
    logits, q = model(x)
    out = {"ce": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}
    loss = out["ce"]
    if q is not None:
        out["vq"] = q.loss
        out["ppl"] = q.perplexity.detach()
        loss = loss + q.loss
        if n_clean is not None and cfg.consistency_weight > 0:
            out["consistency"] = F.mse_loss(q.z_q[n_clean:], q.z_q[:n_clean].detach())
            loss = loss + cfg.consistency_weight * out["consistency"]
    out["loss"] = loss
    return out


def _same_architecture(cfg: VQSAConfig, path: str, stored: dict) -> None:
    """Weights of another architecture cannot continue this run: refuse, naming the option."""
    config = {**stored["config"], "quantizer": canonical_name(stored["config"]["quantizer"], warn=False)}
    for k in ARCH_KEYS:
        if config[k] != getattr(cfg, k):
            raise InputError(f"{path} was trained with {k}={config[k]!r}, this run has {getattr(cfg, k)!r}; "
                             "use another --out, or drop --resume to start over")


def train(cfg: VQSAConfig) -> VQSAClassifier:
    """Train (or resume) the model described by ``cfg``; returns it in eval mode."""
    # data: clean images, paired with corrupted copies unless this is the reference
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    train_base = load_split(cfg, train=True)
    num_classes = num_classes_of(train_base)
    corruption = RandomCorruption(cfg.known_list, seed=cfg.seed, p=cfg.p_corrupt, severities=cfg.severity_list) \
        if cfg.train_corruptions else None
    pairs = TrainPairs(train_base, normaliser(cfg), corruption)

    # model and optimizer, then the checkpoint to continue from
    model = build_model(cfg, num_classes).to(device)
    opt = make_optimizer(model, cfg)
    per_epoch = steps_per_epoch(len(pairs), cfg.batch_size)
    total = per_epoch * cfg.epochs
    state = TrainState(os.path.join(cfg.out, CHECKPOINT), KIND, model, opt, meta={"config": asdict(cfg)})
    if cfg.resume and state.resume(check=lambda stored: _same_architecture(cfg, state.path, stored)):
        print(f"[vqsa] resumed {state.path} at step {state.step}/{total}")
    print(f"[vqsa] {cfg.dataset}: {len(pairs)} training images, {num_classes} classes, {per_epoch} steps/epoch × "
          f"{cfg.epochs} epochs = {total} steps | backbone {cfg.backbone} {num_parameters(model.backbone) / 1e6:.2f} M, "
          f"head {cfg.quantizer} {num_parameters(model.head) / 1e6:.2f} M | "
          f"{'clean + corrupted pairs (' + str(len(cfg.known_list)) + ' known corruptions)' if corruption else 'clean only'}")

    def step(i: int, batch) -> dict:
        model.set_num_updates(i)  # Gumbel temperature schedule
        lr = lr_at(i, total, cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        return train_step(model, batch, cfg, device)

    stop_at = min(total, state.step + cfg.max_steps) if cfg.max_steps > 0 else total
    it = batches(pairs, cfg.batch_size, seed=cfg.seed, start_step=state.step, workers=cfg.num_workers,
                 on_epoch=pairs.set_epoch)
    seconds = train_loop(state, step, it, steps=stop_at, log_every=1, save_every=cfg.save_every,
                         epoch_steps=per_epoch, desc=f"vqsa {cfg.quantizer}", quiet=not cfg.progress)
    print(f"[vqsa] at step {state.step}/{total} after {seconds:.0f} s")
    return model


# -- evaluation ---------------------------------------------------------------------------

@torch.no_grad()
def error_rate(model: VQSAClassifier, ds: Dataset, cfg: VQSAConfig, device) -> float:
    wrong = seen = 0
    for x, y in DataLoader(ds, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers):
        logits, _ = model(x.to(device))
        wrong += int((logits.argmax(-1).cpu() != y).sum())
        seen += len(y)
    return wrong / seen


def evaluate(model: VQSAClassifier, cfg: VQSAConfig, reference: Optional[dict] = None) -> dict:
    """Clean error and ``E_{s,c}`` for every known and unknown corruption; writes errors.json (and metrics.json)."""
    set_threads(cfg.threads)
    device = torch.device(cfg.device)
    model.eval().to(device)
    norm = normaliser(cfg)
    base = load_split(cfg, train=False)
    names = cfg.known_list + cfg.unknown_list
    jobs = [(c, s) for c in names for s in cfg.severity_list]
    errors: Dict[str, Dict[int, float]] = {c: {} for c in names}
    clean = error_rate(model, CorruptedView(base, norm), cfg, device)
    for c, s in tqdm(jobs, desc="ImageNet-C" if cfg.imagenet_c else "corruptions", disable=not cfg.progress):
        if cfg.imagenet_c:
            view = CorruptedView(ImageFolderUint8(os.path.join(cfg.imagenet_c, c, str(s)), train=False, resize=None), norm)
        else:
            view = CorruptedView(base, norm, c, s, seed=cfg.seed)
        errors[c][s] = error_rate(model, view, cfg, device)
    result = {"clean": clean, "corruptions": errors, "known": cfg.known_list, "unknown": cfg.unknown_list,
              "quantizer": cfg.quantizer, "eval_images": len(base)}
    atomic_write_json(os.path.join(cfg.out, "errors.json"), result)
    if reference is not None:
        metrics = row_metrics(result, reference)
        atomic_write_json(os.path.join(cfg.out, "metrics.json"), metrics)
        result["metrics"] = metrics
    return result


def row_metrics(result: dict, reference: dict) -> dict:
    """Table 6's columns for one model against a reference model's errors (both as in errors.json)."""
    return summary(result["clean"], _int_keys(result["corruptions"]), result["known"], result["unknown"],
                   _int_keys(reference["corruptions"]))


def _int_keys(errors: dict) -> Dict[str, Dict[int, float]]:
    """JSON turns severity keys into strings; restore them."""
    return {c: {int(s): float(e) for s, e in per.items()} for c, per in errors.items()}
