"""``hypervq-vision vqsa``: VQ-SA with HyperVQ or another vision quantizer (paper §5.4, Table 6).

    hypervq-vision vqsa compare --out runs/vqsa                      # offline Table 6 on Fashion-MNIST, CPU
    hypervq-vision vqsa train --quantizer hypervq --out runs/hvq     # one model
    hypervq-vision vqsa eval --out runs/hvq --reference runs/vqsa/reference/errors.json

Also runnable alone as ``python -m hypervq_fairseq.vision.vqsa.cli ...``. ``add_subcommand``
registers ``vqsa`` on the ``hypervq-vision`` parser. Every numeric option is checked when the
command line is parsed (see :mod:`.config`), before anything is read or written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ...cli import add_debug_flag, int_at_least, run
from ...errors import InputError
from ..options import OneLineErrorParser
from ..quantizers import canonical_name
from .config import HEAD_CHOICES, VQSAConfig, add_config_arguments, config_from_args

PROG = "vqsa"
FMT = argparse.RawDescriptionHelpFormatter
EXAMPLES = """examples:
  # offline Table 6 (Fashion-MNIST, small backbone from scratch, CPU, a few minutes per row)
  hypervq-vision vqsa compare --out runs/vqsa --train-limit 12000 --eval-limit 1000 --epochs-ref 3 --epochs 2 \\
      --known gaussian_noise,impulse_noise,defocus_blur,contrast,pixelate,jpeg_compression \\
      --unknown speckle_noise,gaussian_blur --codes 256 --threads 1
  # the paper's setting on a GPU: ResNet-50 weights from a local file, K=1024, 50 epochs
  hypervq-vision vqsa train --dataset imagenet --data-root /data/imagenet --backbone resnet50 \\
      --backbone-weights resnet50.pth --quantizer hypervq --codes 1024 --dim 512 --pool 7 --epochs 50 \\
      --batch-size 128 --lr 1e-3 --backbone-lr-mult 0.1 --device cuda --num-workers 16 --out runs/hypervq_sa
  hypervq-vision vqsa eval --dataset imagenet --data-root /data/imagenet --imagenet-c /data/imagenet-c \\
      --backbone resnet50 --quantizer hypervq --codes 1024 --dim 512 --pool 7 --device cuda --out runs/hypervq_sa \\
      --reference runs/resnet50/errors.json
"""


def quantizer_list(text: str) -> list:
    """argparse type: comma-separated head quantizers (old names mapped), e.g. ``hypervq,kmeans,none``."""
    names = [canonical_name(q.strip()) for q in text.split(",") if q.strip()]
    bad = [q for q in names if q not in HEAD_CHOICES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected names among {', '.join(HEAD_CHOICES)}")
    return names


def _load_reference(path):
    if path is None:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"reference errors {path!r} not found (expected an errors.json written by vqsa eval/train)")
    with open(path) as f:
        ref = json.load(f)
    if "corruptions" not in ref:
        raise InputError(f"{path} has no 'corruptions' entry; expected an errors.json written by vqsa eval/train")
    return ref


def _check_inputs(cfg: VQSAConfig) -> None:
    """Folders named on the command line must exist before a long run starts, not when it evaluates."""
    if cfg.imagenet_c and not os.path.isdir(cfg.imagenet_c):
        raise FileNotFoundError(f"--imagenet-c {cfg.imagenet_c!r} not found: expected <corruption>/<severity>/<class>/ folders")


def _print_metrics(result: dict) -> None:
    print(json.dumps(result.get("metrics", {"clean_error": result["clean"]}), indent=2))


def _train(args) -> int:
    from .train import evaluate, train

    cfg = config_from_args(args)
    _check_inputs(cfg)
    reference = _load_reference(args.reference)
    model = train(cfg)
    if not args.no_eval:
        _print_metrics(evaluate(model, cfg, reference))
    return 0


def _eval(args) -> int:
    from ..checkpoint import load_checkpoint
    from .train import CHECKPOINT, KIND, build_model, evaluate, load_split, num_classes_of

    cfg = config_from_args(args)
    _check_inputs(cfg)
    reference = _load_reference(args.reference)
    ckpt = os.path.join(cfg.out, CHECKPOINT)
    if not os.path.exists(ckpt) and not (cfg.quantizer == "none" and cfg.backbone_weights):
        raise FileNotFoundError(f"{ckpt} not found: train first, or pass --quantizer none --backbone-weights FILE "
                                "to evaluate a pretrained backbone as it is")
    model = build_model(cfg, num_classes_of(load_split(cfg, train=False)))
    if os.path.exists(ckpt):
        model.load_state_dict(load_checkpoint(ckpt, KIND)["model"])
    else:
        print(f"[vqsa] no {ckpt}: evaluating the backbone as loaded from {cfg.backbone_weights} (with its classifier)")
    _print_metrics(evaluate(model, cfg, reference))
    return 0


def _compare(args) -> int:
    from .compare import compare

    cfg = config_from_args(args, resume=True)
    _check_inputs(cfg)
    print(compare(cfg, args.quantizers, args.epochs_ref))
    return 0


def _add_actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="vqsa_action", required=True, metavar="{train,eval,compare}")
    p = actions.add_parser("train", help="train one model, then evaluate it", epilog=EXAMPLES, formatter_class=FMT)
    add_config_arguments(p)
    p.add_argument("--reference", default=None, help="a reference model's errors.json, for mCE")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.set_defaults(func=_train)

    p = actions.add_parser("eval", help="evaluate OUT/checkpoint_last.pt on clean, known and unknown corruptions",
                           epilog=EXAMPLES, formatter_class=FMT)
    add_config_arguments(p)
    p.add_argument("--reference", default=None, help="a reference model's errors.json, for mCE")
    p.set_defaults(func=_eval)

    p = actions.add_parser("compare", help="backbone alone vs VQ-SA with each quantizer (offline Table 6)",
                           epilog=EXAMPLES, formatter_class=FMT)
    add_config_arguments(p)
    p.add_argument("--quantizers", type=quantizer_list, default="hypervq,kmeans,gumbel,none",
                   help="rows after the reference; 'none' = backbone fine-tuned on the pairs without the head")
    p.add_argument("--epochs-ref", type=int_at_least(1), default=3, help="epochs of the backbone-alone reference")
    p.set_defaults(func=_compare)


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``vqsa`` on a ``hypervq-vision`` subparsers object; returns its parser."""
    parser = subparsers.add_parser("vqsa", help="VQ-SA robustness classifier with HyperVQ or another quantizer (Table 6)",
                                   description=__doc__, epilog=EXAMPLES, formatter_class=FMT)
    _add_actions(parser)
    return parser


def main(argv=None) -> int:
    parser = OneLineErrorParser(prog=PROG, description=__doc__, epilog=EXAMPLES, formatter_class=FMT)
    add_debug_flag(parser)
    _add_actions(parser)
    args = parser.parse_args(argv)
    return run(PROG, lambda: args.func(args), args)


if __name__ == "__main__":
    sys.exit(main())
