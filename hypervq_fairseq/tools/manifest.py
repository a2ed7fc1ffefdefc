"""hypervq-manifest: fairseq manifests for LibriSpeech (or any tree in its layout), validated.

    hypervq-manifest /data/LibriSpeech --out manifests/librispeech
    hypervq-manifest /data/LibriSpeech --out manifests/librispeech --verify full --skip-bad

Every audio file is opened in parallel and checked (readable, 16 kHz, mono, not empty; with
``--verify full`` every frame is decoded); bad files are listed by path and reason and nothing
is written unless ``--skip-bad`` is given. The manifests of one run are replaced together or not
at all; a summary of hours and utterances per subset follows. See ``hypervq_fairseq.data.manifest``.
"""
import argparse
import os
import sys

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # the full 960 h: train-clean-100 + train-clean-360 + train-other-500 -> train.tsv, dev-* -> valid.tsv
  hypervq-manifest /data/LibriSpeech --out manifests/librispeech
  # only train-clean-100, leave out unreadable files, also write transcripts (train.trans, ...)
  hypervq-manifest /data/LibriSpeech --out manifests/ls100 --train-subsets train-clean-100 --skip-bad --transcripts
  # decode every frame of every file (finds damage in the middle of a FLAC), 16 processes
  hypervq-manifest /data/LibriSpeech --out manifests/librispeech --verify full --workers 16
  # the offline demo corpus (built by hypervq-demo-corpus)
  hypervq-manifest runs/demo/corpus --out runs/demo/manifest --train-subsets train-demo --valid-subsets dev-demo
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hypervq-manifest",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", help="LibriSpeech folder (holding train-clean-100/, dev-clean/, ...)")
    p.add_argument("--out", required=True, help="folder for train.tsv, valid.tsv and SUBSET.tsv")
    p.add_argument("--train-subsets", nargs="+", default=None,
                   help="subset folders for train.tsv (default: whichever of train-clean-100, train-clean-360, "
                        "train-other-500 exist)")
    p.add_argument("--valid-subsets", nargs="+", default=None,
                   help="subset folders for valid.tsv (default: whichever of dev-clean, dev-other exist)")
    p.add_argument("--ext", default="flac", help="audio file extension (default: flac)")
    p.add_argument("--sample-rate", type=int_at_least(1), default=16000, help="required sample rate in Hz (default: 16000)")
    p.add_argument("--verify", choices=["header", "edges", "full"], default="edges",
                   help="how deep each file is checked: header; edges (default: also decode the first and last "
                        "block, finds truncated files); full (decode every frame: damage anywhere, NaN samples)")
    p.add_argument("--skip-bad", action="store_true", help="leave bad files out (and list them) instead of failing")
    p.add_argument("--transcripts", action="store_true",
                   help="also write NAME.trans: the LibriSpeech transcript of each manifest line, same order")
    p.add_argument("--workers", type=int_at_least(1), default=None, help="inspection processes (default: all CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_debug_flag(p)
    return p


def _snapshot(folder: str) -> dict:
    """(size, mtime) of every file in ``folder``, to tell after an interrupt whether anything changed."""
    if not os.path.isdir(folder):
        return {}
    return {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.is_file()}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    before = _snapshot(args.out)

    def work():
        from ..data.manifest import build_manifests

        report = build_manifests(
            args.root, args.out,
            train_subsets=args.train_subsets, valid_subsets=args.valid_subsets,
            ext=args.ext, sample_rate=args.sample_rate, skip_bad=args.skip_bad, verify=args.verify,
            transcripts=args.transcripts, workers=args.workers, progress=not args.no_progress,
        )
        if report.bad:
            print(f"skipped {len(report.bad)} bad file(s):", file=sys.stderr)
            for b in report.bad:
                print(f"  {b.path}: {b.reason}", file=sys.stderr)
        print(report.summary_table())
        print("wrote " + ", ".join(str(p) for p in report.written))

    code = run("hypervq-manifest", work, args, interrupted="interrupted")
    if code == 130:
        changed = _snapshot(args.out) != before
        print("hypervq-manifest: " + ("the manifests had been written before the interrupt" if changed else
                                      "no manifest was written or changed"), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
