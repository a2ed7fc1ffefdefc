"""hypervq-vision: the paper's image experiments (VQ-VAE, probe, codebook, disentanglement, prior).

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
``--resume``, and writes TensorBoard logs under ``--out/tb``.

Scope: models train on CPU or one device given by ``--device``; nothing downloads (datasets
and Inception weights come from local paths).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

from .data import DATASETS, INFO, load_dataset, subset
from .model import VQVAEConfig
from ..quantizers.gumbel_base import parse_temp
from .quantizers import QUANTIZERS, canonical_name, options_for
from ..files import atomic_write_json
from .loop import make_writer
from .runtime import set_threads

EXAMPLES = """
examples:
  hypervq-vision train --quantizer hypervq --num-codes 512 --steps 2000 --out runs/hypervq
  hypervq-vision probe --checkpoint runs/hypervq/checkpoint.pt --steps 1000 --out runs/hypervq/probe
  hypervq-vision codebook --checkpoint runs/hypervq/checkpoint.pt --out runs/hypervq/codebook
  hypervq-vision disentangle --quantizer kmeans --steps 1000 --out runs/kmeans_dis
  hypervq-vision prior --checkpoint runs/hypervq/checkpoint.pt --steps 2000 --out runs/hypervq/prior
  OMP_NUM_THREADS=1 nice hypervq-vision compare --out runs/compare
