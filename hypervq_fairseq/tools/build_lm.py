"""hypervq-build-lm: a word n-gram LM (ARPA) and a letter lexicon for hypervq-decode's beam search.

    hypervq-build-lm manifests/ft100h --out lm/ft100h                         # 4-gram on train.wrd + its lexicon
    hypervq-build-lm manifests/ft100h --out lm/librispeech --arpa lm/librispeech/4-gram.arpa   # lexicon only

Counts the training transcripts (``MANIFEST_DIR/train.wrd``, or ``--text``) into an interpolated
modified Kneser-Ney model, ``OUT/lm.arpa``, and spells every word with the fine-tuning letter
dictionary (``MANIFEST_DIR/dict.ltr.txt``) into ``OUT/lexicon.txt`` (``WORD<TAB>W O R D |``). With
``--arpa`` an existing LM (LibriSpeech's official ``4-gram.arpa``) is kept and only the lexicon of
its words is written. Needs no extra package; see ``hypervq_fairseq.asr.lm``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cli import add_debug_flag, int_in_range, run

EXAMPLES = """examples:
  # a 4-gram LM and lexicon from the training transcripts
  hypervq-build-lm manifests/ft100h --out lm/ft100h
  # the offline demo: a trigram from its train.wrd
  hypervq-build-lm runs/demo_asr/manifest --out runs/demo_asr/lm --order 3
  # LibriSpeech's official 4-gram.arpa: write only the lexicon of its words
  hypervq-build-lm manifests/ft100h --out lm/librispeech --arpa lm/librispeech/4-gram.arpa
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-build-lm", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest_dir", help="folder with dict.ltr.txt and train.wrd (hypervq-labels)")
    p.add_argument("--out", required=True, help="output folder: lm.arpa and lexicon.txt")
    p.add_argument("--order", type=int_in_range(1, 9, "n-gram order"), default=4, help="n-gram order (default 4)")
    p.add_argument("--text", nargs="+", default=None, help="transcript files, words separated by spaces "
                   "(default: MANIFEST_DIR/train.wrd)")
    p.add_argument("--dict", default=None, help="letter dictionary (default: MANIFEST_DIR/dict.ltr.txt)")
    p.add_argument("--arpa", default=None, help="use this existing ARPA LM (.arpa or .arpa.gz): write only its lexicon")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..asr import lm
        from ..files import atomic_write_all, check_writable_folder

        out = Path(args.out)
        check_writable_folder(out, what="--out folder")
        letters = lm.read_letters(args.dict or Path(args.manifest_dir) / "dict.ltr.txt")
        files = {}
        t0 = time.time()
        if args.arpa:
            words = lm.arpa_words(args.arpa)
            source = args.arpa
        else:
            texts = args.text or [str(Path(args.manifest_dir) / "train.wrd")]
            sentences = lm.read_sentences(texts)
            model = lm.kneser_ney(sentences, args.order)
            words = model.vocabulary
            source = ", ".join(texts)
            files[out / "lm.arpa"] = lm.arpa_writer(model)
            sizes = ", ".join(f"{len(p) + (1 if n == 0 else 0)} {n + 1}-grams" for n, p in enumerate(model.prob))
            print(f"{args.order}-gram LM of {len(sentences)} sentences: {sizes}")
        lines, missing = lm.lexicon_lines(words, letters)
        if not lines:
            raise lm.LMError(f"no word of {source} can be spelled with the letters of the dictionary")
        files[out / "lexicon.txt"] = lines
        for path in atomic_write_all(files):
            print(f"wrote {path}")
        print(f"lexicon: {len(lines)} words" + (f"; {len(missing)} left out, with letters not in the dictionary "
                                                 f"(e.g. {', '.join(missing[:5])})" if missing else "")
              + f" ({time.time() - t0:.1f} s)")

    return run("hypervq-build-lm", work, args, interrupted="interrupted; nothing was written")


if __name__ == "__main__":
    sys.exit(main())
