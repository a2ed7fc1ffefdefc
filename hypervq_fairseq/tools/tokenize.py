"""hypervq-tokenize: the code ids of every utterance of a manifest, from a pretraining checkpoint.

    hypervq-tokenize runs/demo/hypervq/ckpt/checkpoint_last.pt runs/demo/manifest/valid.tsv --out runs/demo/tokens/valid.tok
    hypervq-tokenize ckpt/checkpoint_best.pt manifests/librispeech/train.tsv --out tokens/train.km --combine --device cuda

HyperVQ is a tokenizer: after wav2vec 2.0 pretraining the target quantizer turns each 20 ms
frame into one code per group, the discrete units that unit language models, HuBERT-style
targets and discrete ASR consume. The ids come from the model's own ``quantize()`` path in eval
mode (argmax, no noise), batched without changing a value (``hypervq_fairseq.fairseq.encode``).
The file format, the sidecar ``OUT.json`` and how an interrupted run resumes are described in
``hypervq_fairseq.eval.tokens``: ``OUT`` appears only when every utterance is done.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # per-group ids of the demo's validation set from a demo pretraining checkpoint
  hypervq-tokenize runs/demo/hypervq/ckpt/checkpoint_last.pt runs/demo/manifest/valid.tsv --out runs/demo/tokens/valid.tok
  # one combined id per frame (V^G symbols), on a GPU, larger batches
  hypervq-tokenize ckpt/checkpoint_best.pt manifests/librispeech/train.tsv --out tokens/train.km --combine \\
      --device cuda --max-tokens 3200000
  # interrupted? run the same command again: finished utterances are skipped
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-tokenize", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="pretraining checkpoint (hypervq_wav2vec2 or wav2vec2 with quantize_targets)")
    p.add_argument("manifest", help="fairseq manifest (.tsv): root, then relative_path<TAB>num_frames")
    p.add_argument("--out", required=True, help="token file to write (OUT.json beside it describes it)")
    p.add_argument("--combine", action="store_true", help="one id per frame, Σ_g idx_g·V^(G-1-g), instead of G ids")
    p.add_argument("--max-tokens", type=int_at_least(1), default=1_600_000,
                   help="padded audio samples per batch (default 100 s)")
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="utterances per batch at most (default 32)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--limit", type=int_at_least(1), default=None, help="encode at most N new utterances, then stop (resumable)")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming an existing OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..eval.tokens import dump_tokens
        from ..fairseq.checkpoints import load_pretrained
        from ..files import check_writable_folder

        check_writable_folder(Path(args.out).parent, what="--out folder")
        pm = load_pretrained(args.checkpoint, args.device)
        print(f"model {pm.model_name}: {pm.groups} groups x {pm.num_vars} codes, "
              f"{pm.frame_rate:g} frames/s, quantizer {pm.fingerprint}", file=sys.stderr)
        s = dump_tokens(pm, args.manifest, args.out, combine=args.combine, max_tokens=args.max_tokens,
                        batch_size=args.batch_size, limit=args.limit, overwrite=args.overwrite,
                        progress=not args.no_progress)
        state = "done" if s["finished"] else "unfinished (run again to continue)"
        print(f"{s['out']}: {s['encoded']} utterances encoded ({s['frames']} frames), {s['skipped']} already there; {state}")

    return run("hypervq-tokenize", work, args,
               interrupted=f"interrupted; finished utterances are kept in {args.out}.partial: run the same command again")


if __name__ == "__main__":
    sys.exit(main())
