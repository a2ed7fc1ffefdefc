"""Train a Gated PixelCNN prior over a frozen VQ-VAE's codes, sample, decode (paper §5.2).

Codes of the training images are extracted once (eval mode, hard codes); the prior learns
them with cross-entropy. Samples are drawn position by position, turned into decoder input
with the quantizer's ``embed`` and decoded. With ``--inception-weights`` FID (against test
images) and IS of the samples are computed; without it they are skipped, and the output
says so.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..files import atomic_write_json
from .batches import batches, ordered_batches
from .codebook import save_image_grid
from .loop import TrainState, train_loop
from .model import VQVAE
from .pixelcnn import GatedPixelCNN
from .runtime import device_of


@torch.no_grad()
def extract_codes(model: VQVAE, ds, batch_size: int = 256, workers: int = 0) -> torch.Tensor:
    model.eval()
    return torch.cat([model.encode(x)[1].indices
                      for x, _ in ordered_batches(ds, batch_size, device=device_of(model), workers=workers)])


def train_prior(model: VQVAE, train_ds, *, out: str, steps: int, batch_size: int = 64, lr: float = 1e-3,
                dim: int = 64, layers: int = 15, seed: int = 0, resume: bool = False, log_every: int = 10,
                save_every: int = 200, quiet: bool = False, workers: int = 0) -> GatedPixelCNN:
    # the prior and its optimizer, then the checkpoint to continue from
    torch.manual_seed(seed)
    prior = GatedPixelCNN(model.cfg.num_codes, dim=dim, layers=layers).to(device_of(model))
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    state = TrainState(os.path.join(out, "prior.pt"), "prior", prior, opt, meta={"dim": dim, "layers": layers})
    if resume:
        state.resume()

    # the code maps of the training images, extracted once
    codes = TensorDataset(extract_codes(model, train_ds, workers=workers))
    if not quiet:
        print(f"[prior] GatedPixelCNN layers={layers} dim={dim} over {tuple(codes.tensors[0].shape[1:])} code maps, "
              f"K={model.cfg.num_codes}, train maps={len(codes)} steps={state.step}->{steps}")

    def step(i: int, batch) -> dict:
        (c,) = batch
        nll = F.cross_entropy(prior(c), c)
        return {"loss": nll, "bits_per_code": nll / math.log(2)}

    it = batches(codes, batch_size, seed=seed, start_step=state.step)
    train_loop(state, step, it, steps=steps, log_every=log_every, save_every=save_every, tensorboard=out,
               tb_prefix="prior", desc="prior", quiet=quiet)
    return prior


@torch.no_grad()
def sample_images(model: VQVAE, prior: GatedPixelCNN, n: int, shape, seed: int = 0) -> torch.Tensor:
    device = device_of(prior)
    codes = prior.sample(n, shape, generator=torch.Generator(device=device).manual_seed(seed))
    return model.decode(model.quantizer.embed(codes)).clamp(-0.5, 0.5)


def run_prior(model: VQVAE, train_ds, test_ds, *, out: str, steps: int, samples: int, inception_weights: str = None,
              **train_kw) -> dict:
    prior = train_prior(model, train_ds, out=out, steps=steps, **train_kw)
    test_codes = extract_codes(model, test_ds, workers=train_kw.get("workers", 0))
    with torch.no_grad():
        nll = sum(F.cross_entropy(prior(c), c, reduction="sum").item() for c in test_codes.split(256)) / test_codes.numel()
    images = sample_images(model, prior, samples, tuple(test_codes.shape[1:]), seed=train_kw.get("seed", 0))
    png = os.path.join(out, "samples.png")
    images = images.cpu()
    save_image_grid(images, png, scale=2)
    metrics = {"test_nll": nll, "samples": samples, "samples_png": png}
    if inception_weights:
        from .inception_metrics import frechet_distance, inception_outputs, inception_score, load_inception

        net = load_inception(inception_weights).to(device_of(model))
        real = torch.stack([test_ds[i][0] for i in range(min(len(test_ds), max(samples, 2)))])
        f_fake, p_fake = inception_outputs(net, images)
        f_real, _ = inception_outputs(net, real)
        metrics["fid"] = frechet_distance(f_real, f_fake)
        metrics["inception_score"], metrics["inception_score_std"] = inception_score(p_fake)
    else:
        metrics["fid"] = metrics["inception_score"] = None
        metrics["note"] = "FID/IS skipped: pass --inception-weights PATH (a torchvision inception_v3 state dict)"
    atomic_write_json(os.path.join(out, "prior_metrics.json"), metrics)
    return metrics
