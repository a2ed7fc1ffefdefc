"""Greedy (Viterbi) CTC decoding of a fine-tuned ``wav2vec_ctc`` checkpoint, one utterance at a time.

The same decoding as fairseq's ``ctc`` criterion (argmax per frame, repeats merged, blanks
dropped, letters joined into words at ``|``), but it keeps the sentences, so that a demo can
show what it heard. Each utterance is decoded alone (no padding), so the rates can differ by a
little from fairseq-validate's batched ones (recipes/librispeech/08_decode.sh says why).
Letter error rate as fairseq's ``uer``: edit distance over letter tokens, ``|`` included,
divided by the reference's token count; WER over words.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass
class Decoded:
    utterance: str  # manifest path of the audio
    reference: str
    hypothesis: str


def error_rates(decoded) -> dict:
    """{"wer", "ler"} in percent over all utterances (summed edits / summed reference lengths)."""
    import editdistance

    word_edits = word_total = letter_edits = letter_total = 0
    for d in decoded:
        ref_w, hyp_w = d.reference.split(), d.hypothesis.split()
        word_edits += editdistance.eval(ref_w, hyp_w)
        word_total += len(ref_w)
        ref_l, hyp_l = list("|".join(ref_w) + "|"), list("|".join(hyp_w) + "|") if hyp_w else []
        letter_edits += editdistance.eval(ref_l, hyp_l)
        letter_total += len(ref_l)
    return {"wer": 100.0 * word_edits / max(1, word_total), "ler": 100.0 * letter_edits / max(1, letter_total)}


def decode_subset(checkpoint, manifest_dir, subset: str, limit: int | None = None) -> list:
    """Decode ``manifest_dir/SUBSET.tsv`` with the CTC model in ``checkpoint``; references from SUBSET.wrd."""
    import soundfile as sf
    import torch
    from fairseq import checkpoint_utils
    from fairseq.data.data_utils import post_process

    manifest_dir = Path(manifest_dir)
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(manifest_dir)})
    model = models[0].eval()
    tgt = task.target_dictionary
    blank = tgt.index(task.blank_symbol) if hasattr(task, "blank_symbol") else 0
    lines = (manifest_dir / f"{subset}.tsv").read_text().splitlines()
    root, entries = Path(lines[0]), [line.split("\t")[0] for line in lines[1:]]
    refs = (manifest_dir / f"{subset}.wrd").read_text().splitlines()
    if len(refs) != len(entries):
        raise ValueError(f"{subset}.wrd has {len(refs)} lines for {len(entries)} utterances")
    out = []
    with torch.inference_mode():
        for rel, ref in list(zip(entries, refs))[:limit]:
            audio, sr = sf.read(root / rel, dtype="float32")
            x = torch.from_numpy(audio)[None]
            if cfg.task.get("normalize", False):
                x = torch.nn.functional.layer_norm(x, x.shape)
            net = model(source=x, padding_mask=None)
            best = model.get_logits(net).argmax(-1)[:, 0]  # T x B x V -> T
            toks = torch.unique_consecutive(best)
            toks = [t for t in toks.tolist() if t not in (blank, tgt.pad(), tgt.eos())]
            out.append(Decoded(rel, ref, post_process(tgt.string(toks), "letter")))
    return out
