"""hypervq-decode: WER and CER of a fine-tuned CTC checkpoint, greedy and with a lexicon + n-gram LM.

    hypervq-decode ckpt/ft100h/checkpoint_best.pt manifests/ft100h --subsets dev-clean dev-other --out ckpt/ft100h/decode
    hypervq-decode ckpt/ft100h/checkpoint_best.pt manifests/ft100h --subsets dev-clean dev-other test-clean test-other \
        --lm lm/lm.arpa --lexicon lm/lexicon.txt --grid dev-other --out ckpt/ft100h/decode_lm

Writes ``OUT/wer.tsv`` and ``OUT/wer.json`` (one row per subset and decoder: WER, CER, counts,
LM settings) and ``OUT/hyp/SUBSET.DECODER.tsv`` (id, reference, hypothesis), all together or not at
all. Greedy decoding needs nothing more; ``--lm`` needs the ``decode`` extra (flashlight-text).
How each part works: ``hypervq_fairseq.asr.decode``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import add_debug_flag, finite_float, float_at_least, int_at_least, run

EXAMPLES = """examples:
  # greedy (Viterbi) WER and CER on two subsets
  hypervq-decode ckpt/ft100h/checkpoint_best.pt manifests/ft100h --subsets dev-clean dev-other --out ckpt/ft100h/decode
  # with the LM: tune LM weight and word score on dev-other, then decode every subset with the best pair
  hypervq-decode ckpt/ft100h/checkpoint_best.pt manifests/ft100h --subsets dev-clean dev-other test-clean test-other \\
      --lm lm/lm.arpa --lexicon lm/lexicon.txt --grid dev-other --out ckpt/ft100h/decode_lm
  # fixed LM settings, the offline demo
  hypervq-decode runs/demo_asr/ctc/checkpoint_best.pt runs/demo_asr/manifest --subsets valid \\
      --lm runs/demo_asr/lm/lm.arpa --lexicon runs/demo_asr/lm/lexicon.txt --lm-weight 1 --word-score 0
"""


def _numbers(low=None):
    """argparse type: a comma- or space-separated list of finite numbers (each >= ``low`` if given)."""
    def parse(text: str):
        parts = text.replace(",", " ").split()
        if not parts:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers (e.g. '0,1,2')")
        one = finite_float() if low is None else float_at_least(low)
        return [one(x) for x in parts]
    parse.__name__ = "list of numbers"
    return parse


def build_parser() -> argparse.ArgumentParser:
    import torch

    p = argparse.ArgumentParser(prog="hypervq-decode", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="fine-tuned CTC checkpoint (wav2vec_ctc, from recipes/librispeech/07_finetune.sh)")
    p.add_argument("manifest_dir", help="folder with SUBSET.tsv, SUBSET.ltr, SUBSET.wrd and dict.ltr.txt (hypervq-labels)")
    p.add_argument("--subsets", nargs="+", default=["valid"], help="subsets to decode (default: valid)")
    p.add_argument("--out", default=None, help="output folder (default: CHECKPOINT_FOLDER/decode)")
    p.add_argument("--lm", default=None, metavar="ARPA", help="word n-gram LM (ARPA, or KenLM binary) for beam search")
    p.add_argument("--lexicon", default=None, help="letter lexicon: WORD<TAB>W O R D | per line (hypervq-build-lm)")
    p.add_argument("--lm-weight", type=float_at_least(0.0, "LM weight"), default=2.0, help="LM weight (default 2)")
    p.add_argument("--word-score", type=finite_float("word score"), default=-1.0, help="score added per word (default -1)")
    p.add_argument("--beam", type=int_at_least(1), default=500, help="beam size (default 500)")
    p.add_argument("--beam-threshold", type=float_at_least(0.0), default=25.0,
                   help="drop hypotheses this far below the best (default 25)")
    p.add_argument("--grid", metavar="DEV_SUBSET", default=None,
                   help="tune LM weight and word score on this subset (never a test* subset), then decode with the best")
    p.add_argument("--grid-lm-weights", type=_numbers(0.0), default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
                   help="LM weights to try (default '0,0.5,1,1.5,2,3')")
    p.add_argument("--grid-word-scores", type=_numbers(), default=[-2.0, -1.0, 0.0, 1.0],
                   help="word scores to try (default '-2,-1,0,1'; write --grid-word-scores=-1,0 for a list that starts with -)")
    p.add_argument("--no-greedy", action="store_true", help="LM decoding only")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..asr.decode import BeamOptions, DecodeRun
        from ..asr.decode import run as decode_run
        from ..files import check_writable_folder

        out = args.out or str(Path(args.checkpoint).parent / "decode")
        check_writable_folder(out, what="--out folder")
        cfg = DecodeRun(checkpoint=args.checkpoint, manifest_dir=args.manifest_dir, subsets=args.subsets, out_dir=out,
                        arpa=args.lm, lexicon=args.lexicon, greedy=not args.no_greedy, tune_subset=args.grid,
                        grid_lm_weights=args.grid_lm_weights, grid_word_scores=args.grid_word_scores, device=args.device,
                        beam=BeamOptions(beam=args.beam, beam_threshold=args.beam_threshold, lm_weight=args.lm_weight,
                                         word_score=args.word_score))
        decode_run(cfg)

    return run("hypervq-decode", work, args, interrupted="interrupted; no report was written")


if __name__ == "__main__":
    sys.exit(main())
