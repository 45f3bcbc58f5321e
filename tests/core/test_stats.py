"""Unit tests for kbench.core.stats: known answers computed here from the formulas, the N = 1 fallback, the floor,
monotonicity, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from kbench.core.errors import KbenchError
from kbench.core.stats import RatioSummary, StatsError, Summary, ratio, repeat_interval, summarize, t_interval
from kbench.core.stats import median_ci
from kbench.measure.timer import Measurement


def _spread(median: float, n: int = 41, rel: float = 1e-4) -> list[float]:
    """n samples symmetric around ``median`` (odd n: the median is one of them), very tight."""
    return [median * (1 + rel * (k - n // 2) / n) for k in range(n)]


def _expected_t(centre: float, values: list[float]) -> tuple[float, float]:
    logs = np.log(values)
    n = len(values)
    half = sps.t.ppf(0.975, n - 1) * np.std(logs, ddof=1) / math.sqrt(n)
    return centre * math.exp(-half), centre * math.exp(half)


# -- N >= 2: t over the process medians ----------------------------------------------------------------------------
@pytest.mark.parametrize("medians", [[1.0, 1.1, 0.95], [2e-6, 2.2e-6], [5e-3, 5.5e-3, 4.8e-3, 5.1e-3, 6e-3]])
def test_t_interval_over_process_medians_known_answer(medians):
    procs = [_spread(m) for m in medians]
    s = summarize(procs)
    pooled = float(np.median(np.concatenate(procs)))
    lo, hi = _expected_t(pooled, medians)
    assert s.n_processes == len(medians) and s.method == "process-t"
    assert s.median == pytest.approx(pooled, rel=1e-12)
    assert s.process_medians == pytest.approx(tuple(medians), rel=1e-12)
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi), rel=1e-9)
    assert s.ci_low < s.median < s.ci_high


def test_two_processes_use_one_degree_of_freedom():
    s = summarize([_spread(1.0), _spread(2.0)])
    half = math.log(s.ci_high / s.median)
    assert half == pytest.approx(sps.t.ppf(0.975, 1) * math.log(2.0) / math.sqrt(2) / math.sqrt(2), rel=1e-6)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9, 30, 200])
@pytest.mark.parametrize("p", [0.975, 0.995, 0.9])
def test_t_quantile_is_scipy_stats_t_ppf(df, p):
    from kbench.core.stats import t_quantile

    assert t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-10)


def test_t_interval_function_matches_formula():
    assert t_interval(3.0, [1.0, 2.0, 4.0]) == pytest.approx(_expected_t(3.0, [1.0, 2.0, 4.0]), rel=1e-12)


# -- N = 1: order statistics ---------------------------------------------------------------------------------------
def test_single_process_falls_back_to_the_order_statistics_ci():
    samples = list(np.random.default_rng(5).lognormal(-9, 0.1, size=57))
    s = summarize([samples])
    m = Measurement(tuple(samples), loops=1)
    assert s.method == "order-statistics" and s.n_processes == 1
    assert s.median == m.median
    assert (s.ci_low, s.ci_high) == median_ci(tuple(sorted(samples))) == m.ci


# -- the floor -----------------------------------------------------------------------------------------------------
def test_processes_that_agree_exactly_get_the_pooled_within_process_ci_not_zero_width():
    rng = np.random.default_rng(1)
    base = list(rng.lognormal(-9, 0.05, size=30))
    s = summarize([base, base, base])  # identical process medians: the t interval has zero width
    pooled = tuple(sorted(base * 3))
    assert s.method == "process-t+floor"
    assert (s.ci_low, s.ci_high) == median_ci(pooled)
    assert s.ci_low < s.median < s.ci_high


def test_processes_far_apart_are_not_floored():
    # processes far apart: the t interval is wider than the pooled CI on both sides
    s = summarize([_spread(1.0, rel=0.2), _spread(1.5, rel=0.2), _spread(0.8, rel=0.2)])
    assert s.method == "process-t"


# -- monotonicity --------------------------------------------------------------------------------------------------
def test_more_spread_between_processes_gives_a_wider_ci():
    widths = []
    for d in (0.0, 0.01, 0.05, 0.2, 0.5):
        s = summarize([_spread(1.0 - d, rel=0.01), _spread(1.0, rel=0.01), _spread(1.0 + d, rel=0.01)])
        widths.append(math.log(s.ci_high / s.ci_low))
    assert all(b >= a for a, b in zip(widths, widths[1:]))
    assert widths[-1] > 10 * widths[0]


# -- repeat interval -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("procs", [[_spread(1.0, rel=0.05)], [_spread(1.0), _spread(1.2), _spread(0.9)]])
def test_repeat_interval_is_the_ci_stretched_by_sqrt2_on_the_log_scale(procs):
    s = summarize(procs)
    assert math.log(s.median / s.repeat_low) == pytest.approx(math.sqrt(2) * math.log(s.median / s.ci_low), rel=1e-9)
    assert math.log(s.repeat_high / s.median) == pytest.approx(math.sqrt(2) * math.log(s.ci_high / s.median), rel=1e-9)
    assert s.repeat_low < s.ci_low and s.repeat_high > s.ci_high


def test_repeat_interval_known_answer():
    lo, hi = repeat_interval(1.0, math.exp(-0.1), math.exp(0.2))
    assert (lo, hi) == pytest.approx((math.exp(-0.1 * math.sqrt(2)), math.exp(0.2 * math.sqrt(2))), rel=1e-12)


# -- ratio ---------------------------------------------------------------------------------------------------------
def test_ratio_single_process_uses_opposite_ci_bounds_known_answer():
    path = [float(x) for x in range(1, 12)]  # n=11: CI ranks 2 and 10 -> (2, 10), median 6
    base = [float(x) for x in range(11, 22)]  # CI (12, 20), median 16
    r = ratio([path], [base])
    assert r.method == "order-statistics"
    assert r.ratio == 6 / 16
    assert (r.ci_low, r.ci_high) == (2 / 20, 10 / 12)  # same-side bounds would give (2/12, 10/20)
    assert r.ci_low < r.ratio < r.ci_high


def test_ratio_uses_paired_per_process_ratios():
    # process effects common to both (x1, x1.5, x0.8) cancel in the paired ratios: only the floor remains
    factors = (1.0, 1.5, 0.8)
    path = [_spread(2e-3 * f) for f in factors]
    base = [_spread(1e-3 * f) for f in factors]
    r = ratio(path, base)
    assert r.process_ratios == pytest.approx((2.0, 2.0, 2.0), rel=1e-12)
    assert r.method == "process-t+floor"
    assert r.ci_high / r.ci_low < 1.01  # the unpaired spread (x1.9 between processes) would be far wider
    assert r.ci_low <= 2.0 <= r.ci_high


def test_ratio_t_interval_known_answer():
    pr, br = [2.0, 2.4, 1.8], [1.0, 1.0, 1.0]
    r = ratio([_spread(m) for m in pr], [_spread(m) for m in br])
    centre = float(np.median(np.concatenate([_spread(m) for m in pr]))) / 1.0
    assert r.ratio == pytest.approx(centre, rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx(_expected_t(centre, [2.0, 2.4, 1.8]), rel=1e-9)
    assert r.method == "process-t"


def test_ratio_needs_the_same_processes():
    with pytest.raises(StatsError, match="same processes"):
        ratio([[1.0], [1.0]], [[1.0]])


# -- errors --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [[], [[]], [[1.0], []], [[1.0, 0.0]], [[1.0, -1.0]], [[math.nan]], [[math.inf]]])
def test_bad_input_raises_a_typed_error(bad):
    with pytest.raises(StatsError) as info:
        summarize(bad)
    assert isinstance(info.value, KbenchError)


# -- properties ----------------------------------------------------------------------------------------------------
times = st.floats(min_value=1e-9, max_value=1.0, allow_nan=False, allow_infinity=False)
processes = st.lists(st.lists(times, min_size=1, max_size=40), min_size=1, max_size=6)


@given(processes)
@settings(max_examples=200, deadline=None)
def test_ci_and_repeat_interval_contain_the_median(procs):
    s = summarize(procs)
    assert isinstance(s, Summary) and s.n_processes == len(procs)
    assert s.repeat_low <= s.ci_low * (1 + 1e-12) and s.ci_low <= s.median * (1 + 1e-12)
    assert s.median <= s.ci_high * (1 + 1e-12) and s.ci_high <= s.repeat_high * (1 + 1e-12)


@given(processes)
@settings(max_examples=200, deadline=None)
def test_identical_sample_sets_give_ratio_one_inside_its_ci(procs):
    r = ratio(procs, [list(p) for p in procs])
    assert isinstance(r, RatioSummary)
    assert r.ratio == 1.0
    assert all(x == 1.0 for x in r.process_ratios)
    assert r.ci_low <= 1.0 <= r.ci_high
