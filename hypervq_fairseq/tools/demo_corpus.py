"""hypervq-demo-corpus: build the offline real-speech corpus in LibriSpeech's layout.

Decodes Debian's Asterisk G.722 prompts (four real voices, en/fr/it/ru, ~1.2 h usable) into
``ROOT/SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` with ``SPEAKER-CHAPTER.trans.txt``,
topped up with flite speech only if the real voices fall short. Deterministic; an existing
corpus built with the same options is reused. The audio is CC-BY-SA: never commit it.
"""
import argparse
import sys

from ..cli import add_debug_flag, float_at_least, int_at_least, positive_float, run

EXAMPLES = """examples:
  # everything the installed voices hold (~1.2 h, ~10 s to build), then its manifests
  hypervq-demo-corpus runs/demo/corpus
  hypervq-manifest runs/demo/corpus --out runs/demo/manifest --train-subsets train-demo --valid-subsets dev-demo
  # a tiny corpus for tests: 40 clips of at most 3 s
  hypervq-demo-corpus runs/tiny --max-utterances 40 --max-seconds 3
  # English voice only, topped up with synthetic flite voices to 30 minutes
  hypervq-demo-corpus runs/en30 --languages en --target-minutes 30
  # the speech-recognition demo's corpus: the English voice's prompts split by a hash of their words
  # into train-asr (+ flite voices speaking the training sentences) / dev-asr / test-asr (held apart)
  hypervq-demo-corpus runs/demo_asr/corpus --asr
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-demo-corpus", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="output folder (created; reused if built with the same options)")
    p.add_argument("--max-utterances", type=int_at_least(1), default=None, help="stop after this many clips")
    p.add_argument("--max-minutes", type=positive_float(), default=None, help="stop after this much audio")
    p.add_argument("--target-minutes", type=positive_float(), default=None,
                   help="top up with synthetic flite speech if the real voices give less than this")
    p.add_argument("--min-seconds", type=float_at_least(0.0), default=0.5, help="shortest clip kept (default 0.5)")
    p.add_argument("--max-seconds", type=positive_float(), default=16.0, help="longest clip kept (default 16)")
    p.add_argument("--languages", nargs="+", default=None, help="voice prefixes to use, e.g. en fr (default: all)")
    p.add_argument("--valid-every", type=int_at_least(0), default=10,
                   help="every n-th clip of each speaker goes to the validation subset (0: none; default 10)")
    asr = p.add_argument_group("speech-recognition corpus (--asr: of the options above, --min-seconds, --max-seconds, --max-utterances (per subset) and --force apply)")
    asr.add_argument("--asr", action="store_true",
                     help="build train-asr/dev-asr/test-asr from the English voice, split by a hash of each transcript")
    asr.add_argument("--flite-voices", nargs="*", default=None,
                     help="flite voices speaking the training sentences (default: slt rms awb kal16; none: real voice only)")
    asr.add_argument("--test-percent", type=int_at_least(0), default=10, help="share of transcripts held apart for test")
    asr.add_argument("--dev-percent", type=int_at_least(0), default=10, help="share of transcripts held apart for dev")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching corpus exists")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..data.demo_corpus import FLITE_VOICES, build_asr_corpus, build_demo_corpus

        if args.asr:
            corpus = build_asr_corpus(
                args.root, flite_voices=tuple(FLITE_VOICES if args.flite_voices is None else args.flite_voices),
                test_percent=args.test_percent, dev_percent=args.dev_percent, min_seconds=args.min_seconds,
                max_seconds=args.max_seconds, max_utterances=args.max_utterances, force=args.force, progress=True)
        else:
            corpus = build_demo_corpus(
                args.root, max_utterances=args.max_utterances, max_minutes=args.max_minutes,
                target_minutes=args.target_minutes, min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                languages=tuple(args.languages) if args.languages else None, valid_every=args.valid_every,
                force=args.force, progress=True,
            )
        print(f"{'reused' if corpus.reused else 'built'} {corpus.root}: {len(corpus.speakers)} speakers, "
              f"{corpus.total_seconds / 60:.1f} min")
        for name, s in corpus.subsets.items():
            print(f"  {name:<12}{s['utterances']:>6} utterances {s['seconds'] / 60:>7.1f} min")

    return run("hypervq-demo-corpus", work, args, interrupted="interrupted; the corpus folder was left as it was")


if __name__ == "__main__":
    sys.exit(main())
