"""The side-by-side run: five quantizers, one table in the paper's format.

For each quantizer, seeded and on CPU: train a VQ-VAE (K = 512) → test MSE (Table 1) and
code perplexity (Table 4); train the frozen-feature probe → test accuracy (Tables 3, 7);
train a second VQ-VAE with latent dimension 3 and K = 16 → silhouette and Davies–Bouldin
scores, clean and corrupted (Table 5). Each stage writes its own checkpoint and JSON, so a
rerun with the same ``--out`` resumes where it stopped and skips finished stages.
``results.md`` holds the table and a plain statement of which of the paper's orderings hold.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace

from ..files import atomic_write_json, atomic_write_text
from .disentangle import evaluate_disentanglement, scatter_png
from .model import VQVAEConfig
from .options import loop_options
from .probe import train_probe
from .quantizers import PAPER_NAMES, options_for
from .train import evaluate_vqvae, train_vqvae


def _stage(path: str, fn):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    result = fn()
    atomic_write_json(path, result)
    return result


def run_compare(args, base_cfg: VQVAEConfig, quantizer_settings: dict, train_ds, test_ds, classes: int, dis_train_ds,
                dis_images) -> dict:
    rows = {}
    t_all = time.time()
    for q in args.quantizers:
        out = os.path.join(args.out, q)
        t0 = time.time()
        cfg = replace(base_cfg, quantizer=q, quantizer_options=options_for(q, quantizer_settings))
        common = {**loop_options(args), "resume": True}  # a rerun continues where it stopped

        def recon():
            model = train_vqvae(cfg, train_ds, out=os.path.join(out, "vqvae"), steps=args.steps,
                                batch_size=args.batch_size, lr=args.lr, dataset=args.dataset, device=args.device, **common)
            metrics = evaluate_vqvae(model, test_ds, workers=args.workers)
            metrics["probe"] = train_probe(model, train_ds, test_ds, classes=classes, out=os.path.join(out, "probe"),
                                           steps=args.probe_steps, batch_size=args.batch_size, **common)
            return metrics

        def disent():
            dcfg = replace(cfg, num_codes=args.dis_codes, embedding_dim=args.dis_dim)
            model = train_vqvae(dcfg, dis_train_ds, out=os.path.join(out, "disentangle"), steps=args.dis_steps,
                                batch_size=args.batch_size, lr=args.lr, dataset=args.dataset, device=args.device, **common)
            scores, points = evaluate_disentanglement(model, dis_images, samples=args.dis_samples, seed=args.seed)
            scatter_png(points, os.path.join(out, "disentangle", "scatter.png"), PAPER_NAMES.get(q, q))
            return scores

        r = _stage(os.path.join(out, "recon_probe.json"), recon)
        d = _stage(os.path.join(out, "disentangle.json"), disent)
        rows[q] = {"mse": r["mse"], "perplexity": r["perplexity"], "codes_used": r["codes_used"],
                   "probe_accuracy": r["probe"]["accuracy"], "disentangle": d,
                   "sample_is_argmax": r.get("heldout_sample_is_argmax"),  # None for k-means types
                   "stage_minutes_this_run": (time.time() - t0) / 60}
        if not args.quiet:
            print(f"[compare] {PAPER_NAMES.get(q, q)}: mse={r['mse']:.4f} ppl={r['perplexity']:.1f} "
                  f"probe={r['probe']['accuracy']:.2f}% sil={d['clean']['silhouette']:.3f}")
    minutes = (time.time() - t_all) / 60
    table = results_table(rows, args, minutes)
    atomic_write_text(os.path.join(args.out, "results.md"), table)
    atomic_write_json(os.path.join(args.out, "results.json"), {"rows": rows, "minutes": minutes, "settings": settings(args)})
    print(table)
    return rows


def settings(args) -> dict:
    keys = ["dataset", "subset", "test_subset", "num_codes", "embedding_dim", "hidden", "steps", "probe_steps",
            "batch_size", "lr", "dis_steps", "dis_codes", "dis_dim", "dis_samples", "seed", "clip_radius", "clip_mode",
            "logit_scale", "temp"]
    return {k: getattr(args, k) for k in keys}


def _fmt(x, digits=3):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def orderings(rows: dict) -> list:
    """The paper's orderings, each with whether this run reproduces it."""
    checks = []

    def val(q, key):
        return rows[q][key] if q in rows else None

    def check(text, cond_keys, fn):
        if all(q in rows for q in cond_keys):
            checks.append((text, bool(fn())))

    check("perplexity HyperVQ > GumbelVQ > KmeansVQ (Table 4)", ["hypervq", "gumbel", "kmeans"],
          lambda: val("hypervq", "perplexity") > val("gumbel", "perplexity") > val("kmeans", "perplexity"))
    check("probe accuracy HyperVQ ≥ KmeansVQ > GumbelVQ (Table 3)", ["hypervq", "gumbel", "kmeans"],
          lambda: val("hypervq", "probe_accuracy") >= val("kmeans", "probe_accuracy") > val("gumbel", "probe_accuracy"))
    check("probe accuracy HyperEmbMatVQ > GumbelVQ (Table 7)", ["hyper_embmat", "gumbel"],
          lambda: val("hyper_embmat", "probe_accuracy") > val("gumbel", "probe_accuracy"))
    check("probe accuracy HyperVQ > HyperEmbMatVQ (Table 7)", ["hypervq", "hyper_embmat"],
          lambda: val("hypervq", "probe_accuracy") > val("hyper_embmat", "probe_accuracy"))
    check("probe accuracy KmeansVQ > HyperKmeansVQ (Table 7)", ["kmeans", "hyper_kmeans"],
          lambda: val("kmeans", "probe_accuracy") > val("hyper_kmeans", "probe_accuracy"))
    check("silhouette HyperVQ > KmeansVQ, clean and noisy (Table 5)", ["hypervq", "kmeans"],
          lambda: all(rows["hypervq"]["disentangle"][c]["silhouette"] > rows["kmeans"]["disentangle"][c]["silhouette"]
                      for c in ("clean", "noisy")))
    check("Davies–Bouldin HyperVQ < KmeansVQ, clean and noisy (Table 5)", ["hypervq", "kmeans"],
          lambda: all(rows["hypervq"]["disentangle"][c]["davies_bouldin"] < rows["kmeans"]["disentangle"][c]["davies_bouldin"]
                      for c in ("clean", "noisy")))
    return checks


