"""The offline Table 6: backbone alone vs VQ-SA with each quantizer asked for, on one seed.

Stages (each in its own sub-folder of ``--out``, skipped when its ``errors.json`` exists, and
resumable mid-training):

1. ``reference``: the backbone alone (global pool + linear) trained on clean images only,
   like the paper's pretrained ResNet-50 row; its errors are the mCE reference;
2. one folder per quantizer: VQ-SA initialised with the reference backbone, trained on
   clean + corrupted pairs, evaluated on the same clean / known / unknown sets;
3. optionally ``none``: the reference backbone fine-tuned on the same pairs without the
   VQ-SA head, which separates what the augmentation alone buys from what the head adds.

The table (``table.md``, ``results.json``) gives clean, known and unknown accuracy and mCE
(normalised by the reference model, so the reference row is 100 by construction).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import List

from ...files import atomic_write_json, atomic_write_text
from .train import VQSAConfig, evaluate, row_metrics, train

# Row names of the tables, as in the paper's Table 6 (``kmeans`` is the original VQ-SA codebook).
DISPLAY_NAMES = {"hypervq": "HyperVQ-SA", "kmeans": "VQ-SA", "gumbel": "GumbelVQ-SA", "hyper_kmeans": "HyperKmeansVQ-SA",
                 "hyper_embmat": "HyperEmbMatVQ-SA", "none": "backbone alone"}


def run_stage(cfg: VQSAConfig, reference: dict = None) -> dict:
    path = os.path.join(cfg.out, "errors.json")
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
        print(f"[vqsa] {cfg.out}: done before, using its errors.json")
    else:
        t0 = time.time()
        model = train(cfg)
        result = evaluate(model, cfg)
        result["seconds"] = time.time() - t0
        atomic_write_json(path, result)
    return result


def format_table(rows: List[dict]) -> str:
    lines = ["| model | clean ↑ | known ↑ | unknown ↑ | mCE ↓ | train+eval s |", "|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['name']} | {m['clean']:.2f} | {m['known']:.2f} | {m['unknown']:.2f} | {m['mCE']:.1f} | "
                     f"{r.get('seconds', float('nan')):.0f} |")
    return "\n".join(lines) + "\n"


def compare(base: VQSAConfig, quantizers: List[str], epochs_ref: int) -> str:
    """Run every stage; write and return the markdown table."""
    ref_cfg = replace(base, out=os.path.join(base.out, "reference"), quantizer="none", train_corruptions=False,
                      epochs=epochs_ref, backbone_weights=base.backbone_weights)
    reference = run_stage(ref_cfg)
    ref_ckpt = os.path.join(ref_cfg.out, "checkpoint_last.pt")
    rows = [{"name": DISPLAY_NAMES["none"], "key": "reference", "metrics": row_metrics(reference, reference),
             "seconds": reference.get("seconds", float("nan"))}]
    for q in quantizers:
        cfg = replace(base, out=os.path.join(base.out, q), quantizer=q, train_corruptions=True, backbone_weights=ref_ckpt)
        result = run_stage(cfg)
        name = DISPLAY_NAMES.get(q, q) if q != "none" else "backbone + corruption pairs (no head)"
        rows.append({"name": name, "key": q, "metrics": row_metrics(result, reference), "seconds": result.get("seconds", float("nan"))})
    table = format_table(rows)
    atomic_write_json(os.path.join(base.out, "results.json"), {"rows": rows, "known": base.known_list, "unknown": base.unknown_list})
    atomic_write_text(os.path.join(base.out, "table.md"), table)
    return table
