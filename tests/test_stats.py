"""Verdicts from seeds: the intervals agree with scipy's own Welch test and one-sample interval."""
import math

import pytest
from scipy import stats as sps

from hypervq_fairseq.eval.stats import difference_ci, mean_ci, standardized_difference, verdict


def test_intervals_match_scipy():
    a, b = [2.21, 2.25, 2.19, 2.30, 2.24], [2.30, 2.28, 2.35, 2.31]
    mean, half = mean_ci(a)
    lo, hi = sps.t.interval(0.95, len(a) - 1, loc=sum(a) / len(a), scale=sps.sem(a))
    assert mean == pytest.approx((lo + hi) / 2) and half == pytest.approx((hi - lo) / 2)
    diff, half = difference_ci(a, b)
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff - half == pytest.approx(ci.low) and diff + half == pytest.approx(ci.high)
    assert math.isnan(mean_ci([1.0])[1])


def test_verdicts_need_the_interval_to_exclude_zero():
    assert verdict(-0.08, 0.05, "lower") == "better" and verdict(-0.08, 0.05, "higher") == "worse"
    assert verdict(0.08, 0.05, "higher") == "better" and verdict(0.03, 0.05, "higher") == "no difference detected"
    assert verdict(0.5, float("nan"), "higher") == "no difference detected"  # one seed decides nothing
    assert standardized_difference([1.0, 2.0], [2.0, 3.0], "lower") == pytest.approx(1 / math.sqrt(0.5))
