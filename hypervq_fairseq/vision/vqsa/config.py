"""VQ-SA settings: one dataclass field per command-line option, with its help text and its allowed range.

The same check guards both doors: ``hypervq-vision vqsa ... --codes 0`` stops at parse time
(argparse runs the field's ``check`` as the option's type), and ``VQSAConfig(codes=0)`` from
Python raises :class:`~hypervq_fairseq.errors.InputError` naming the field. Either way nothing
has been read or written yet.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import List, Optional

from ...cli import float_at_least, fraction, int_at_least, positive_float
from ...errors import InputError
from ..options import temp_schedule
from ..quantizers import QUANTIZERS, canonical_name
from .corruptions import KNOWN_CORRUPTIONS, SEVERITIES, UNKNOWN_CORRUPTIONS, check_split, parse_names

# The quantizer of the VQ-SA head, or none: the backbone alone (global pool + linear classifier).
HEAD_CHOICES = (*sorted(QUANTIZERS), "none")
DATASETS = ("fashion-mnist", "digits", "imagenet")
BACKBONES = ("small", "resnet50")
# Options that must match between a checkpoint and the run that resumes it.
ARCH_KEYS = ("dataset", "backbone", "width", "quantizer", "codes", "dim", "heads", "pool")


def _opt(default, help_text: str, check=None, **extra):
    """A field with its help text and, for numbers, the argparse type that checks its range."""
    return field(default=default, metadata={"help": help_text, "check": check, **extra})


@dataclass
class VQSAConfig:
    out: str = field(metadata={"help": "output folder: checkpoint, errors.json, metrics.json"})
    # data
    dataset: str = _opt("fashion-mnist", "fashion-mnist | digits | imagenet", choices=DATASETS)
    data_root: Optional[str] = _opt(None, "dataset folder (fashion-mnist: the idx files; imagenet: train/ and val/)")
    cache_dir: Optional[str] = _opt(None, "where Fashion-MNIST is decompressed")
    imagenet_c: Optional[str] = _opt(None, "ImageNet-C folder (<corruption>/<severity>/<class>/...) for evaluation")
    train_limit: int = _opt(0, "seeded random subset of the training set (0: all)", int_at_least(0))
    eval_limit: int = _opt(0, "seeded random subset of the evaluation set (0: all)", int_at_least(0))
    # model
    backbone: str = _opt("small", "small (from scratch) | resnet50", choices=BACKBONES)
    backbone_weights: Optional[str] = _opt(None, "torchvision ResNet-50 state_dict, or a vqsa checkpoint whose backbone to reuse")
    width: int = _opt(32, "small backbone: channels of the first stage", int_at_least(1))
    quantizer: str = _opt("hypervq", "a vision quantizer, or none (the backbone alone)", canonical_name, choices=HEAD_CHOICES)
    codes: int = _opt(1024, "codebook size K", int_at_least(2))
    dim: int = _opt(128, "width d of the quantized tokens and the attention layer (a multiple of --heads)", int_at_least(1))
    heads: int = _opt(4, "attention heads", int_at_least(1))
    pool: int = _opt(4, "positions per side after pooling [z, ẑ]", int_at_least(1))
    # corruptions
    known: str = _opt("all", "comma-separated known (training) corruptions, or 'all' (the 15 of ImageNet-C)")
    unknown: str = _opt("all", "comma-separated unknown (held-out) corruptions, or 'all' (the 4 extra of ImageNet-C)")
    train_corruptions: bool = _opt(True, "train on clean + corrupted pairs (off: clean only, the reference)")
    p_corrupt: float = _opt(1.0, "probability that a pair's copy is corrupted", fraction())
    severities: str = _opt("1,2,3,4,5", "severities used in training and evaluation")
    # optimisation
    epochs: int = _opt(2, "training epochs", int_at_least(1))
    batch_size: int = _opt(128, "clean images per batch (pairs double it)", int_at_least(1))
    lr: float = _opt(2e-3, "peak learning rate (AdamW, cosine decay, 3% warm-up)", positive_float())
    backbone_lr_mult: float = _opt(1.0, "backbone learning rate = lr × this (e.g. 0.1 for a pretrained backbone; "
                                        "0 freezes it)", float_at_least(0.0))
    weight_decay: float = _opt(1e-4, "AdamW weight decay", float_at_least(0.0))
    consistency_weight: float = _opt(1.0, "weight of ‖ẑ(corrupted) − sg(ẑ(clean))‖²", float_at_least(0.0))
    diversity_weight: float = _opt(0.1, "wav2vec 2.0 diversity loss for hypervq and gumbel", float_at_least(0.0))
    temp: str = _opt("(2, 0.5, 0.999)", "Gumbel temperature (max, min, decay per update)", temp_schedule)
    seed: int = _opt(0, "seed for weights, batches and corruptions", int_at_least(0))
    # run
    max_steps: int = _opt(0, "stop this run after N steps (checkpointed; --resume continues); 0: no limit", int_at_least(0))
    save_every: int = _opt(200, "checkpoint every N steps (and at each epoch end)", int_at_least(1))
    resume: bool = _opt(False, "continue from OUT/checkpoint_last.pt if it exists")
    device: str = _opt("cpu", "cpu | cuda | cuda:N")
    threads: int = _opt(0, "torch CPU threads (0: torch's default)", int_at_least(0))
    num_workers: int = _opt(0, "DataLoader workers (corruption runs in them)", int_at_least(0))
    eval_batch_size: int = _opt(256, "evaluation batch size", int_at_least(1))
    progress: bool = _opt(True, "tqdm progress bars")

    def __post_init__(self):
        self.quantizer = canonical_name(self.quantizer)
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                try:
                    check(str(getattr(self, f.name)))
                except argparse.ArgumentTypeError as e:
                    raise InputError(f"{f.name}: {e}") from None
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise InputError(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        if self.dataset == "imagenet" and not self.data_root:
            raise InputError("dataset imagenet needs --data-root with train/ and val/ folders")
        if self.dim % self.heads:
            raise InputError(f"--dim {self.dim} must be a multiple of --heads {self.heads}")
        check_split(self.known_list, self.unknown_list)
        try:
            bad = [s for s in self.severity_list if s not in SEVERITIES]
        except ValueError:
            bad = [self.severities]
        if bad or not self.severity_list:
            raise InputError(f"severities must be a non-empty comma-separated subset of {SEVERITIES}, "
                             f"got {self.severities!r}")

    @property
    def known_list(self) -> List[str]:
        return parse_names(self.known, KNOWN_CORRUPTIONS)

    @property
    def unknown_list(self) -> List[str]:
        return parse_names(self.unknown, UNKNOWN_CORRUPTIONS)

    @property
    def severity_list(self) -> List[int]:
        return [int(s) for s in self.severities.split(",") if s.strip()]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`VQSAConfig` field, with its help text and range check."""
    for f in fields(VQSAConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "").replace("%", "%%")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        required = f.name == "out"
        parser.add_argument(flag, type=f.metadata.get("check") or str, default=None if required else f.default,
                            required=required, choices=f.metadata.get("choices"),
                            help=help_text if required else f"{help_text} (default: {f.default})")


def config_from_args(args: argparse.Namespace, **override) -> VQSAConfig:
    values = {f.name: getattr(args, f.name) for f in fields(VQSAConfig) if hasattr(args, f.name)}
    values.update(override)
    return VQSAConfig(**values)
