"""Command-line options of the vision subcommands, each checked when the command line is parsed.

A wrong number (``--steps -5``, ``--batch-size 0``, ``--num-codes 1``, ``--temp "(1, 2, 0.9)"``)
stops the command before any file is read or any folder is created, with one line naming
the option, the value and the allowed range. The ranges come from
:mod:`hypervq_fairseq.cli`'s checked types; this module adds the two the vision models need
(the Gumbel temperature schedule, the even channel count of the encoder) and the option
groups the VQ-VAE subcommands share.
"""
from __future__ import annotations

import argparse
import sys

from ..cli import float_at_least, int_at_least, positive_float
from ..quantizers.gumbel_base import parse_temp
from ..quantizers.hyperbolic_vq import CLIP_MODES, DEFAULT_CLIP_MODE, DEFAULT_CLIP_RADIUS, DEFAULT_LOGIT_SCALE
from .data import DATASETS
from .model import VQVAEConfig
from .quantizers import QUANTIZERS, canonical_name, options_for


class OneLineErrorParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (``PROG: error: ...``) instead of the full usage."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def temp_schedule(text: str) -> str:
    """argparse type: ``"(max, min, decay)"`` with ``0 < min <= max`` and ``0 < decay <= 1``, kept as text."""
    try:
        parse_temp(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def even_channels(text: str) -> int:
    """argparse type: an even integer >= 2 (the encoder's first convolution has half as many channels)."""
    value = int_at_least(2)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"{value} is odd: must be an even integer >= 2")
    return value


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="fashion-mnist",
                   help="fashion-mnist reads the Debian package's files (or --data-root); others need --data-root")
    g.add_argument("--data-root", default=None, help="local dataset folder (nothing is downloaded)")
    g.add_argument("--cache-dir", default=None, help="where Fashion-MNIST is decompressed (default: $HYPERVQ_CACHE or ~/.cache)")
    g.add_argument("--image-size", type=int_at_least(4), default=None, help="ImageNet crop size (default 128, as in the paper)")
    g.add_argument("--subset", type=int_at_least(0), default=0, help="use a seeded random subset of N training images (0: all)")
    g.add_argument("--test-subset", type=int_at_least(0), default=0, help="use N test images (0: all)")


def add_run_args(p: argparse.ArgumentParser, steps: int) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="output folder: checkpoint, metrics JSON, PNGs, tb/")
    g.add_argument("--steps", type=int_at_least(1), default=steps, help="optimizer updates")
    g.add_argument("--batch-size", type=int_at_least(1), default=128)
    g.add_argument("--lr", type=positive_float(), default=3e-4)
    g.add_argument("--seed", type=int_at_least(0), default=0)
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out if there is one")
    g.add_argument("--log-every", type=int_at_least(1), default=10)
    g.add_argument("--save-every", type=int_at_least(1), default=200)
    g.add_argument("--threads", type=int_at_least(0), default=0, help="torch CPU threads (0: torch's default)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cuda:1 (one device per run)")
    g.add_argument("--workers", type=int_at_least(0), default=0,
                   help="DataLoader workers for lazily decoded datasets (ImageNet)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def add_model_args(p: argparse.ArgumentParser, num_codes: int = 512, dim: int = 64) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--quantizer", type=canonical_name, choices=sorted(QUANTIZERS), default="hypervq")
    g.add_argument("--num-codes", type=int_at_least(2), default=num_codes, help="codebook size K")
    g.add_argument("--embedding-dim", type=int_at_least(1), default=dim, help="latent dimension D")
    g.add_argument("--hidden", type=even_channels, default=64,
                   help="encoder/decoder channels, even (paper-scale GPU runs: 128 or 256)")
    g.add_argument("--res-blocks", type=int_at_least(0), default=2)
    g.add_argument("--res-hidden", type=int_at_least(1), default=32)
    g.add_argument("--beta", type=float_at_least(0.0), default=0.25, help="commitment weight (kmeans, hyper_kmeans)")
    g.add_argument("--ema", action="store_true", help="EMA codebook (kmeans)")
    g.add_argument("--temp", type=temp_schedule, default="(2.0, 0.5, 0.999)",
                   help="Gumbel temperature (max, min, decay per update)")
    g.add_argument("--curvature", type=positive_float(), default=1.0,
                   help="ball curvature c (hypervq, hyper_embmat, hyper_kmeans)")
    g.add_argument("--clip-radius", type=float_at_least(0.0), default=DEFAULT_CLIP_RADIUS,
                   help="feature clipping of the tangent vector before exp_0 (Guo et al. 2022) for hypervq and "
                        "hyper_embmat; 0 turns it off (the paper's method). Default: the quantizer's")
    g.add_argument("--clip-mode", choices=CLIP_MODES, default=DEFAULT_CLIP_MODE,
                   help="hard: rescale onto the sphere; soft: radius * tanh(|v| / radius), keeps the radial order")
    g.add_argument("--logit-scale", type=positive_float(), default=DEFAULT_LOGIT_SCALE,
                   help="multiplies the hyperbolic MLR logits (1 is the paper's equation). Default: the quantizer's")


def quantizer_settings(args) -> dict:
    """Every quantizer option of the command line; each quantizer takes the ones it knows (``options_for``)."""
    return {"temp": list(parse_temp(args.temp)), "curvature": args.curvature,
            "clip_radius": args.clip_radius if args.clip_radius > 0 else None, "clip_mode": args.clip_mode,
            "logit_scale": args.logit_scale, "beta": args.beta, "ema": args.ema}


def model_config(args, in_channels: int) -> VQVAEConfig:
    return VQVAEConfig(in_channels=in_channels, quantizer=args.quantizer, num_codes=args.num_codes,
                       embedding_dim=args.embedding_dim, hidden=args.hidden, res_blocks=args.res_blocks,
                       res_hidden=args.res_hidden, quantizer_options=options_for(args.quantizer, quantizer_settings(args)))


def loop_options(args) -> dict:
    """The training-loop keywords every trainer takes, from the ``run`` options."""
    return dict(seed=args.seed, resume=args.resume, log_every=args.log_every, save_every=args.save_every,
                quiet=args.quiet, workers=args.workers)
