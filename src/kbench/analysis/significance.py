"""What "significant" means in kbench: one rule for ``kbench compare`` (run B against run A, row by row) and
``kbench history`` (each run against the one before it, along one cell's trend).

**The unit of replication is the worker process.** Samples inside one process are correlated; the process medians
are the independent observations. Timings are multiplicative, so everything is on the log scale.

Each run's measurement of a row is a :class:`Side`: its pooled median, its process medians and a *floor*, the 95%
CI of its median that the within-process uncertainty alone gives (compare: the order-statistics CI of the pooled
samples, :func:`kbench.core.stats.median_ci`; history, which reads no samples: the row's stored CI, the same
interval for one process and never narrower for more).

**Ratio and its 95% CI.** The point is ``median_B / median_A``. The CI is, bound by bound, the wider of the
*process interval* and the *floor* (``ratio · exp(± f)``, ``f`` the two sides' log half-widths, each the wider of
its two sides, in quadrature). The process interval is the *t interval* bounded by the *range*, stretched to hold
the point:

- the t interval: the 95% CI of the difference of the mean log process medians, from :func:`scipy.stats.ttest_ind`
  (Welch when both runs have >= 2 processes, the pooled Student t when one has a single process), exponentiated,
  with never fewer than 2 degrees of freedom (:data:`MIN_DF`; the same standard error);
- the range: the ``n_a · n_b`` ratios ``m_B,j / m_A,i`` of a process median of B to one of A, from the smallest to
  the largest. Under the location-shift model (the log process medians of both runs drawn from one distribution,
  B's shifted by the log ratio) it covers the true ratio with the exact probability ``1 - 2 / C(n_a + n_b, n_a)``
  (the Mann-Whitney U of the shifted-back medians is 0 or ``n_a · n_b``): 90% for 3 against 3 processes, 94% for 3
  against 4, 98% for 3 against 6, 99.8% for 6 against 6 (:func:`range_confidence`). It bounds the t interval where
  it is at least a 90% interval itself (:data:`RANGE_LEVEL`): not with one or two processes on a side unless the
  other has many (2 against 5: 90.5%).

Why: one slow process dominates the standard deviation of a few process medians, and Welch's degrees of freedom then
fall to their least, ``min(n_a, n_b) - 1``. A run on a busy machine (A's process medians 10, 10.3 and 21 µs) against
a quiet one (10, 10.1, 9.9) gave a t interval 8× wide (t = 4.30 at 2 degrees of freedom), [0.27–2.19], far beyond
anything a process of B showed against a process of A (0.47 to 1.01); with two processes on a side the degrees of
freedom fall to 1 (t = 12.7, a Cauchy tail) and the interval spans hundreds of times or more. Other degrees of
freedom do not cure it at 3 against 3: Welch's cannot go below 2 there already, and Student's ``n_a + n_b - 2``
assumes equal spreads (3 against 6 with the slow process on the smaller side: under 90% coverage) and grows with the
slow process all the same. The range claims no ratio that no pair of processes showed, so the interval spans at most
the spread of A's process medians times that of B's; where the t interval is the narrower (more processes, no slow
mode) it stays the t interval. The cost is at 3 against 3, where no distribution-free interval from 3 + 3 values
reaches 95%: with normal log process medians the CI covers the true ratio in ~89-90% of runs (the t interval alone
~96%); at 3 against 6 or 6 against 6 ~95% (``tests/analysis/test_significance.py`` measures it). Below a 90% range
(2 against 2, 2 against 3) only :data:`MIN_DF` holds the t interval in: t <= 4.30 costs some coverage when one
side's spread dominates (~87% instead of 92-94% with normal medians, one side's spread ten times the other's) and
cuts the interval from ~60× to ~4× wide. The verdict's false-alarm control is the p-value (Welch's own degrees of
freedom) with Holm's adjustment (below), which neither touches: a row is significant only when its adjusted p is
below 0.05, whatever its CI.

**The test.** The same t-test's p-value; with one process on each side, Mann-Whitney on the pooled samples where
they are at hand (compare); where they are not (history), no test runs and the CI decides alone.

**Significant** (:func:`judge`): the Holm-adjusted p-value < 0.05 **and** the CI excludes 1. The family Holm
adjusts over is every row compared between the same two runs (compare: every timed row, so the chance that *any*
row of an A/A comparison is called significant stays under 5%; a history step compares one cell between two runs,
a family of one, so its adjusted p is its own). A change without a test is significant when its CI excludes 1.
The CI is never narrower than the floor, so where the floor alone reaches 1 nothing is significant and no test
needs to run (:func:`floor_excludes_1`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from kbench.core.fmt import missing
from kbench.core.stats import median_ci, scipy_stats, summarize, t_quantile

ALPHA = 0.05
LEVEL = 0.95
MIN_DF = 2  # the t interval's least degrees of freedom: Welch's for 3 processes against 3
RANGE_LEVEL = 0.90  # the range of the pairwise ratios bounds the t interval where it is at least this confident
NO_TEST = "none"  # Change.test when no test could run (one process each side, no samples)


@dataclass(frozen=True)
class Side:
    """One run's measurement of one row."""

    median: float  # of every sample of every process, pooled
    process_medians: tuple[float, ...]
    n_samples: int
    floor_low: float  # 95% CI of the pooled median from the within-process uncertainty
    floor_high: float


