"""hypervq-export-hf: a checkpoint of this project as a Hugging Face transformers model folder.

    hypervq-export-hf runs/demo/hypervq/ckpt/checkpoint_last.pt export/hypervq
    hypervq-export-hf ckpt/ft100h/checkpoint_best.pt export/ft100h --dict manifests/ft100h/dict.ltr.txt
    hypervq-export-hf runs/demo/hypervq/ckpt/checkpoint_last.pt export/hypervq --overwrite --verify runs/demo/manifest/valid.tsv

A pretraining checkpoint becomes a ``Wav2Vec2Model``; the quantizer is not part of
``Wav2Vec2Model`` and is written beside it (``quantizer.safetensors``, ``quantizer.json``; load it
with ``hypervq_fairseq.quantizers.exported.load_exported_quantizer``). A CTC fine-tuned checkpoint
becomes a ``Wav2Vec2ForCTC`` with a ``Wav2Vec2Processor`` whose vocabulary comes from the
fine-tuning ``dict.ltr.txt``. Weights are mapped by name; every tensor left out is listed in
``OUT/export.json``. Needs the ``hf`` extra (transformers, safetensors). Logic:
``hypervq_fairseq.fairseq.export_hf``; details in ``docs/export.md``.
"""
from __future__ import annotations

import argparse
import sys

from ..cli import add_debug_flag, int_at_least, run

EXAMPLES = """examples:
  # a pretraining checkpoint -> Wav2Vec2Model, with the HyperVQ quantizer beside it
  hypervq-export-hf runs/demo/hypervq/ckpt/checkpoint_last.pt export/hypervq
  # a CTC fine-tuned checkpoint -> Wav2Vec2ForCTC + Wav2Vec2Processor (letters from dict.ltr.txt)
  hypervq-export-hf ckpt/ft100h/checkpoint_best.pt export/ft100h --dict manifests/ft100h/dict.ltr.txt
  # then run fairseq and the export on real audio and print the largest differences
  hypervq-export-hf runs/demo/hypervq/ckpt/checkpoint_last.pt export/hypervq --overwrite --verify runs/demo/manifest/valid.tsv
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-export-hf", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="pretraining (hypervq_wav2vec2, wav2vec2) or CTC fine-tuned (wav2vec_ctc) checkpoint")
    p.add_argument("out", help="folder to write (config.json, model.safetensors, ...); written complete or not at all")
    p.add_argument("--dict", dest="dictionary", help="the fine-tuning letter dictionary dict.ltr.txt (CTC models)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--verify", metavar="MANIFEST", help="after exporting, compare fairseq and the export on the first "
                   "utterances of this manifest (largest differences, token ids)")
    p.add_argument("--verify-limit", type=int_at_least(1), default=8, help="utterances to compare (default 8)")
    add_debug_flag(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def work():
        from ..fairseq.export_hf import export, require_hf, verify

        from pathlib import Path

        from ..files import check_writable_folder

        require_hf()  # before reading the checkpoint: one line naming the extra
        check_writable_folder(Path(args.out).resolve().parent, what="OUT's folder")
        r = export(args.checkpoint, args.out, dictionary=args.dictionary, overwrite=args.overwrite)
        print(f"{r.out}: {r.model_class} ({r.mapped} checkpoint tensors mapped by name); files: {', '.join(r.files)}")
        if r.kind == "pretraining" and "quantizer.json" in r.files:
            print("the quantizer is not part of Wav2Vec2Model: it is in quantizer.safetensors + quantizer.json "
                  "(hypervq_fairseq.quantizers.exported.load_exported_quantizer turns extract_features into "
                  "hypervq-tokenize's ids)")
        if r.left_out:
            print(f"left out ({len(r.left_out)}, listed in export.json): "
                  + "; ".join(sorted({f'{n.split(".")[0]}.*: {why}' for n, why in r.left_out.items()})))
        for name, what in r.synthesized.items():
            print(f"filled by construction: {name} = {what}")
        for note in r.notes:
            print(f"note: {note}")
        if args.verify:
            v = verify(args.checkpoint, r.out, args.verify, limit=args.verify_limit, dictionary=args.dictionary)
            diffs = ", ".join(f"{k} {v[k]:.2g}" for k in ("hidden_states", "extract_features", "logits",
                                                            "feature_extractor_input",
                                                            "last_hidden_state_via_feature_extractor") if k in v)
            tokens = (f"; token ids differing from hypervq-tokenize's on {v['token_frames_differing']} frames"
                      if "token_frames_differing" in v else "")
            print(f"verify on {v['utterances']} utterances ({v['frames']} frames), largest |fairseq - export|: "
                  f"{diffs}{tokens}")

    return run("hypervq-export-hf", work, args,
               interrupted="interrupted; nothing was written (the folder appears only when complete)")


if __name__ == "__main__":
    sys.exit(main())
