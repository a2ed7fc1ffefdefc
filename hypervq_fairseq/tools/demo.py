"""Quick HyperVQ demonstration (replaced by the wav2vec 2.0 demo once the recipe lands).

    hypervq-demo
"""
import argparse


def main(argv=None):
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    raise SystemExit("the demo is being built")


if __name__ == "__main__":
    main()
