"""hypervq-vision: the paper's image experiments (VQ-VAE, probe, codebook, disentanglement, prior, VQ-SA).

    # offline, on a CPU: the five-quantizer side-by-side on Fashion-MNIST (Debian package)
    OMP_NUM_THREADS=1 hypervq-vision compare --out runs/compare
    # one VQ-VAE, then each analysis on its checkpoint
    hypervq-vision train --quantizer hypervq --num-codes 512 --steps 2000 --out runs/hypervq
    hypervq-vision probe --checkpoint runs/hypervq/checkpoint.pt --out runs/hypervq/probe
    hypervq-vision codebook --checkpoint runs/hypervq/checkpoint.pt --out runs/hypervq/codebook
    hypervq-vision disentangle --quantizer hypervq --out runs/hypervq_dis
    hypervq-vision prior --checkpoint runs/hypervq/checkpoint.pt --out runs/hypervq/prior
    # on a GPU: CIFAR-100 (Tables 1, 3, 4) from a local copy
    hypervq-vision train --dataset cifar100 --data-root DATA/cifar100 --device cuda --hidden 128 --steps 200000 --out runs/c100_hypervq

Why: the paper's claims about codebook use (Table 4), discriminative features (Tables 3, 7)
and disentanglement (Table 5) come from these experiments; they run here on the same
quantizer core as the speech path (``hypervq_fairseq.quantizers``). Each subcommand shows a
progress bar (loss, perplexity, codes used), checkpoints atomically, resumes with
``--resume``, and writes TensorBoard logs under ``--out/tb``. ``vqsa`` (paper §5.4) has its
own options; see :mod:`.vqsa.cli`.

Scope: models train on CPU or one device given by ``--device``; nothing downloads (datasets
and Inception weights come from local paths). Errors in the user's input print one line
(``--debug`` adds the traceback); ``--out`` is created only once the inputs have been read.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time

import torch

from ..cli import add_debug_flag, int_at_least, run
from ..errors import InputError
from ..files import atomic_write_json
from .data import INFO, load_dataset, subset
from .loop import log_scalars, make_writer
from .model import VQVAEConfig
from .options import (OneLineErrorParser, add_data_args, add_model_args, add_run_args, loop_options, model_config,
                      quantizer_settings)
from .quantizers import QUANTIZERS, canonical_name
from .runtime import set_threads

PROG = "hypervq-vision"
EXAMPLES = """
examples:
  hypervq-vision train --quantizer hypervq --num-codes 512 --steps 2000 --out runs/hypervq
  hypervq-vision probe --checkpoint runs/hypervq/checkpoint.pt --steps 1000 --out runs/hypervq/probe
  OMP_NUM_THREADS=1 nice hypervq-vision compare --out runs/compare
