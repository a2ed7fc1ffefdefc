"""``hypervq-vision vqsa``: VQ-SA with HyperVQ or another vision quantizer (paper §5.4, Table 6).

    hypervq-vision vqsa compare --out runs/vqsa                      # offline Table 6 on Fashion-MNIST, CPU
    hypervq-vision vqsa train --quantizer hypervq --out runs/hvq     # one model
    hypervq-vision vqsa eval --out runs/hvq --reference runs/vqsa/reference/errors.json

Also runnable alone as ``python -m hypervq_fairseq.vision.vqsa.cli ...``. ``add_subcommand``
registers ``vqsa`` on the ``hypervq-vision`` parser.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..quantizers import canonical_name

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
      --backbone resnet50 --backbone-weights resnet50.pth --quantizer none --device cuda --out runs/resnet50
  hypervq-vision vqsa eval --dataset imagenet --data-root /data/imagenet --imagenet-c /data/imagenet-c \\
      --backbone resnet50 --quantizer hypervq --codes 1024 --dim 512 --pool 7 --device cuda --out runs/hypervq_sa \\
      --reference runs/resnet50/errors.json
"""


def _add_actions(parser: argparse.ArgumentParser) -> None:
    from .train import add_config_arguments

    actions = parser.add_subparsers(dest="vqsa_action", required=True, metavar="{train,eval,compare}")
    p = actions.add_parser("train", help="train one model, then evaluate it", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p)
    p.add_argument("--reference", default=None, help="a reference model's errors.json, for mCE")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p = actions.add_parser("eval", help="evaluate OUT/checkpoint_last.pt on clean, known and unknown corruptions",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p)
    p.add_argument("--reference", default=None, help="a reference model's errors.json, for mCE")
    p = actions.add_parser("compare", help="backbone alone vs VQ-SA with each quantizer (offline Table 6)",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p)
    p.add_argument("--quantizers", default="hypervq,kmeans,gumbel,none",
                   help="rows after the reference; 'none' = backbone fine-tuned on the pairs without the head")
    p.add_argument("--epochs-ref", type=int, default=3, help="epochs of the backbone-alone reference")
    parser.set_defaults(func=run)


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``vqsa`` on a ``hypervq-vision`` subparsers object; returns its parser."""
    parser = subparsers.add_parser("vqsa", help="VQ-SA robustness classifier with HyperVQ or another quantizer (Table 6)",
                                   description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_actions(parser)
    return parser


def _load_reference(path):
    if path is None:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"reference errors {path!r} not found (expected an errors.json written by vqsa eval/train)")
    with open(path) as f:
        ref = json.load(f)
    if "corruptions" not in ref:
        raise ValueError(f"{path} has no 'corruptions' entry; expected an errors.json written by vqsa eval/train")
    return ref


def run(args: argparse.Namespace) -> int:
    from .train import CHECKPOINT, KIND, build_model, config_from_args, evaluate, load_split, num_classes_of, train
    from ..checkpoint import load_checkpoint

    if args.vqsa_action == "compare":
        from .compare import compare

        quantizers = [canonical_name(q.strip()) for q in args.quantizers.split(",") if q.strip()]
        cfg = config_from_args(args, resume=True)
        print(compare(cfg, quantizers, args.epochs_ref))
        return 0
    cfg = config_from_args(args)
    reference = _load_reference(args.reference)
    if args.vqsa_action == "train":
        model = train(cfg)
        if not args.no_eval:
            result = evaluate(model, cfg, reference)
            print(json.dumps(result.get("metrics", {"clean_error": result["clean"]}), indent=2))
        return 0
    model = build_model(cfg, num_classes_of(load_split(cfg, train=False)))
    ckpt = os.path.join(cfg.out, CHECKPOINT)
    if os.path.exists(ckpt):
        model.load_state_dict(load_checkpoint(ckpt, KIND)["model"])
    elif cfg.quantizer == "none" and cfg.backbone_weights:
        print(f"[vqsa] no {ckpt}: evaluating the backbone as loaded from {cfg.backbone_weights} (with its classifier)")
    else:
        raise FileNotFoundError(f"{ckpt} not found: train first, or pass --quantizer none --backbone-weights FILE "
                                "to evaluate a pretrained backbone as it is")
    result = evaluate(model, cfg, reference)
    print(json.dumps(result.get("metrics", {"clean_error": result["clean"]}), indent=2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vqsa", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_actions(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
