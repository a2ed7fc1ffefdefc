"""hypervq-download: LibriSpeech subsets into ROOT/LibriSpeech/, resumable and SHA-256 verified.

    hypervq-download /data --all-960h
    hypervq-download /data --subsets dev-clean dev-other --keep-archives

Subsets already present are skipped; an interrupted download resumes where it stopped; a
checksum mismatch deletes the archive and says so (``hypervq_fairseq.data.download``).
"""
from __future__ import annotations

import argparse
import sys

from ..cli import add_debug_flag, int_at_least, run
from ..data.download import LIBRISPEECH_SHA256, LIBRISPEECH_URL, SUBSETS_960H

EXAMPLES = """examples:
  hypervq-download /data --all-960h
  hypervq-download /data --subsets dev-clean dev-other --keep-archives
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-download", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="folder that receives LibriSpeech/ (and the archives while downloading)")
    p.add_argument("--subsets", nargs="+", default=None, help=f"subsets to fetch (known: {', '.join(LIBRISPEECH_SHA256)})")
    p.add_argument("--all-960h", action="store_true", help=f"fetch {', '.join(SUBSETS_960H)}")
    p.add_argument("--base-url", default=LIBRISPEECH_URL, help="mirror holding SUBSET.tar.gz files")
    p.add_argument("--keep-archives", action="store_true", help="keep the .tar.gz files after unpacking")
    p.add_argument("--retries", type=int_at_least(0), default=5, help="resume attempts after a dropped connection")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    subsets = args.subsets or (SUBSETS_960H if args.all_960h else None)
    if not subsets:
        p.error("name --subsets or --all-960h")

    def work():
        from ..data.download import fetch_librispeech

        status = fetch_librispeech(args.root, subsets, base_url=args.base_url, keep_archives=args.keep_archives,
                                   retries=args.retries)
        for subset, state in status.items():
            print(f"{subset}: {state}")

    return run("hypervq-download", work, args,
               interrupted="interrupted; run the same command again to resume the download")


if __name__ == "__main__":
    sys.exit(main())