def results_table(rows: dict, args, minutes: float) -> str:
    s = settings(args)
    lines = [
        f"Fashion-MNIST side-by-side: K={s['num_codes']}, D={s['embedding_dim']}, hidden={s['hidden']}, "
        f"{s['subset'] or 'all'} train / {s['test_subset'] or 'all'} test images, {s['steps']} VQ-VAE steps, "
        f"{s['probe_steps']} probe steps, batch {s['batch_size']}, seed {s['seed']}, Gumbel temperature {s['temp']}, "
        f"HyperVQ/HyperEmbMatVQ clip radius {s['clip_radius'] or 'off'} ({s['clip_mode']}), logit scale "
        f"{s['logit_scale']}; disentanglement: "
        f"D={s['dis_dim']}, K={s['dis_codes']}, {s['dis_steps']} steps, {s['dis_samples']} samples. "
        f"Wall time of this invocation: {minutes:.1f} min.",
        "",
        "| Method | MSE ↓ | Perplexity ↑ | Codes used | Sampled = argmax ↑ | Probe acc. (%) ↑ | Silhouette ↑ | DB ↓ "
        "| Silhouette (noisy) ↑ | DB (noisy) ↓ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for q, r in rows.items():
        d = r["disentangle"]
        lines.append(f"| {PAPER_NAMES.get(q, q)} | {_fmt(r['mse'], 4)} | {_fmt(r['perplexity'], 1)} | {r['codes_used']} | "
                     f"{'-' if r.get('sample_is_argmax') is None else _fmt(r['sample_is_argmax'])} | "
                     f"{_fmt(r['probe_accuracy'], 2)} | {_fmt(d['clean']['silhouette'])} | {_fmt(d['clean']['davies_bouldin'])} | "
                     f"{_fmt(d['noisy']['silhouette'])} | {_fmt(d['noisy']['davies_bouldin'])} |")
    lines += ["", "Paper orderings:"]
    lines += [f"- {text}: {'holds' if ok else 'does NOT hold'}" for text, ok in orderings(rows)]
    return "\n".join(lines) + "\n"
