"""VQ-VAE reconstruction training (paper §5.2, Tables 1 and 4): MSE and codebook perplexity.

Loss: ``MSE(x̂, x) + quantizer loss`` (commitment/codebook terms for the k-means types,
nothing extra for the Gumbel types). Adam, lr 3e-4, as in the paper (§5.1).
Outputs in ``--out``: ``checkpoint.pt`` (written atomically every ``--save-every`` steps and
at the end), ``metrics.json`` (test MSE and perplexity) and TensorBoard logs in ``tb/``.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..files import atomic_write_json
from ..quantizers.perplexity import perplexity_of
from .batches import batches, ordered_batches
from .checkpoint import load_checkpoint
from .loop import TrainState, log_scalars, train_loop
from .model import VQVAE, VQVAEConfig, num_parameters
from .options import loop_options
from .runtime import device_of

CHECKPOINT = "checkpoint.pt"


def build_from_checkpoint(path: str, device="cpu") -> VQVAE:
    state = load_checkpoint(path, kind="vqvae")
    model = VQVAE(VQVAEConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    model.to(device)
    model.set_num_updates(state["step"])
    return model.eval()


def _same_config(cfg: VQVAEConfig, path: str, stored: dict) -> None:
    """Resuming under another config would silently train a different model: refuse."""
    if VQVAEConfig.from_dict(stored["config"]).to_dict() != cfg.to_dict():
        raise InputError(f"{path} was trained with config {stored['config']}, not {cfg.to_dict()}; "
                         "use another --out, or drop --resume to start over")


def train_vqvae(cfg: VQVAEConfig, train_ds, *, out: str, steps: int, batch_size: int = 128, lr: float = 3e-4,
                seed: int = 0, resume: bool = False, log_every: int = 10, save_every: int = 200,
                dataset: str = "", quiet: bool = False, device="cpu", workers: int = 0) -> VQVAE:
    """Train (or resume) a VQ-VAE for ``steps`` updates; returns the model in eval mode."""
    # model and optimizer, then the checkpoint to continue from
    torch.manual_seed(seed)
    model = VQVAE(cfg).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    state = TrainState(os.path.join(out, CHECKPOINT), "vqvae", model, opt,
                       meta={"config": cfg.to_dict(), "dataset": dataset})
    if resume:
        state.resume(check=lambda stored: _same_config(cfg, state.path, stored))
    if not quiet:
        print(f"[vqvae] {cfg.quantizer}: K={cfg.num_codes} D={cfg.embedding_dim} hidden={cfg.hidden} "
              f"params={num_parameters(model) / 1e6:.3f}M train_images={len(train_ds)} "
              f"steps={state.step}->{steps} batch={batch_size}")

    def step(i: int, batch) -> dict:
        x, _ = batch
        model.set_num_updates(i)  # Gumbel temperature schedule
        recon, vq, _ = model(x)
        mse = F.mse_loss(recon, x)
        # selection statistics (Gumbel-type quantizers only) go to the progress bar and TensorBoard
        return {"loss": mse + vq.loss, "mse": mse, "perplexity": vq.perplexity,
                "codes_used": vq.indices.unique().numel(), **vq.selection}

    it = batches(train_ds, batch_size, seed=seed, start_step=state.step, device=device, workers=workers)
    train_loop(state, step, it, steps=steps, log_every=log_every, save_every=save_every, tensorboard=out,
               tb_prefix="train", desc=f"train {cfg.quantizer}", quiet=quiet)
    return model


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
        **heldout_selection(model, ds, batch_size, workers),
    }


@torch.no_grad()
def heldout_selection(model: VQVAE, ds, batch_size: int = 256, workers: int = 0, seed: int = 0) -> dict:
    """Selection statistics on held-out images: one Gumbel draw per position, as in training.

    Only the quantizer runs in training mode (it draws the noise); the encoder stays in eval.
    Empty for quantizers without Gumbel selection (k-means types).
    """
    quantizer = model.quantizer
    probe = next(iter(ordered_batches(ds, batch_size, device=device_of(model), workers=workers)))[0][:1]
    if not quantizer(model.encoder(probe)).selection:  # asked in eval mode: training mode may update k-means state
        return {}
    totals, n = {}, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        quantizer.train()
        try:
            for x, _ in ordered_batches(ds, batch_size, device=device_of(model), workers=workers):
                for key, value in quantizer(model.encoder(x)).selection.items():
                    totals[key] = totals.get(key, 0.0) + float(value) * x.shape[0]
                n += x.shape[0]
        finally:
            quantizer.eval()
    return {f"heldout_{key}": value / n for key, value in totals.items()}


def train_from_args(args, cfg: VQVAEConfig, train_ds) -> VQVAE:
    """:func:`train_vqvae` with the command line's ``run`` options."""
    return train_vqvae(cfg, train_ds, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       dataset=args.dataset, device=args.device, **loop_options(args))


def run_train(args, cfg: VQVAEConfig, train_ds, test_ds) -> dict:
    """``hypervq-vision train``: train, then test MSE and perplexity into ``metrics.json`` and TensorBoard."""
    model = train_from_args(args, cfg, train_ds)
    metrics = evaluate_vqvae(model, test_ds, workers=args.workers)
    metrics.update(quantizer=cfg.quantizer, steps=args.steps, test_images=len(test_ds))
    atomic_write_json(os.path.join(args.out, "metrics.json"), metrics)
    log_scalars(args.out, "test", {k: metrics[k] for k in ("mse", "perplexity", "batch_perplexity", "codes_used")},
                args.steps)
    return metrics