"""


def _data_args(p):
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="fashion-mnist",
                   help="fashion-mnist reads the Debian package's files (or --data-root); others need --data-root")
    g.add_argument("--data-root", default=None, help="local dataset folder (nothing is downloaded)")
    g.add_argument("--cache-dir", default=None, help="where Fashion-MNIST is decompressed (default: $HYPERVQ_CACHE or ~/.cache)")
    g.add_argument("--image-size", type=int, default=None, help="ImageNet crop size (default 128, as in the paper)")
    g.add_argument("--subset", type=int, default=0, help="use a seeded random subset of N training images (0: all)")
    g.add_argument("--test-subset", type=int, default=0, help="use N test images (0: all)")


def _run_args(p, steps):
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="output folder: checkpoint, metrics JSON, PNGs, tb/")
    g.add_argument("--steps", type=int, default=steps, help="optimizer updates")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=3e-4)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out if there is one")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--save-every", type=int, default=200)
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cuda:1 (one device per run)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader workers for lazily decoded datasets (ImageNet)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _model_args(p, num_codes=512, dim=64):
    g = p.add_argument_group("model")
    g.add_argument("--quantizer", type=canonical_name, choices=sorted(QUANTIZERS), default="hypervq")
    g.add_argument("--num-codes", type=int, default=num_codes, help="codebook size K")
    g.add_argument("--embedding-dim", type=int, default=dim, help="latent dimension D")
    g.add_argument("--hidden", type=int, default=64, help="encoder/decoder channels (paper-scale GPU runs: 128 or 256)")
    g.add_argument("--res-blocks", type=int, default=2)
    g.add_argument("--res-hidden", type=int, default=32)
    g.add_argument("--beta", type=float, default=0.25, help="commitment weight (kmeans, hyper_kmeans)")
    g.add_argument("--ema", action="store_true", help="EMA codebook (kmeans)")
    g.add_argument("--temp", default="(2.0, 0.5, 0.999)", help="Gumbel temperature (max, min, decay per update)")
    g.add_argument("--curvature", type=float, default=1.0, help="ball curvature c (hypervq, hyper_embmat, hyper_kmeans)")
    g.add_argument("--clip-radius", type=float, default=1.0,
                   help="feature clipping of the tangent vector before exp_0 (Guo et al. 2022) for hypervq and "
                        "hyper_embmat; 0 turns it off. Without it, short CPU runs collapsed to a few codes at eval")


def quantizer_settings(args) -> dict:
    """Every quantizer option of the command line; each quantizer takes the ones it knows (``options_for``)."""
    return {"temp": list(parse_temp(args.temp)), "curvature": args.curvature,
            "clip_radius": args.clip_radius if args.clip_radius > 0 else None, "beta": args.beta, "ema": args.ema}


def model_config(args, in_channels: int, quantizer: str = None) -> VQVAEConfig:
    q = quantizer or args.quantizer
    return VQVAEConfig(in_channels=in_channels, quantizer=q, num_codes=args.num_codes, embedding_dim=args.embedding_dim,
                       hidden=args.hidden, res_blocks=args.res_blocks, res_hidden=args.res_hidden,
                       quantizer_options=options_for(q, quantizer_settings(args)))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="hypervq-vision", description=__doc__.split("\n\n")[0].split("\n")[0],
                                     epilog=EXAMPLES, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="VQ-VAE reconstruction: MSE and codebook perplexity (Tables 1, 4)",
                       epilog="example:\n  hypervq-vision train --quantizer hypervq --steps 2000 --out runs/hypervq\n"
                              "  hypervq-vision train --quantizer kmeans --ema --steps 2000 --out runs/kmeans_ema --resume",
                       formatter_class=fmt)
    _data_args(p), _run_args(p, 1000), _model_args(p)

    p = sub.add_parser("probe", help="frozen encoder+quantizer, trained classifier head (Tables 3, 7)",
                       epilog="example:\n  hypervq-vision probe --checkpoint runs/hypervq/checkpoint.pt --steps 1000 --out runs/hypervq/probe",
                       formatter_class=fmt)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by `train`")
    p.add_argument("--probe-hidden", type=int, default=128)
    _data_args(p), _run_args(p, 500)
    p.set_defaults(lr=1e-3)

    p = sub.add_parser("codebook", help="decode each code as a 1x1 latent into a grid PNG (Figure 4)",
                       epilog="example:\n  hypervq-vision codebook --checkpoint runs/hypervq/checkpoint.pt --out runs/hypervq/codebook",
                       formatter_class=fmt)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("disentangle", help="latent dim 3, K=16: silhouette / Davies-Bouldin, clean and noisy (Table 5)",
                       epilog="example:\n  hypervq-vision disentangle --quantizer hypervq --steps 1000 --out runs/hypervq_dis\n"
                              "  hypervq-vision disentangle --checkpoint runs/hypervq_dis/checkpoint.pt --out runs/hypervq_dis",
                       formatter_class=fmt)
    p.add_argument("--checkpoint", default=None, help="score this VQ-VAE instead of training one")
    p.add_argument("--samples", type=int, default=1000, help="embeddings sampled for the scores (paper: 1000)")
    _data_args(p), _run_args(p, 500), _model_args(p, num_codes=16, dim=3)

    p = sub.add_parser("prior", help="GatedPixelCNN prior over the codes, samples, FID/IS with local Inception weights",
                       epilog="example:\n  hypervq-vision prior --checkpoint runs/hypervq/checkpoint.pt --steps 2000 --out runs/hypervq/prior\n"
                              "  hypervq-vision prior --checkpoint runs/hypervq/checkpoint.pt --inception-weights inception_v3_google.pth --out runs/hypervq/prior",
                       formatter_class=fmt)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--layers", type=int, default=15, help="gated layers (paper: 15)")
    p.add_argument("--prior-dim", type=int, default=64)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--inception-weights", default=None, help="torchvision inception_v3 state dict; enables FID and IS")
    _data_args(p), _run_args(p, 1000)
    p.set_defaults(lr=1e-3, batch_size=64)

    p = sub.add_parser("compare", help="the five quantizers side by side, one table in the paper's format",
                       epilog="example:\n  OMP_NUM_THREADS=1 nice hypervq-vision compare --threads 1 --out runs/compare\n"
                              "  hypervq-vision compare --quantizers kmeans hypervq --steps 100 --out runs/quick",
                       formatter_class=fmt)
    p.add_argument("--quantizers", nargs="+", default=["kmeans", "gumbel", "hypervq", "hyper_kmeans", "hyper_embmat"],
                   type=canonical_name, choices=sorted(QUANTIZERS))
    p.add_argument("--probe-steps", type=int, default=300)
    p.add_argument("--dis-steps", type=int, default=200, help="updates of the D=3, K=16 disentanglement model")
    p.add_argument("--dis-codes", type=int, default=16)
    p.add_argument("--dis-dim", type=int, default=3)
    p.add_argument("--dis-samples", type=int, default=1000)
    _data_args(p), _run_args(p, 300), _model_args(p)
    p.set_defaults(subset=6000, test_subset=2000, batch_size=64)
    from .vqsa.cli import add_subcommand as add_vqsa  # VQ-SA (paper §5.4): own options, dispatched by its func
    add_vqsa(sub)
    return parser


def _datasets(args):
    train_ds = load_dataset(args.dataset, args.data_root, train=True, image_size=args.image_size, cache_dir=args.cache_dir)
    test_ds = load_dataset(args.dataset, args.data_root, train=False, image_size=args.image_size, cache_dir=args.cache_dir)
    return subset(train_ds, args.subset, args.seed), subset(test_ds, args.test_subset, args.seed + 1)


def _sizes(args, cfg: VQVAEConfig):
    info = INFO[args.dataset]
    size = args.image_size or info.size
    lat = size // 4
    print(f"[hypervq-vision] {args.command}: dataset={args.dataset} image={info.channels}x{size}x{size} "
          f"latent={cfg.embedding_dim}x{lat}x{lat} ({lat * lat} codes/image = {lat * lat * math.log2(cfg.num_codes):.0f} bits) "
          f"quantizer={cfg.quantizer} K={cfg.num_codes} threads={torch.get_num_threads()}")


def _pretrained(args):
    """The VQ-VAE of ``--checkpoint`` and the datasets, for the subcommands built on a trained model."""
    from .train import build_from_checkpoint

    model = build_from_checkpoint(args.checkpoint, args.device)
    _sizes(args, model.cfg)
    return (model, *_datasets(args))


def _check_device(args):
    device = getattr(args, "device", "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: torch sees no CUDA device (torch {torch.__version__})")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "vqsa":
        return args.func(args)
    if hasattr(args, "threads"):
        set_threads(args.threads)
    _check_device(args)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    if args.command == "train":
        from .train import run_train

        cfg = model_config(args, INFO[args.dataset].channels)
        _sizes(args, cfg)
        train_ds, test_ds = _datasets(args)
        metrics = run_train(args, cfg, train_ds, test_ds)
        print(f"[train] test mse={metrics['mse']:.4f} perplexity={metrics['perplexity']:.1f} "
              f"codes used={metrics['codes_used']}/{cfg.num_codes} -> {args.out}/metrics.json")

    elif args.command == "probe":
        from .probe import train_probe

        model, train_ds, test_ds = _pretrained(args)
        metrics = train_probe(model, train_ds, test_ds, classes=INFO[args.dataset].classes, out=args.out, steps=args.steps,
                              batch_size=args.batch_size, lr=args.lr, hidden=args.probe_hidden, seed=args.seed,
                              resume=args.resume, log_every=args.log_every, save_every=args.save_every, quiet=args.quiet,
                              workers=args.workers)
        print(f"[probe] test accuracy={metrics['accuracy']:.2f}% -> {args.out}/probe_metrics.json")

    elif args.command == "codebook":
        from .codebook import codebook_grid, decode_codes
        from .train import build_from_checkpoint

        model = build_from_checkpoint(args.checkpoint)
        print(f"[codebook] decoding K={model.cfg.num_codes} codes of {model.cfg.quantizer} as 1x1 latents")
        info = codebook_grid(model, os.path.join(args.out, "codebook.png"))
        writer = make_writer(args.out)
        from torchvision.utils import make_grid

        writer.add_image("codebook", make_grid(decode_codes(model) + 0.5, nrow=32), 0)
        writer.close()
        atomic_write_json(os.path.join(args.out, "codebook.json"), info)
        print(f"[codebook] {info['distinct_patches']} distinct patches of {info['codes']} -> {info['png']}")

    elif args.command == "disentangle":
        from .disentangle import evaluate_disentanglement, scatter_png
        from .train import build_from_checkpoint, train_vqvae

        train_ds, test_ds = _datasets(args)
        if args.checkpoint:
            model = build_from_checkpoint(args.checkpoint, args.device)
        else:
            cfg = model_config(args, INFO[args.dataset].channels)
            _sizes(args, cfg)
            model = train_vqvae(cfg, train_ds, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                seed=args.seed, resume=args.resume, log_every=args.log_every, save_every=args.save_every,
                                dataset=args.dataset, quiet=args.quiet, device=args.device, workers=args.workers)
        # the first test images (≥ 200, so that 1,000 positions are sampled from many images)
        images = torch.stack([test_ds[i][0] for i in range(min(len(test_ds), max(200, args.samples)))])
        scores, points = evaluate_disentanglement(model, images, samples=args.samples, seed=args.seed)
        scatter_png(points, os.path.join(args.out, "scatter.png"), model.cfg.quantizer)
        atomic_write_json(os.path.join(args.out, "disentangle.json"), scores)
        writer = make_writer(args.out)
        for cond in ("clean", "noisy"):
            for key in ("silhouette", "davies_bouldin"):
                writer.add_scalar(f"disentangle/{cond}_{key}", scores[cond][key], 0)
        writer.close()
        print(f"[disentangle] clean: silhouette={scores['clean']['silhouette']:.3f} DB={scores['clean']['davies_bouldin']:.3f} | "
              f"noisy: silhouette={scores['noisy']['silhouette']:.3f} DB={scores['noisy']['davies_bouldin']:.3f}")

    elif args.command == "prior":
        from .prior import run_prior

        model, train_ds, test_ds = _pretrained(args)
        metrics = run_prior(model, train_ds, test_ds, out=args.out, steps=args.steps, samples=args.samples,
                            inception_weights=args.inception_weights, batch_size=args.batch_size, lr=args.lr,
                            dim=args.prior_dim, layers=args.layers, seed=args.seed, resume=args.resume,
                            log_every=args.log_every, save_every=args.save_every, quiet=args.quiet, workers=args.workers)
        fid = "skipped (no --inception-weights)" if metrics["fid"] is None else f"{metrics['fid']:.2f}"
        print(f"[prior] test nll={metrics['test_nll']:.3f} FID={fid} -> {metrics['samples_png']}")

    elif args.command == "compare":
        from .compare import run_compare

        cfg = model_config(args, INFO[args.dataset].channels)
        _sizes(args, cfg)
        train_ds, test_ds = _datasets(args)
        images = torch.stack([test_ds[i][0] for i in range(min(len(test_ds), 200))])
        run_compare(args, cfg, quantizer_settings(args), train_ds, test_ds, INFO[args.dataset].classes, train_ds, images)

    print(f"[hypervq-vision] {args.command} done in {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
