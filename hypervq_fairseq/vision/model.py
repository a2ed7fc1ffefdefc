"""The paper's VQ-VAE (section 5.2): conv encoder block + residual stack → quantizer → mirror.

Encoder: two stride-2 4×4 convolutions (×4 downsampling), a 3×3 convolution, a stack of
residual blocks and a 1×1 projection to the embedding dimension. Decoder: a 3×3
convolution, the residual stack, and a transposed-convolution block that upsamples ×4.
A 28×28 image gives a 7×7 latent grid, a 32×32 CIFAR image 8×8, a 128×128 ImageNet crop
32×32. The quantizer is any registered vision quantizer, chosen by name.

:class:`VQVAEConfig` is stored in every checkpoint, so the probe, codebook, disentangle and
prior subcommands rebuild the model from the checkpoint alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from .quantizers import VQOutput, build_quantizer, canonical_name


@dataclass
class VQVAEConfig:
    in_channels: int = 1
    quantizer: str = "hypervq"
    num_codes: int = 512
    embedding_dim: int = 64
    hidden: int = 128
    res_blocks: int = 2
    res_hidden: int = 32
    quantizer_options: dict = field(default_factory=dict)

    def __post_init__(self):
        self.quantizer = canonical_name(self.quantizer)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict) -> "VQVAEConfig":
        """The config stored in a checkpoint; quantizer names of earlier releases map to today's, silently."""
        return cls(**{**stored, "quantizer": canonical_name(stored["quantizer"], warn=False)})


class ResidualStack(nn.Module):
    def __init__(self, channels: int, res_hidden: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(channels, res_hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(res_hidden, channels, 1))
            for _ in range(blocks)
        )

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return F.relu(x)


class Encoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        h = cfg.hidden
        self.block = nn.Sequential(
            nn.Conv2d(cfg.in_channels, h // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(h // 2, h, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(h, h, 3, padding=1),
        )
        self.res = ResidualStack(h, cfg.res_hidden, cfg.res_blocks)
        self.proj = nn.Conv2d(h, cfg.embedding_dim, 1)

    def forward(self, x):
        return self.proj(self.res(self.block(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        h = cfg.hidden
        self.proj = nn.Conv2d(cfg.embedding_dim, h, 3, padding=1)
        self.res = ResidualStack(h, cfg.res_hidden, cfg.res_blocks)
        self.block = nn.Sequential(
            nn.ConvTranspose2d(h, h // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(h // 2, cfg.in_channels, 4, stride=2, padding=1),
        )

    def forward(self, z):
        return self.block(self.res(self.proj(z)))


class VQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        if cfg.hidden < 2 or cfg.hidden % 2:
            raise InputError(f"hidden channels must be even and >= 2, got {cfg.hidden}")
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = build_quantizer(cfg.quantizer, cfg.embedding_dim, cfg.num_codes, **cfg.quantizer_options)
        self.decoder = Decoder(cfg)

    def set_num_updates(self, num_updates: int) -> None:
        self.quantizer.set_num_updates(num_updates)

    def encode(self, x: torch.Tensor):
        """Images → ``(z_e, VQOutput)``."""
        z_e = self.encoder(x)
        return z_e, self.quantizer(z_e)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q)

    def forward(self, x: torch.Tensor):
        z_e, vq = self.encode(x)
        return self.decode(vq.z_q), vq, z_e


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
