"""Gated PixelCNN prior over VQ-VAE code maps (van den Oord et al., 2016; paper §5.2, Table 2).

Each layer has a vertical stack (rows above) and a horizontal stack (pixels to the left in
the current row) with gated activations ``tanh(a)·σ(b)``. Causality comes from weight
masks: the vertical kernel keeps rows up to its centre and its output is shifted down one
row before it feeds the horizontal stack; the horizontal 1×k kernel keeps columns left of
its centre in the first layer ("A") and up to the centre later ("B"). A test checks that
the logits at a position do not depend on that position or any later one.

Input: code indices ``(B, H, W)``; output: logits ``(B, K, H, W)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MaskedConv2d(nn.Conv2d):
    def __init__(self, *args, mask: torch.Tensor, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("mask", mask.view(1, 1, *mask.shape).to(self.weight.dtype))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class GatedLayer(nn.Module):
    def __init__(self, dim: int, kernel: int, first: bool):
        super().__init__()
        c = kernel // 2
        vmask = torch.zeros(kernel, kernel)
        vmask[: c + 1] = 1                                   # rows up to the centre
        hmask = torch.zeros(1, kernel)
        hmask[0, : c if first else c + 1] = 1               # left of (A) or up to (B) the centre
        self.first = first
        self.v = MaskedConv2d(dim, 2 * dim, kernel, padding=c, mask=vmask)
        self.h = MaskedConv2d(dim, 2 * dim, (1, kernel), padding=(0, c), mask=hmask)
        self.v_to_h = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.h_out = nn.Conv2d(dim, dim, 1)

    @staticmethod
    def gate(x):
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v_in, h_in):
        v = self.v(v_in)
        v_shift = F.pad(v, (0, 0, 1, 0))[:, :, :-1]        # row i sees only rows < i
        h = self.h(h_in) + self.v_to_h(v_shift)
        h_out = self.h_out(self.gate(h))
        if not self.first:
            h_out = h_out + h_in
        return self.gate(v), h_out


class GatedPixelCNN(nn.Module):
    def __init__(self, num_codes: int, dim: int = 64, layers: int = 15, kernel: int = 7):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.num_codes = num_codes
        self.embed = nn.Embedding(num_codes, dim)
        self.layers = nn.ModuleList(GatedLayer(dim, kernel if i == 0 else 3, first=i == 0) for i in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(dim, dim, 1), nn.ReLU(), nn.Conv2d(dim, num_codes, 1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.embed(codes).permute(0, 3, 1, 2)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)

    @torch.no_grad()
    def sample(self, n: int, shape, *, generator: torch.Generator = None, temperature: float = 1.0) -> torch.Tensor:
        """Draw ``n`` code maps of ``shape = (H, W)``, one position at a time in raster order."""
        self.eval()
        h, w = shape
        codes = torch.zeros(n, h, w, dtype=torch.long, device=self.embed.weight.device)
        for i in range(h):
            for j in range(w):
                probs = F.softmax(self.forward(codes)[:, :, i, j] / temperature, dim=1)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return codes