@dataclass(frozen=True)
class Change:
    """B relative to A for one row: ``ratio`` = median_B / median_A with its 95% CI, the test's p-value."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float  # the row's own test (NaN when no test ran)
    test: str  # "welch-t", "pooled-t", "mann-whitney" or "none"
    floored: bool  # the floor, not the process interval, set a bound of the CI
    significant: bool
    verdict: str  # "slower", "faster" or "same"
    p_adjusted: float = math.nan  # Holm-adjusted over the rows compared between the same runs (the verdict uses it)


def side(per_process: Sequence[Sequence[float]]) -> Side:
    """A run's side from its per-process samples; the floor is the order-statistics CI of the pooled median."""
    s = summarize(per_process)
    lo, hi = median_ci(tuple(sorted(x for p in per_process for x in p)))
    return Side(s.median, s.process_medians, sum(len(p) for p in per_process), lo, hi)


def _log_half(s: Side) -> float:
    return max(math.log(s.median / s.floor_low), math.log(s.floor_high / s.median))


def _t_test(a: Side, b: Side) -> tuple[float, float, float, str]:
    """(p-value, the 95% CI of the difference of the mean log process medians as (low, high), test name); the CI's
    degrees of freedom never below :data:`MIN_DF`."""
    la, lb = np.log(a.process_medians), np.log(b.process_medians)
    welch = len(la) >= 2 and len(lb) >= 2
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = scipy_stats().ttest_ind(lb, la, equal_var=not welch)
        ci = res.confidence_interval(LEVEL)
    p, diff = float(res.pvalue), float(np.mean(lb)) - float(np.mean(la))
    if math.isnan(p):  # no spread on either side: the difference is exactly what it is
        p = 1.0 if diff == 0 else 0.0
    half, df = (float(ci.high) - float(ci.low)) / 2, float(res.df)
    if not math.isfinite(half):
        half = 0.0
    elif df < MIN_DF:  # the same standard error, a t quantile of MIN_DF degrees of freedom
        half *= t_quantile((1 + LEVEL) / 2, MIN_DF) / t_quantile((1 + LEVEL) / 2, df)
    return p, diff - half, diff + half, "welch-t" if welch else "pooled-t"


def range_confidence(n_a: int, n_b: int) -> float:
    """The exact coverage of the range of the ``n_a · n_b`` pairwise ratios under the location-shift model:
    ``1 - 2 / C(n_a + n_b, n_a)`` (module docstring); 0 when a side has no process."""
    return 1 - 2 / math.comb(n_a + n_b, n_a) if n_a and n_b else 0.0


def pairwise_range(a: Side, b: Side) -> tuple[float, float]:
    """(smallest, largest) log ratio of a process median of B to one of A."""
    d = np.subtract.outer(np.log(b.process_medians), np.log(a.process_medians))
    return float(d.min()), float(d.max())


