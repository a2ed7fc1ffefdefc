"""Robustness metrics of Hendrycks & Dietterich (ICLR 2019), as used in the paper's Table 6.

For a classifier ``f``, corruption ``c`` and severity ``s``, ``E^f_{s,c}`` is the top-1 error
on the images corrupted by ``c`` at severity ``s``. With a reference model's errors
``E^ref_{s,c}`` (AlexNet in ImageNet-C; here any model the user names):

    CE^f_c = Σ_s E^f_{s,c} / Σ_s E^ref_{s,c},       mCE = mean over c of CE^f_c

reported in percent. Known / unknown accuracy is the mean accuracy over the corruption
types of the set and all their severities. Errors are kept as ``{corruption: {severity: error}}``
with errors in [0, 1], the form written to ``errors.json`` by the trainer.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional

from ...errors import InputError

Errors = Mapping[str, Mapping[int, float]]


def _severities(errors: Errors, c: str):
    if c not in errors:
        raise InputError(f"no errors recorded for corruption {c!r} (have {sorted(errors)}): evaluate both models "
                         "on the same corruptions")
    return {int(s): float(e) for s, e in errors[c].items()}


def corruption_error(errors: Errors, reference: Errors, corruption: str) -> float:
    """``CE_c = Σ_s E^f_{s,c} / Σ_s E^ref_{s,c}`` over the severities both models were evaluated on."""
    mine, ref = _severities(errors, corruption), _severities(reference, corruption)
    if set(mine) != set(ref):
        raise InputError(f"{corruption}: severities differ between model {sorted(mine)} and reference {sorted(ref)}")
    denom = sum(ref.values())
    if denom <= 0:
        raise InputError(f"{corruption}: the reference model makes no errors, so CE is undefined")
    return sum(mine.values()) / denom


def mean_corruption_error(errors: Errors, reference: Errors, corruptions: Optional[Iterable[str]] = None) -> float:
    """mCE in percent: ``100 · mean_c CE_c`` over ``corruptions`` (default: those of the reference)."""
    names = list(corruptions) if corruptions is not None else sorted(reference)
    if not names:
        raise InputError("mCE needs at least one corruption")
    return 100.0 * sum(corruption_error(errors, reference, c) for c in names) / len(names)


def mean_accuracy(errors: Errors, corruptions: Iterable[str]) -> float:
    """Mean top-1 accuracy in percent over the given corruptions and all their severities."""
    accs = [1.0 - e for c in corruptions for e in _severities(errors, c).values()]
    if not accs:
        raise InputError("mean_accuracy needs at least one corruption")
    return 100.0 * sum(accs) / len(accs)


def summary(clean_error: float, errors: Errors, known: Iterable[str], unknown: Iterable[str],
            reference: Optional[Errors] = None) -> Dict[str, Optional[float]]:
    """Table 6's columns: clean, known and unknown accuracy, and mCE (over the known set) when a reference is given."""
    known, unknown = list(known), list(unknown)
    return {
        "clean": 100.0 * (1.0 - clean_error),
        "known": mean_accuracy(errors, known),
        "unknown": mean_accuracy(errors, unknown),
        "mCE": mean_corruption_error(errors, reference, known) if reference is not None else None,
    }
