"""VQ-VAE reconstruction training (paper §5.2, Tables 1 and 4): MSE and codebook perplexity.

Loss: ``MSE(x̂, x) + quantizer loss`` (commitment/codebook terms for the k-means types,
nothing extra for the Gumbel types). Adam, lr 3e-4, as in the paper (§5.1).
Outputs in ``--out``: ``checkpoint.pt`` (written atomically every ``--save-every`` steps and
at the end), ``metrics.json`` (test MSE and perplexity) and TensorBoard logs in ``tb/``.
"""
from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..files import atomic_write_json
from ..quantizers.perplexity import perplexity_of
from .model import VQVAE, VQVAEConfig, num_parameters
from .runtime import (batches, device_of, load_checkpoint, make_writer, ordered_batches, rng_state, save_checkpoint,
                      set_rng_state)


def build_from_checkpoint(path: str, device="cpu") -> VQVAE:
    state = load_checkpoint(path, kind="vqvae")
    model = VQVAE(VQVAEConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    model.to(device)
    model.set_num_updates(state["step"])
    return model.eval()


def train_vqvae(cfg: VQVAEConfig, train_ds, *, out: str, steps: int, batch_size: int = 128, lr: float = 3e-4,
                seed: int = 0, resume: bool = False, log_every: int = 10, save_every: int = 200,
                dataset: str = "", quiet: bool = False, device="cpu", workers: int = 0) -> VQVAE:
    """Train (or resume) a VQ-VAE for ``steps`` updates; returns the model in eval mode."""
    ckpt = os.path.join(out, "checkpoint.pt")
    torch.manual_seed(seed)
    model = VQVAE(cfg).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    step = 0
    if resume and os.path.exists(ckpt):
        state = load_checkpoint(ckpt, kind="vqvae")
        if VQVAEConfig.from_dict(state["config"]).to_dict() != cfg.to_dict():
            raise ValueError(f"{ckpt} was trained with config {state['config']}, not {cfg.to_dict()}; use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        set_rng_state(state["rng"])
    if not quiet:
        print(f"[vqvae] {cfg.quantizer}: K={cfg.num_codes} D={cfg.embedding_dim} hidden={cfg.hidden} "
              f"params={num_parameters(model) / 1e6:.3f}M train_images={len(train_ds)} steps={step}->{steps} batch={batch_size}")

    def save():
        save_checkpoint(ckpt, {"kind": "vqvae", "config": cfg.to_dict(), "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "step": step, "rng": rng_state(),
                               "dataset": dataset})

    writer = make_writer(out)
    model.train()
    it = batches(train_ds, batch_size, seed=seed, start_step=step, device=device, workers=workers)
    bar = tqdm(total=steps, initial=step, desc=f"train {cfg.quantizer}", disable=quiet, dynamic_ncols=True)
    t0 = time.time()
    while step < steps:
        x, _ = next(it)
        model.set_num_updates(step)
        recon, vq, _ = model(x)
        mse = F.mse_loss(recon, x)
        loss = mse + vq.loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {step} ({cfg.quantizer})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % log_every == 0 or step == steps:
            used = int(vq.indices.unique().numel())
            bar.set_postfix(loss=f"{loss.item():.4f}", mse=f"{mse.item():.4f}", ppl=f"{vq.perplexity.item():.1f}", used=used)
            for k, v in {"loss": loss.item(), "mse": mse.item(), "perplexity": vq.perplexity.item(), "codes_used": used}.items():
                writer.add_scalar(f"train/{k}", v, step)
        if step % save_every == 0 and step < steps:
            save()
        bar.update(1)
    bar.close()
    save()
    writer.add_scalar("train/seconds", time.time() - t0, step)
    writer.close()
    return model.eval()


@torch.no_grad()
def evaluate_vqvae(model: VQVAE, ds, batch_size: int = 256, workers: int = 0) -> dict:
    """Test MSE, perplexity of the code usage over the whole set, and its per-batch mean."""
    model.eval()
    k = model.cfg.num_codes
    counts = torch.zeros(k)
    se, n, batch_ppls = 0.0, 0, []
    for x, _ in ordered_batches(ds, batch_size, device=device_of(model), workers=workers):
        recon, vq, _ = model(x)
        se += F.mse_loss(recon, x, reduction="sum").item()
        n += x.numel()
        counts += torch.bincount(vq.indices.flatten().cpu(), minlength=k).float()
        batch_ppls.append(vq.perplexity.item())
    return {
        "mse": se / n,
        "perplexity": perplexity_of(counts / counts.sum()).item(),
        "batch_perplexity": sum(batch_ppls) / len(batch_ppls),
        "codes_used": int((counts > 0).sum()),
    }


def run_train(args, cfg: VQVAEConfig, train_ds, test_ds) -> dict:
    model = train_vqvae(cfg, train_ds, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, resume=args.resume, log_every=args.log_every, save_every=args.save_every,
                        dataset=args.dataset, quiet=args.quiet, device=args.device, workers=args.workers)
    metrics = evaluate_vqvae(model, test_ds, workers=args.workers)
    metrics.update(quantizer=cfg.quantizer, steps=args.steps, test_images=len(test_ds))
    atomic_write_json(os.path.join(args.out, "metrics.json"), metrics)
    writer = make_writer(args.out)
    for key in ("mse", "perplexity", "batch_perplexity", "codes_used"):
        writer.add_scalar(f"test/{key}", metrics[key], args.steps)
    writer.close()
    return metrics