def process_interval(a: Side, b: Side, t_low: float, t_high: float) -> tuple[float, float]:
    """The process interval as log offsets from the point, (low <= 0, high >= 0): the t interval (``t_low``,
    ``t_high``: log ratios), bounded by the range of the pairwise ratios where that range is at least a
    :data:`RANGE_LEVEL` interval, stretched to hold the point."""
    low, high = t_low, t_high
    if range_confidence(len(a.process_medians), len(b.process_medians)) >= RANGE_LEVEL:
        r_low, r_high = pairwise_range(a, b)  # holds the mean difference, as the t interval does
        low, high = max(low, r_low), min(high, r_high)
    centre = math.log(b.median / a.median)
    return min(low - centre, 0.0), max(high - centre, 0.0)


def _mann_whitney(a_samples: Sequence[float], b_samples: Sequence[float]) -> float:
    return float(scipy_stats().mannwhitneyu(b_samples, a_samples, alternative="two-sided").pvalue)


def floor_excludes_1(a: Side, b: Side) -> bool:
    """Whether the floor alone keeps the ratio's CI off 1 (without it, B against A cannot be significant)."""
    return abs(math.log(b.median / a.median)) > math.hypot(_log_half(a), _log_half(b))


def between(a: Side, b: Side, pooled: tuple[Sequence[float], Sequence[float]] | None = None,
            alpha: float = ALPHA) -> Change:  # fmt: skip
    """B against A (module docstring), judged on its own p-value; ``pooled``: each side's samples, for the
    Mann-Whitney test when each side has one process."""
    ratio = b.median / a.median
    floor = math.hypot(_log_half(a), _log_half(b))
    if len(a.process_medians) + len(b.process_medians) >= 3 and a.process_medians and b.process_medians:
        p, t_low, t_high, test = _t_test(a, b)
        low, high = process_interval(a, b, t_low, t_high)
    elif pooled is not None:
        p, low, high, test = _mann_whitney(*pooled), 0.0, 0.0, "mann-whitney"
    else:
        p, low, high, test = math.nan, 0.0, 0.0, NO_TEST
    floored = floor > -low or floor > high
    c = Change(ratio, ratio * math.exp(min(low, -floor)), ratio * math.exp(max(high, floor)), p, test, floored,
               False, "same")  # fmt: skip
    return judged(c, p, alpha)


def change(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], alpha: float = ALPHA) -> Change:
    """B against A from each run's per-process samples, judged on its own p-value."""
    return between(side(a), side(b), (a[0], b[0]), alpha)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (a missing p counts as 1): the family-wise error rate over all
    tests stays at most alpha, which is what "did *any* row get slower?" needs."""
    p = [1.0 if missing(v) else float(v) for v in p_values]
    adjusted, running = [1.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(len(p)), key=p.__getitem__)):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def is_significant(p_adjusted: float, ci_low: float, ci_high: float, alpha: float = ALPHA,
                   tested: bool = True) -> bool:  # fmt: skip
    """The one rule: the adjusted p-value is below ``alpha`` (unless no test ran) and the CI excludes 1."""
    return (not tested or p_adjusted < alpha) and (ci_low > 1 or ci_high < 1)


def judged(c: Change, p_adjusted: float, alpha: float = ALPHA) -> Change:
    """``c`` with its verdict from ``p_adjusted`` (:func:`is_significant`)."""
    significant = is_significant(p_adjusted, c.ci_low, c.ci_high, alpha, tested=c.test != NO_TEST)
    verdict = ("slower" if c.ratio > 1 else "faster") if significant else "same"
    return replace(c, significant=significant, verdict=verdict, p_adjusted=p_adjusted)


def judge(changes: Sequence[Change], alpha: float = ALPHA) -> list[Change]:
    """Every change judged together: Holm over those that had a test, then :func:`judged`."""
    tested = [i for i, c in enumerate(changes) if c.test != NO_TEST]
    adjusted = dict(zip(tested, holm([changes[i].p_value for i in tested])))
    return [judged(c, adjusted.get(i, math.nan), alpha) for i, c in enumerate(changes)]
