"""Codebook visualisation (paper Figure 4): each code decoded as a 1×1 latent, in a grid PNG.

The paper treats a code vector as a latent of spatial size 1×1 and passes it through the
trained decoder; with the ×4 upsampling decoder that gives a 4×4 patch per code. Patches
are upscaled (nearest) so the grid is readable. Unused or invalid codes show up as flat
or repeated patches, which is what the figure compares across methods.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..files import atomic_write
from .model import VQVAE


@torch.no_grad()
def decode_codes(model: VQVAE) -> torch.Tensor:
    """``(K, C_img, 4, 4)`` images of every code, clamped to the data range [-0.5, 0.5]."""
    model.eval()
    k = model.cfg.num_codes
    idx = torch.arange(k, device=next(model.parameters()).device).view(k, 1, 1)
    return model.decode(model.quantizer.embed(idx)).clamp(-0.5, 0.5).cpu()


def save_image_grid(images: torch.Tensor, path: str, *, nrow: int = None, scale: int = 4) -> None:
    """Save ``(N, C, H, W)`` images in ``[-0.5, 0.5]`` as one PNG grid (atomically)."""
    from torchvision.utils import make_grid
    from PIL import Image

    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    nrow = nrow or int(math.ceil(math.sqrt(images.shape[0])))
    grid = make_grid(images + 0.5, nrow=nrow, padding=2, pad_value=1.0)
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def codebook_grid(model: VQVAE, path: str) -> dict:
    images = decode_codes(model)
    save_image_grid(images, path, scale=8)
    flat = images.flatten(1)
    distinct = torch.unique((flat * 64).round(), dim=0).shape[0]
    return {"codes": images.shape[0], "patch": list(images.shape[1:]), "distinct_patches": int(distinct),
            "png": path}
