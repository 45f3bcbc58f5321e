"""kbench.analysis.significance: the one meaning of "significant" (compare and history), on sides with known
answers. The sample-based tests of the same rule are in test_compare.py."""

import math

import pytest

from kbench.analysis.significance import NO_TEST, Side, between, is_significant, judge


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
