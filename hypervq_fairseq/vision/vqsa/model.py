"""The VQ-SA classifier: backbone → VQ layer → self-attention over quantized + raw features → classifier.

Yang et al., "Vector Quantization with Self-Attention for Quality-Independent Representation
Learning" (CVPR 2023), used by the HyperVQ paper in §5.4 (Table 6). Their point: image
corruptions move a backbone's features a little; snapping them to a codebook removes much
of that movement, and a self-attention layer that sees both the quantized tokens ``ẑ`` and
the raw tokens ``z`` can keep the detail the codebook drops.

Shapes, for a backbone map ``(B, C, H, W)``:

1. 1×1 conv to ``d`` channels: ``z (B, d, H, W)``;
2. quantize each position: ``ẑ (B, d, H, W)`` (any vision quantizer, by name);
3. concatenate ``[z, ẑ]`` along channels, average-pool the map to at most ``pool × pool``
   positions and fuse linearly back to ``d`` (the paper's "concatenated and pooled");
4. one pre-norm transformer layer (multi-head self-attention + MLP) over those positions,
   with a learned position embedding;
5. mean over positions, LayerNorm, linear classifier.

Steps 3-4 are our reading of the paper's figure, which gives no layer sizes. With
``quantizer="none"`` the head is the backbone alone: global average pool + linear layer,
the reference row of Table 6.

Backbones: torchvision ResNet-50 (the paper's setting; weights from a local file the user
supplies — nothing downloads here) and ``small``, a three-stage residual CNN trained from
scratch for the offline Fashion-MNIST run.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import InputError
from ...safe_load import load_checkpoint_file
from ..quantizers import build_quantizer, options_for


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
        )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallBackbone(nn.Module):
    """Stride-2 stem + three residual stages (stride 1, 2, 2): 32×32 input → ``(B, 4·width, 4, 4)``.

    Small enough to train from scratch on two shared CPU cores in minutes.
    """

    def __init__(self, in_channels: int = 3, width: int = 32):
        super().__init__()
        self.out_channels = 4 * width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(
            ResidualBlock(width, width, 1), ResidualBlock(width, 2 * width, 2), ResidualBlock(2 * width, 4 * width, 2)
        )

    def forward(self, x):
        return self.stages(self.stem(x))


class ResNet50Backbone(nn.Module):
    """torchvision ResNet-50 up to ``layer4``: 224×224 input → ``(B, 2048, 7, 7)``."""

    out_channels = 2048

    def __init__(self, weights_path: Optional[str] = None):
        super().__init__()
        from torchvision.models import resnet50

        self.net = resnet50(weights=None)
        self.net.fc = nn.Identity()  # the head replaces it
        if weights_path is not None:
            load_resnet50_weights(self.net, weights_path)

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))


def load_resnet50_weights(net: nn.Module, path: str) -> None:
    """Load a torchvision ResNet-50 ``state_dict`` (or a checkpoint holding one under ``state_dict``/``model``).

    The classifier (``fc.*``) is ignored; anything else missing, unexpected or of the wrong
    shape is an error naming the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ResNet-50 weights not found: {path} (expected a torchvision state_dict saved with torch.save)")
    state = load_checkpoint_file(path, what="weights")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise InputError(f"{path} is not a torchvision ResNet-50 state_dict: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}")
    net.load_state_dict(state, strict=False)


def build_backbone(name: str, *, in_channels: int = 3, width: int = 32, weights: Optional[str] = None) -> nn.Module:
    if name == "small":
        return SmallBackbone(in_channels, width)
    if name == "resnet50":
        if in_channels != 3:
            raise InputError(f"resnet50 takes 3-channel images, got in_channels={in_channels}")
        return ResNet50Backbone(weights)
    raise InputError(f"unknown backbone {name!r}; expected 'small' or 'resnet50'")


class SelfAttentionLayer(nn.Module):
    """Pre-norm transformer layer: ``x + MHSA(LN x)``, then ``x + MLP(LN x)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class VQSAHead(nn.Module):
    """Quantize backbone features and combine them with the raw ones by self-attention (see module docstring).

    ``temp`` and ``diversity_weight`` reach the quantizers that take them (Gumbel types). A
    classifier head gives those a much weaker signal per code than a VQ-VAE decoder does, and
    without help they settle on a handful of codes; hence wav2vec 2.0's diversity term is on
    by default here (0.1; 0 restores the plain method). ``kmeans`` is the original VQ-SA codebook:
    nearest neighbour with the codebook and commitment losses (β = 0.25).
    """

    def __init__(self, in_channels: int, num_classes: int, *, quantizer: str, dim: int = 128, num_codes: int = 1024,
                 heads: int = 4, pool: int = 4, temp=(2.0, 0.5, 0.9995), diversity_weight: float = 0.1):
        super().__init__()
        if dim % heads != 0:
            raise InputError(f"dim {dim} must be divisible by heads {heads}")
        self.pool = pool
        self.proj = nn.Conv2d(in_channels, dim, 1)
        options = options_for(quantizer, {"temp": temp, "diversity_weight": diversity_weight})
        self.quantizer = build_quantizer(quantizer, dim, num_codes, **options)
        self.fuse = nn.Linear(2 * dim, dim)
        self.pos = nn.Parameter(torch.zeros(1, pool * pool, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.attn = SelfAttentionLayer(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, feats: torch.Tensor):
        # 1. project to d channels: z (B, d, H, W)
        z = self.proj(feats)
        _, _, h, w = z.shape
        # 2. quantize every position: ẑ (B, d, H, W)
        q = self.quantizer(z)
        # 3. concatenate raw and quantized, pool to ≤ pool×pool positions, fuse → (B, P, d)
        both = torch.cat([z, q.z_q], dim=1)
        both = F.adaptive_avg_pool2d(both, (min(self.pool, h), min(self.pool, w))).flatten(2).transpose(1, 2)
        x = self.fuse(both) + self.pos[:, : both.shape[1]]
        # 4. self-attention; 5. mean over positions and classify
        x = self.attn(x)
        return self.classifier(self.norm(x.mean(dim=1))), q


class LinearHead(nn.Module):
    """The backbone alone: global average pool + linear classifier."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, feats: torch.Tensor):
        return self.classifier(feats.mean(dim=(2, 3))), None


class VQSAClassifier(nn.Module):
    """Backbone + head. ``forward`` returns ``(logits, VQOutput or None)``."""

    def __init__(self, backbone: nn.Module, num_classes: int, *, quantizer: str = "hypervq", **head_kw):
        super().__init__()
        self.backbone = backbone
        self.quantizer_name = quantizer
        if quantizer == "none":
            self.head = LinearHead(backbone.out_channels, num_classes)
        else:
            self.head = VQSAHead(backbone.out_channels, num_classes, quantizer=quantizer, **head_kw)

    def set_num_updates(self, num_updates: int) -> None:
        q = getattr(self.head, "quantizer", None)
        if hasattr(q, "set_num_updates"):
            q.set_num_updates(num_updates)

    def forward(self, x: torch.Tensor):
        return self.head(self.backbone(x))


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["VQSAClassifier", "VQSAHead", "LinearHead", "SmallBackbone", "ResNet50Backbone", "build_backbone",
           "load_resnet50_weights", "num_parameters"]