"""


# ----------------------------------------------------------------------------- shared steps


def _datasets(args):
    train_ds = load_dataset(args.dataset, args.data_root, train=True, image_size=args.image_size, cache_dir=args.cache_dir)
    test_ds = load_dataset(args.dataset, args.data_root, train=False, image_size=args.image_size, cache_dir=args.cache_dir)
    return subset(train_ds, args.subset, args.seed), subset(test_ds, args.test_subset, args.seed + 1)


def _sizes(args, cfg: VQVAEConfig) -> None:
    info = INFO[args.dataset]
    size = args.image_size or info.size
    lat = size // 4
    print(f"[{PROG}] {args.command}: dataset={args.dataset} image={info.channels}x{size}x{size} "
          f"latent={cfg.embedding_dim}x{lat}x{lat} ({lat * lat} codes/image = {lat * lat * math.log2(cfg.num_codes):.0f} bits) "
          f"quantizer={cfg.quantizer} K={cfg.num_codes} threads={torch.get_num_threads()}")


def _fresh(args):
    """The config of a VQ-VAE to train from the command line (sizes printed) and the datasets."""
    cfg = model_config(args, INFO[args.dataset].channels)
    _sizes(args, cfg)
    return (cfg, *_datasets(args))


def _pretrained(args):
    """The VQ-VAE of ``--checkpoint`` and the datasets, for the subcommands built on a trained model."""
    from .train import build_from_checkpoint

    model = build_from_checkpoint(args.checkpoint, args.device)
    _sizes(args, model.cfg)
    return (model, *_datasets(args))


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: torch sees no CUDA device (torch {torch.__version__})")


def _subcommand(handler):
    """What every VQ-VAE subcommand does around its work: threads, device check, the closing time line."""
    @functools.wraps(handler)
    def command(args) -> int:
        set_threads(getattr(args, "threads", 0))
        _check_device(getattr(args, "device", "cpu"))
        t0 = time.time()
        handler(args)
        print(f"[{PROG}] {args.command} done in {(time.time() - t0) / 60:.1f} min")
        return 0
    return command


# ----------------------------------------------------------------------------- subcommands


@_subcommand
def _train(args) -> None:
    from .train import run_train

    cfg, train_ds, test_ds = _fresh(args)
    metrics = run_train(args, cfg, train_ds, test_ds)
    print(f"[train] test mse={metrics['mse']:.4f} perplexity={metrics['perplexity']:.1f} "
          f"codes used={metrics['codes_used']}/{cfg.num_codes} -> {args.out}/metrics.json")


@_subcommand
def _probe(args) -> None:
    from .probe import train_probe

    model, train_ds, test_ds = _pretrained(args)
    metrics = train_probe(model, train_ds, test_ds, classes=INFO[args.dataset].classes, out=args.out, steps=args.steps,
                          batch_size=args.batch_size, lr=args.lr, hidden=args.probe_hidden, **loop_options(args))
    print(f"[probe] test accuracy={metrics['accuracy']:.2f}% -> {args.out}/probe_metrics.json")


@_subcommand
def _codebook(args) -> None:
    from torchvision.utils import make_grid

    from .codebook import codebook_grid, decode_codes
    from .train import build_from_checkpoint

    model = build_from_checkpoint(args.checkpoint)
    print(f"[codebook] decoding K={model.cfg.num_codes} codes of {model.cfg.quantizer} as 1x1 latents")
    info = codebook_grid(model, os.path.join(args.out, "codebook.png"))
    writer = make_writer(args.out)
    writer.add_image("codebook", make_grid(decode_codes(model) + 0.5, nrow=32), 0)
    writer.close()
    atomic_write_json(os.path.join(args.out, "codebook.json"), info)
    print(f"[codebook] {info['distinct_patches']} distinct patches of {info['codes']} -> {info['png']}")


@_subcommand
def _disentangle(args) -> None:
    from .disentangle import evaluate_disentanglement, scatter_png
    from .train import train_from_args

    if args.checkpoint:
        model, _, test_ds = _pretrained(args)
    else:
        cfg, train_ds, test_ds = _fresh(args)
        model = train_from_args(args, cfg, train_ds)
    # the first test images (≥ 200, so that 1,000 positions are sampled from many images)
    images = torch.stack([test_ds[i][0] for i in range(min(len(test_ds), max(200, args.samples)))])
    scores, points = evaluate_disentanglement(model, images, samples=args.samples, seed=args.seed)
    scatter_png(points, os.path.join(args.out, "scatter.png"), model.cfg.quantizer)
    atomic_write_json(os.path.join(args.out, "disentangle.json"), scores)
    log_scalars(args.out, "disentangle", {f"{cond}_{key}": scores[cond][key] for cond in ("clean", "noisy")
                                          for key in ("silhouette", "davies_bouldin")}, 0)
    print(f"[disentangle] clean: silhouette={scores['clean']['silhouette']:.3f} DB={scores['clean']['davies_bouldin']:.3f} | "
          f"noisy: silhouette={scores['noisy']['silhouette']:.3f} DB={scores['noisy']['davies_bouldin']:.3f}")


@_subcommand
def _prior(args) -> None:
    from .prior import run_prior

    if args.inception_weights and not os.path.isfile(args.inception_weights):  # found out before training, not after
        raise FileNotFoundError(f"--inception-weights {args.inception_weights!r} not found "
                                "(a torchvision inception_v3 state dict is expected)")
    model, train_ds, test_ds = _pretrained(args)
    metrics = run_prior(model, train_ds, test_ds, out=args.out, steps=args.steps, samples=args.samples,
                        inception_weights=args.inception_weights, batch_size=args.batch_size, lr=args.lr,
                        dim=args.prior_dim, layers=args.layers, **loop_options(args))
    fid = "skipped (no --inception-weights)" if metrics["fid"] is None else f"{metrics['fid']:.2f}"
    print(f"[prior] test nll={metrics['test_nll']:.3f} FID={fid} -> {metrics['samples_png']}")


@_subcommand
def _compare(args) -> None:
    from .compare import run_compare

    cfg, train_ds, test_ds = _fresh(args)
    images = torch.stack([test_ds[i][0] for i in range(min(len(test_ds), 200))])
    run_compare(args, cfg, quantizer_settings(args), train_ds, test_ds, INFO[args.dataset].classes, train_ds, images)


# ----------------------------------------------------------------------------- parser


def _add(sub, name: str, handler, help_text: str, examples: list) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with its example commands."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    p = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog=PROG, description=__doc__.split("\n\n")[0].split("\n")[0],
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    p = _add(sub, "train", _train, "VQ-VAE reconstruction: MSE and codebook perplexity (Tables 1, 4)", [
        "hypervq-vision train --quantizer hypervq --steps 2000 --out runs/hypervq",
        "hypervq-vision train --quantizer kmeans --ema --steps 2000 --out runs/kmeans_ema --resume"])
    add_data_args(p), add_run_args(p, 1000), add_model_args(p)

    p = _add(sub, "probe", _probe, "frozen encoder+quantizer, trained classifier head (Tables 3, 7)", [
        "hypervq-vision probe --checkpoint runs/hypervq/checkpoint.pt --steps 1000 --out runs/hypervq/probe",
        "hypervq-vision probe --dataset cifar100 --data-root DATA --device cuda --checkpoint runs/c100/hypervq/checkpoint.pt "
        "--steps 40000 --out runs/c100/hypervq/probe --resume"])
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by `train`")
    p.add_argument("--probe-hidden", type=int_at_least(1), default=128)
    add_data_args(p), add_run_args(p, 500)
    p.set_defaults(lr=1e-3)

    p = _add(sub, "codebook", _codebook, "decode each code as a 1x1 latent into a grid PNG (Figure 4)", [
        "hypervq-vision codebook --checkpoint runs/hypervq/checkpoint.pt --out runs/hypervq/codebook",
        "hypervq-vision codebook --checkpoint runs/kmeans/checkpoint.pt --out runs/kmeans/codebook"])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)

    p = _add(sub, "disentangle", _disentangle,
             "latent dim 3, K=16: silhouette / Davies-Bouldin, clean and noisy (Table 5)", [
                 "hypervq-vision disentangle --quantizer hypervq --steps 1000 --out runs/hypervq_dis",
                 "hypervq-vision disentangle --checkpoint runs/hypervq_dis/checkpoint.pt --out runs/hypervq_dis"])
    p.add_argument("--checkpoint", default=None, help="score this VQ-VAE instead of training one")
    p.add_argument("--samples", type=int_at_least(2), default=1000, help="embeddings sampled for the scores (paper: 1000)")
    add_data_args(p), add_run_args(p, 500), add_model_args(p, num_codes=16, dim=3)

    p = _add(sub, "prior", _prior, "GatedPixelCNN prior over the codes, samples, FID/IS with local Inception weights", [
        "hypervq-vision prior --checkpoint runs/hypervq/checkpoint.pt --steps 2000 --out runs/hypervq/prior",
        "hypervq-vision prior --checkpoint runs/hypervq/checkpoint.pt --inception-weights inception_v3_google.pth "
        "--out runs/hypervq/prior"])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--layers", type=int_at_least(1), default=15, help="gated layers (paper: 15)")
    p.add_argument("--prior-dim", type=int_at_least(1), default=64)
    p.add_argument("--samples", type=int_at_least(2), default=64, help="images sampled (FID and IS need two or more)")
    p.add_argument("--inception-weights", default=None, help="torchvision inception_v3 state dict; enables FID and IS")
    add_data_args(p), add_run_args(p, 1000)
    p.set_defaults(lr=1e-3, batch_size=64)

    p = _add(sub, "compare", _compare, "the five quantizers side by side, one table in the paper's format", [
        "OMP_NUM_THREADS=1 nice hypervq-vision compare --threads 1 --out runs/compare",
        "hypervq-vision compare --quantizers kmeans hypervq --steps 100 --out runs/quick"])
    p.add_argument("--quantizers", nargs="+", default=["kmeans", "gumbel", "hypervq", "hyper_kmeans", "hyper_embmat"],
                   type=canonical_name, choices=sorted(QUANTIZERS))
    p.add_argument("--probe-steps", type=int_at_least(1), default=300)
    p.add_argument("--dis-steps", type=int_at_least(1), default=200, help="updates of the D=3, K=16 disentanglement model")
    p.add_argument("--dis-codes", type=int_at_least(2), default=16)
    p.add_argument("--dis-dim", type=int_at_least(1), default=3)
    p.add_argument("--dis-samples", type=int_at_least(2), default=1000)
    add_data_args(p), add_run_args(p, 300), add_model_args(p)
    p.set_defaults(subset=6000, test_subset=2000, batch_size=64)

    from .vqsa.cli import add_subcommand as add_vqsa  # VQ-SA (paper §5.4): its own options and handlers
    add_vqsa(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: args.func(args), args)


if __name__ == "__main__":
    sys.exit(main())
