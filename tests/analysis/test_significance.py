"""kbench.analysis.significance: the one meaning of "significant" (compare and history), on sides with known
answers. The sample-based tests of the same rule are in test_compare.py."""

import math

import numpy as np
import pytest
from scipy import stats

from kbench.analysis.significance import (NO_TEST, RANGE_LEVEL, Side, between, change, is_significant, judge,
                                          range_confidence)


def _side(median, medians=(), half=0.01):
    return Side(median, tuple(medians), 0, median * math.exp(-half), median * math.exp(half))


def test_the_rule_needs_both_a_small_p_and_a_ci_that_excludes_1():
    assert is_significant(0.01, 1.1, 1.3)
    assert not is_significant(0.01, 0.9, 1.3)  # the CI reaches 1
    assert not is_significant(0.2, 1.1, 1.3)  # the test does not reject
    assert is_significant(math.nan, 1.1, 1.3, tested=False)  # no test could run: the CI decides alone


def test_without_process_medians_or_samples_no_test_runs_and_the_floor_decides():
    c = between(_side(1.0, half=0.10), _side(math.exp(0.145), half=0.10))
    assert c.test == NO_TEST and math.isnan(c.p_value) and c.floored
    assert c.ci_low == pytest.approx(math.exp(0.145 - math.hypot(0.1, 0.1)))
    assert c.significant and c.verdict == "slower"


def test_process_medians_give_welch_t():
    a = _side(1.0, (0.99, 1.0, 1.01))
    b = _side(1.5, (1.49, 1.5, 1.51))
    c = between(a, b)
    assert c.test == "welch-t" and c.p_value < 1e-3 and c.verdict == "slower"
    assert between(_side(1.0, (1.0,)), b).test == "pooled-t"


def test_judge_adjusts_the_tested_changes_together_and_leaves_the_untested_to_their_ci():
    a = _side(1.0, (0.98, 1.0, 1.02))
    marginal = between(a, _side(1.06, (1.04, 1.06, 1.08)))  # p ~ 0.02 alone: slower
    assert marginal.p_value < 0.05 and marginal.verdict == "slower"
    untested = between(_side(1.0, half=0.01), _side(1.5, half=0.01))
    same = [between(a, _side(1.0, (0.98, 1.0, 1.02)))] * 5
    judged = judge([marginal, untested, *same])
    assert judged[0].p_adjusted == pytest.approx(min(1.0, 6 * marginal.p_value)) and judged[0].verdict == "same"
    assert judged[1].test == NO_TEST and judged[1].verdict == "slower"
    assert [j.verdict for j in judge([marginal])] == [marginal.verdict]  # a family of one: its own p


# -- the process interval: bounded by the range of the pairwise ratios (issue 22) ------------------------------------


def _procs(rng, log_medians, n=40, within=0.02):
    """Per-process samples (seconds): ``n`` lognormal samples around each process median (given as logs of µs)."""
    return [1e-6 * np.exp(m + rng.normal(0, within, n)) for m in log_medians]


def _medians(procs):
    return [float(np.median(p)) for p in procs]


def _draws(na, nb, log_ratio, sd, draws, seed):
    """``draws`` comparisons of B (``nb`` processes) against A (``na``), the log process medians normal with
    standard deviation ``sd`` between processes, B's shifted by ``log_ratio``."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        a = _procs(rng, 2.3 + rng.normal(0, sd, na))
        b = _procs(rng, 2.3 + log_ratio + rng.normal(0, sd, nb))
        yield change(a, b)


def test_the_range_of_the_pairwise_ratios_has_its_exact_mann_whitney_confidence():
    assert range_confidence(3, 3) == pytest.approx(0.90)  # 2 of the C(6, 3) = 20 arrangements fall outside
    assert range_confidence(3, 6) == pytest.approx(1 - 2 / 84)
    assert range_confidence(6, 6) == pytest.approx(1 - 2 / 924)
    assert range_confidence(2, 3) < RANGE_LEVEL <= range_confidence(3, 3) and range_confidence(0, 3) == 0


def test_a_busy_run_against_a_quiet_one_spans_no_more_than_its_process_medians_do():
    """A: one of three processes sat in a slow mode (10, 10.3, 21 µs); B, later, on a quiet machine. Welch's t
    interval alone spans ~8×; the CI stays within the ratios the processes showed (0.47 to 1.01)."""
    rng = np.random.default_rng(22)
    a = _procs(rng, np.log([10, 10.3, 21]), n=300, within=0.03)
    b = _procs(rng, np.log([10, 10.1, 9.9]), n=300, within=0.03)
    for c in (change(a, b), change(b, a)):
        assert c.ci_high / c.ci_low <= 4 and c.ci_low <= c.ratio <= c.ci_high and c.verdict == "same"
    c = change(a, b)
    assert 9.9 / 21 * 0.99 < c.ci_low < 0.5 and 1.0 < c.ci_high < 10.1 / 10 * 1.01
    welch = stats.ttest_ind(np.log(_medians(b)), np.log(_medians(a)), equal_var=False).confidence_interval()
    assert math.exp(welch.high - welch.low) > 7  # what the t interval alone said


def test_below_a_90_percent_range_the_t_interval_stands_alone_with_at_least_2_degrees_of_freedom():
    """Two processes against two: the range is a 67% interval, too weak to bound anything; one slow process drives
    Welch's degrees of freedom to ~1 (t = 12.7), the CI uses 2 (t = 4.30) with the same standard error."""
    a, b = _side(1.0, (1.0, 1.3)), _side(1.0, (1.0, 1.01))
    c = between(a, b)
    se = math.sqrt(np.var(np.log([1.0, 1.3]), ddof=1) / 2 + np.var(np.log([1.0, 1.01]), ddof=1) / 2)
    welch_df = stats.ttest_ind(np.log([1.0, 1.01]), np.log([1.0, 1.3]), equal_var=False).df
    assert c.test == "welch-t" and welch_df < 1.1
    assert math.log(c.ci_high / c.ci_low) == pytest.approx(2 * stats.t.ppf(0.975, 2) * se)
    assert c.ci_high / c.ci_low > 1.3 * 1.01  # wider than the range of the pairwise ratios


@pytest.mark.parametrize(("na", "nb", "low"), [(3, 3, 0.87), (3, 6, 0.92)])
def test_the_ci_covers_the_true_ratio_about_as_often_as_it_says(na, nb, low):
    """2000 draws, log process medians normal with sd 0.1 between processes, a true ratio of 1.1: at 3 against 3
    the range bounds the coverage at its exact 90%; with more processes it is ~95%."""
    hits = [c.ci_low <= 1.1 <= c.ci_high for c in _draws(na, nb, math.log(1.1), 0.1, 2000, seed=na * 10 + nb)]
    assert low <= np.mean(hits) <= 0.99


def test_an_aa_comparison_calls_a_single_row_significant_rarely():
    """3 against 3 processes, nothing changed, a family of one (Holm adjusts nothing): <= ~5% significant."""
    verdicts = [c.significant for c in _draws(3, 3, 0.0, 0.1, 2000, seed=5)]
    assert np.mean(verdicts) <= 0.06


def test_a_1_25x_slowdown_with_six_quiet_processes_a_side_is_called_slower():
    verdicts = [c.verdict for c in _draws(6, 6, math.log(1.25), 0.03, 200, seed=6)]
    assert verdicts.count("slower") >= 0.95 * len(verdicts)
