"""hypervq-codebook-report: how a dataset uses a pretrained codebook (counts, dead codes, perplexity).

    hypervq-codebook-report --tokens runs/demo/tokens/valid.tok --out runs/demo/codebook
    hypervq-codebook-report --checkpoint ckpt/checkpoint_best.pt --manifest manifests/valid.tsv --out report/

Writes ``OUT/usage_g{g}.png`` (per-code counts in code order, and ranked on a log scale with dead
codes in red), ``OUT/report.tsv`` and ``OUT/report.json``: per group and for the combined id,
frames, codes, used, dead, perplexity and the top code's share (``hypervq_fairseq.eval.codebook``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # from a token file (hypervq-tokenize writes OUT and OUT.json)
  hypervq-codebook-report --tokens runs/demo/tokens/valid.tok --out runs/demo/codebook
  # straight from a checkpoint and a manifest (tokens kept in memory)
  hypervq-codebook-report --checkpoint ckpt/hypervq/checkpoint_best.pt --manifest manifests/librispeech/valid.tsv \\
      --out reports/hypervq_valid
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-codebook-report", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="token file written by hypervq-tokenize (its .json beside it)")
    src.add_argument("--checkpoint", help="pretraining checkpoint; needs --manifest")
    p.add_argument("--manifest", help="fairseq manifest to encode with --checkpoint")
    p.add_argument("--out", required=True, help="folder for report.tsv, report.json and usage_g*.png")
    p.add_argument("--title", default="HyperVQ codebook", help="plot title prefix")
    p.add_argument("--device", default="cpu", help="cpu or cuda (with --checkpoint)")
    p.add_argument("--max-tokens", type=int_at_least(1), default=1_600_000,
                   help="padded samples per batch (with --checkpoint)")
    p.add_argument("--no-progress", action="store_true")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.checkpoint and not args.manifest:
        p.error("--checkpoint needs --manifest")

    def work():
        from ..eval.codebook import load_tokens, write_report
        from ..files import check_writable_folder

        check_writable_folder(args.out, what="--out")
        if args.tokens:
            ids, groups, num_vars = load_tokens(args.tokens)
            source = str(args.tokens)
        else:
            from ..eval.tokens import encode_manifest
            from ..fairseq.checkpoints import load_pretrained

            pm = load_pretrained(args.checkpoint, args.device)
            ids = list(encode_manifest(pm, args.manifest, max_tokens=args.max_tokens,
                                       progress=not args.no_progress).values())
            groups, num_vars = pm.groups, pm.num_vars
            source = f"{args.checkpoint} on {args.manifest}"
        report = write_report(ids, groups, num_vars, args.out, source, args.title)
        print(f"{report['utterances']} utterances, {groups} groups x {num_vars} codes ({source})")
        print(report["table"])
        print(f"wrote {Path(args.out) / 'report.tsv'}, report.json, " + ", ".join(f"usage_g{g}.png" for g in range(groups)))

    return run("hypervq-codebook-report", work, args)


if __name__ == "__main__":
    sys.exit(main())
