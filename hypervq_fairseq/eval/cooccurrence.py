"""The phone × code picture: ``p(phone | code)`` for the most used codes, ordered so structure shows.

Rows are phones in phonetic order (vowels, glides, nasals, stops, affricates, fricatives);
columns are codes, each sorted under the phone it is most often, and within that phone by how
sure it is. Codes that follow phones then form a staircase from top left to bottom right;
codes that ignore phones form flat columns. HuBERT's paper draws its cluster-phone figure the
same way. Only the ``max_codes`` most frequent codes are drawn (the title says how many of
how many, and which share of the frames they hold).
"""
from __future__ import annotations

import io

import numpy as np

from ..data.alignment.phones import phone_order


def code_order(table: np.ndarray, phone_rank: np.ndarray) -> np.ndarray:
    """Column order: by the rank of each code's most frequent phone, then by that phone's share, descending."""
    column_totals = table.sum(axis=0)
    share = table / np.maximum(column_totals, 1)
    top = share.argmax(axis=0)
    return np.lexsort((-share.max(axis=0), phone_rank[top]))


def cooccurrence_png(table: np.ndarray, phones, *, title: str, max_codes: int = 200) -> bytes:
    """PNG bytes of ``p(phone | code)`` for a count table ``(phones, codes)`` whose rows are labelled ``phones``."""
    import logging

    # importing fairseq's models runs logging.basicConfig(level=DEBUG) (wav2vec2_classification.py):
    # keep matplotlib's and PIL's import, font and file debugging out of the user's terminal
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phones = list(phones)
    order = [phones.index(p) for p in phone_order(phones)]
    table = np.asarray(table, dtype=np.float64)[order]
    phones = [phones[i] for i in order]
    counts = table.sum(axis=0)
    kept = np.argsort(-counts, kind="stable")[:max_codes]
    shown = table[:, kept]
    shown = shown[:, code_order(shown, np.arange(len(phones)))]
    cond = shown / np.maximum(shown.sum(axis=0, keepdims=True), 1)

    fig, ax = plt.subplots(figsize=(min(16.0, 3 + 0.06 * shown.shape[1]), 0.18 * len(phones) + 1.6))
    ax.imshow(cond, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(phones)))
    ax.set_yticklabels(phones, fontsize=6)
    ax.set_xlabel(f"codes, ordered by their most frequent phone ({shown.shape[1]} most used of {table.shape[1]}, "
                  f"{counts[kept].sum() / max(counts.sum(), 1):.0%} of the frames)")
    ax.set_ylabel("phone")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
