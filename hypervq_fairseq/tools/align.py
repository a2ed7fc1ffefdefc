"""hypervq-align: phone alignments (``SPLIT.phn``) beside fairseq manifests, for token-quality evaluation.

    hypervq-align runs/demo/manifest                          # valid.tsv + valid.wrd -> valid.phn
    hypervq-align manifests/ls100 --splits dev-clean dev-other
    hypervq-align --synthesize data/flite_eval --per-voice 30  # flite speech with its exact phones

Real speech is force-aligned with pocketsphinx's en-us model and dictionary (offline); words
missing from the dictionary are listed and their utterance skipped. ``--synthesize`` makes an
evaluation set of flite's three 16 kHz voices saying the same sentences, with flite's own phone
boundaries. Format and caching: ``hypervq_fairseq.data.alignment``.
"""
from __future__ import annotations

import argparse
import sys

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # the demo's validation set (its English voice; the other voices' transcripts are translations)
  hypervq-align runs/demo/manifest
  # LibriSpeech dev sets, after recipes/librispeech/06_labels.sh wrote dev-clean.wrd and dev-other.wrd
  hypervq-align manifests/ls100 --splits dev-clean dev-other
  # a synthetic set with exact phone boundaries: 3 flite voices x 30 sentences
  hypervq-align --synthesize data/flite_eval --per-voice 30
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-align", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest_dir", help="folder with SPLIT.tsv (and SPLIT.wrd); with --synthesize, the folder to create")
    p.add_argument("--splits", nargs="+", default=["valid"], help="manifests to align (default: valid)")
    p.add_argument("--speakers", nargs="+", default=None,
                   help="align only these speakers (default: all; in the demo corpus, its English voice)")
    p.add_argument("--force", action="store_true", help="re-align everything instead of reusing unchanged utterances")
    p.add_argument("--synthesize", action="store_true",
                   help="create MANIFEST_DIR with flite speech (voices slt, rms, awb) and its exact phones")
    p.add_argument("--per-voice", type=int_at_least(1, "sentences per voice"), default=20,
                   help="with --synthesize: sentences each voice says (default 20)")
    p.add_argument("--sentences", default=None, help="with --synthesize: a text file, one sentence per line "
                                                     "(default: the demo corpus's English prompts)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..data.alignment import align_manifest_dir, synthesize_aligned

        if args.synthesize:
            sentences = None
            if args.sentences:
                with open(args.sentences, encoding="utf-8") as f:
                    sentences = [line.strip() for line in f if line.strip()][: args.per_voice]
            reports = [synthesize_aligned(args.manifest_dir, sentences=sentences, per_voice=args.per_voice,
                                          progress=not args.quiet)]
        else:
            reports = align_manifest_dir(args.manifest_dir, args.splits, speakers=args.speakers, force=args.force,
                                         progress=not args.quiet)
        for report in reports:
            print(report.summary())

    return run("hypervq-align", work, args, interrupted="interrupted; no alignment file was written or changed")


if __name__ == "__main__":
    sys.exit(main())
