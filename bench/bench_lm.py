"""Cost of hypervq-build-lm's Kneser-Ney counter: time and peak memory on a given number of words.

    .venv/bin/python bench/bench_lm.py                       # 1 M words, 4-gram (the figures in docs/asr.md)
    .venv/bin/python bench/bench_lm.py --words 200000 --order 3

The text is random: sentences of 5-30 words drawn from a 20,000-word vocabulary with Zipf
(1/rank) frequencies, seeded, so every run counts the same n-grams. Prints the n-gram counts per
order, the estimate's time, the time with the ARPA file written, and the process's peak RSS
(torch included: ``hypervq_fairseq`` imports it).
"""
import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from hypervq_fairseq.asr import lm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--words", type=int, default=1_000_000)
    p.add_argument("--order", type=int, default=4)
    p.add_argument("--vocab", type=int, default=20_000)
    args = p.parse_args()
    rng = random.Random(0)
    vocab = [f"W{i}" for i in range(args.vocab)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    sentences, n = [], 0
    while n < args.words:
        k = rng.randint(5, 30)
        sentences.append(rng.choices(vocab, weights, k=k))
        n += k
    t0 = time.time()
    model = lm.kneser_ney(sentences, args.order)
    estimate = time.time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        lm.write_arpa(model, Path(tmp) / "lm.arpa")
    total = time.time() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} words, {len(sentences)} sentences, order {args.order}: n-grams per order {[len(x) for x in model.prob]}; "
          f"estimate {estimate:.1f} s, with the ARPA file {total:.1f} s; peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
