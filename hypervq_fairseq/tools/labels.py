"""hypervq-labels: fine-tuning labels (words, letters, dictionaries) for fairseq manifests.

    hypervq-labels runs/demo/manifest                               # train.tsv + valid.tsv -> .wrd, .ltr, dict.ltr.txt
    hypervq-labels manifests/ls100 --splits train dev-clean dev-other --sentencepiece 1000

Each ``SPLIT.tsv`` gets ``SPLIT.wrd`` (words) and ``SPLIT.ltr`` (letters, ``|`` after each word)
beside it, with ``dict.ltr.txt`` counted on the dictionary split; see ``hypervq_fairseq.data.labels``.
"""
from __future__ import annotations

import argparse
import sys

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # letters + words for the demo manifests (train.tsv, valid.tsv in runs/demo/manifest)
  hypervq-labels runs/demo/manifest
  # LibriSpeech 100 h: also dev-clean/dev-other manifests, and 1000 sentencepiece units
  hypervq-labels manifests/ls100 --splits train dev-clean dev-other --sentencepiece 1000
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-labels", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest_dir", help="folder with SPLIT.tsv manifests; labels are written beside them")
    p.add_argument("--splits", nargs="+", default=["train", "valid"], help="manifest names (default: train valid)")
    p.add_argument("--dict-split", default="train", help="split whose labels build the dictionaries (default: train)")
    p.add_argument("--sentencepiece", type=int_at_least(2, "vocabulary size"), default=None, metavar="VOCAB",
                   help="also train a sentencepiece model of this vocabulary size and write .spm labels")
    p.add_argument("--spm-model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..data.labels import write_labels

        written = write_labels(args.manifest_dir, args.splits, dict_split=args.dict_split,
                               sentencepiece=args.sentencepiece, spm_model_type=args.spm_model_type)
        for path in written.values():
            print(f"wrote {path}")

    return run("hypervq-labels", work, args, interrupted="interrupted; no label file was written or changed")


if __name__ == "__main__":
    sys.exit(main())
