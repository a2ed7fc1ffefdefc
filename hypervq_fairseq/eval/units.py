"""How well codes follow phones, from a phone × code count table: PNMI, purities, entropy, bitrate.

Definitions as in HuBERT's teacher-quality measurement (Hsu et al. 2021, section IV-B; fairseq's
``examples/hubert/measure_teacher_quality.py``), with ``p(y, z)`` the joint distribution of the
phone ``y`` of a frame and its code ``z`` over all labelled frames:

- **PNMI**, phone-normalized mutual information: ``I(y; z) / H(y)``, the fraction of the
  uncertainty about the phone that the code removes (0: independent, 1: the code determines
  the phone);
- **phone purity**: ``Σ_z max_y p(y, z)``, the accuracy of labelling every frame of a code
  with that code's most frequent phone (high when each code is mostly one phone; it rewards
  many small codes);
- **cluster purity**: ``Σ_y max_z p(y, z)``, the same with roles swapped (high when each phone
  is mostly one code; it rewards few codes).

Over all frames of the evaluated audio, whatever their label:

- **codes used**: distinct codes that occur;
- **entropy** ``H(z)`` in bits per frame of the empirical code distribution;
- **bitrate**: ``H(z) × frames per second`` of audio, the rate of an ideal entropy coder of the
  frame-level code stream (no merging of repeated codes).

PNMI rises with the number of codes, even for codes with no signal (codes shuffled across
frames score above 0 on any finite set, and more so the more codes there are). Two figures make
a comparison of systems that use different numbers of codes fair:

- **PNMI above the floor**: PNMI minus that of the same codes shuffled across frames (the floor);
- **PNMI at matched K**: PNMI after :func:`merge_to_k` has reduced each system to the same ``K``
  codes, without looking at a label: the ``K − 1`` most frequent codes are kept and the rest
  merged into one.

Logarithms are base 2 (PNMI is a ratio, so the base cancels). Zero cells are left out of the
sums (``0 log 0 = 0``) instead of adding an epsilon, so a table with one phone and one code
gives exactly ``I = 0``.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np


def contingency(phones: Sequence[int], codes: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count table ``(n_phones, n_codes)`` of integer labels, with the phone and code values of its rows/columns."""
    phones, codes = np.asarray(phones), np.asarray(codes)
    if phones.shape != codes.shape:
        raise ValueError(f"{phones.shape[0]} phone labels but {codes.shape[0]} codes")
    phone_values, p_idx = np.unique(phones, return_inverse=True)
    code_values, c_idx = np.unique(codes, return_inverse=True)
    table = np.zeros((len(phone_values), len(code_values)), dtype=np.int64)
    np.add.at(table, (p_idx, c_idx), 1)
    return table, phone_values, code_values


def entropy_bits(counts: np.ndarray) -> float:
    """Entropy in bits of the distribution ``counts / counts.sum()``."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def phone_code_scores(table: np.ndarray) -> Dict[str, float]:
    """PNMI, mutual information, H(phone), H(code) (bits) and both purities of a count table (phones × codes)."""
    table = np.asarray(table, dtype=np.float64)
    total = table.sum()
    if total <= 0:
        raise ValueError("empty phone × code table: no labelled frames")
    p = table / total
    p_phone, p_code = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    outer = np.outer(p_phone, p_code)
    mi = float((p[nz] * np.log2(p[nz] / outer[nz])).sum())
    h_phone, h_code = entropy_bits(p_phone), entropy_bits(p_code)
    return {
        "pnmi": mi / h_phone if h_phone > 0 else 0.0,
        "mutual_information_bits": mi,
        "phone_entropy_bits": h_phone,
        "code_entropy_bits": h_code,
        "phone_purity": float(p.max(axis=0).sum()),
        "cluster_purity": float(p.max(axis=1).sum()),
    }


def merge_to_k(codes: np.ndarray, k: int) -> np.ndarray:
    """``codes`` with at most ``k`` distinct values: the ``k − 1`` most frequent kept, all others one code.

    Label-free, so it can be applied to any system (quantizer, k-means, shuffled). Ties in frequency
    go to the smaller code value, so the result is deterministic. Codes already at most ``k`` are
    returned unchanged. The merged code is ``-1`` (never a real id here: ids are ``>= 0``).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    codes = np.asarray(codes)
    values, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    if len(values) <= k:
        return codes
    order = np.lexsort((values, -counts))          # most frequent first, then by value
    keep = np.zeros(len(values), dtype=bool)
    keep[order[: k - 1]] = True
    return np.where(keep[inverse], codes, -1)


def stream_scores(codes: np.ndarray, frame_rate: float) -> Dict[str, float]:
    """Codes used, entropy (bits per frame) and bitrate (bits per second) of a code stream."""
    _, counts = np.unique(np.asarray(codes), return_counts=True)
    h = entropy_bits(counts)
    return {"codes_used": int(len(counts)), "entropy_bits": h, "bitrate_bps": h * frame_rate}
