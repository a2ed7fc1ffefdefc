"""hypervq-unit-eval: do the codes follow phones? PNMI, purities, ABX and bitrate, with baselines.

    hypervq-unit-eval --checkpoints A.pt B.pt --names hypervq gumbel --data runs/demo/manifest --out runs/demo/units

DIR holds ``SUBSET.tsv`` and its phone alignment ``SUBSET.phn`` (``hypervq-align DIR``). Every
checkpoint's quantizer is scored on the aligned frames next to random codes with its own code
distribution and k-means on MFCC and on a transformer layer; see
``hypervq_fairseq.eval.unit_eval`` for the definitions and outputs.
"""
from __future__ import annotations

import argparse
import sys

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # the demo's two runs, after hypervq-demo (which aligns its validation set)
  hypervq-unit-eval --checkpoints runs/demo/hypervq/ckpt/checkpoint_last.pt runs/demo/gumbel/ckpt/checkpoint_last.pt \\
      --names hypervq gumbel --data runs/demo/manifest --out runs/demo/units
  # LibriSpeech dev-clean, k-means on layer 6, another seed
  hypervq-unit-eval --checkpoints hyper/checkpoint_best.pt --data manifests/ls100 --subset dev-clean \\
      --layer 6 --seed 1 --out units/dev-clean
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-unit-eval", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", required=True, help="pretraining checkpoints (with their quantizer)")
    p.add_argument("--names", nargs="+", default=None,
                   help="one name per checkpoint (default: hypervq / gumbel from the quantizer's type)")
    p.add_argument("--data", required=True, help="folder with SUBSET.tsv and SUBSET.phn (from hypervq-align)")
    p.add_argument("--subset", default="valid", help="manifest name (default: valid)")
    p.add_argument("--out", required=True, help="folder for results.json, results.md, frames.tsv and the pictures")
    p.add_argument("--layer", type=int_at_least(1, "transformer layer, 1 = first"), default=None,
                   help="transformer layer for the k-means baselines (default: the middle one)")
    p.add_argument("--kmeans-k", type=int_at_least(1, "clusters"), default=100,
                   help="k-means size besides the quantizers' own code counts (default 100)")
    p.add_argument("--matched-k", type=int_at_least(2, "codes"), default=None,
                   help="K of 'PNMI at K' (every system reduced to K codes, no label used; default: the fewest "
                        "codes any given checkpoint uses here; fix it to compare runs evaluated separately)")
    p.add_argument("--seed", type=int, default=0, help="seed of k-means, shuffled codes and ABX sampling (default 0)")
    p.add_argument("--max-fit-frames", type=int_at_least(1, "frames"), default=100_000,
                   help="k-means is fitted on at most this many frames (default 100000)")
    p.add_argument("--no-abx", action="store_true", help="skip the ABX scores")
    p.add_argument("--device", default="cpu", help="torch device for the checkpoints (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..eval.unit_eval import evaluate_units, format_table

        results = evaluate_units(args.checkpoints, args.data, args.subset, names=args.names, layer=args.layer,
                                 kmeans_k=args.kmeans_k, seed=args.seed, out=args.out, abx=not args.no_abx,
                                 max_fit_frames=args.max_fit_frames, device=args.device, progress=not args.quiet,
                                 matched_k=args.matched_k)
        print(format_table(results))
        print(f"\nwrote {args.out}/results.json, results.md, frames.tsv and cooccurrence_*.png")

    return run("hypervq-unit-eval", work, args, interrupted="interrupted; no output was written")


if __name__ == "__main__":
    sys.exit(main())
