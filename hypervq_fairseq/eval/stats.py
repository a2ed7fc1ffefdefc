"""Seeds to verdicts: mean with a 95% t-interval, the Welch interval of a difference, and the verdict.

Every comparison table of the project (speech and vision evidence) states each claim as
*better*, *worse* or *no difference detected* from the Welch t-interval of the difference of
means over seeds: a claim is decided only when the interval excludes zero.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple


def _var(values: Sequence[float]) -> float:
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def mean_ci(values: Sequence[float], level: float = 0.95) -> Tuple[float, float]:
    """Mean and half-width of the t-interval (NaN half-width for a single value)."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, stats.t.ppf(0.5 + level / 2, n - 1) * math.sqrt(_var(values) / n)


def difference_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Tuple[float, float]:
    """Welch t-interval of mean(a) - mean(b): (difference, half-width)."""
    from scipy import stats

    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va, vb = _var(a) / len(a), _var(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, 0.0
    dof = se ** 4 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return ma - mb, stats.t.ppf(0.5 + level / 2, dof) * se


def verdict(diff: float, half: float, better: str) -> str:
    """``better``/``worse`` when the interval excludes 0 (``better`` is "higher" or "lower")."""
    if not math.isfinite(half) or abs(diff) <= half:
        return "no difference detected"
    return "better" if (diff > 0) == (better == "higher") else "worse"


def standardized_difference(a: Sequence[float], b: Sequence[float], better: str) -> float:
    """(mean(a) - mean(b)) / pooled standard deviation, positive when ``a`` is better."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    pooled = math.sqrt(((len(a) - 1) * _var(a) + (len(b) - 1) * _var(b)) / (len(a) + len(b) - 2)) or 1e-12
    return (1 if better == "higher" else -1) * (ma - mb) / pooled
