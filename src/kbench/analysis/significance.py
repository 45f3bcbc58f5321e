"""What "significant" means in kbench: one rule for ``kbench compare`` (run B against run A, row by row) and
``kbench history`` (each run against the one before it, along one cell's trend).

**The unit of replication is the worker process.** Samples inside one process are correlated; the process medians
are the independent observations. Timings are multiplicative, so everything is on the log scale.

Each run's measurement of a row is a :class:`Side`: its pooled median, its process medians and a *floor*, the 95%
CI of its median that the within-process uncertainty alone gives (compare: the order-statistics CI of the pooled
samples, :func:`kbench.core.stats.median_ci`; history, which reads no samples: the row's stored CI, the same
interval for one process and never narrower for more).

**Ratio and its 95% CI.** The point is ``median_B / median_A``; the CI is ``ratio · exp(± half)`` where ``half`` is
the wider of the *process interval* (half the 95% CI of the difference of the mean log process medians, from
:func:`scipy.stats.ttest_ind`: Welch when both runs have >= 2 processes, the pooled Student t when one has a single
process) and the *floor* (the two sides' log half-widths, each the wider of its two sides, in quadrature).

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
from kbench.core.stats import median_ci, scipy_stats, summarize

ALPHA = 0.05
LEVEL = 0.95
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
    floored: bool  # the floor, not the process interval, set the CI's width
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


def _t_test(a: Side, b: Side) -> tuple[float, float, str]:
    """(p-value, half-width of the log-ratio's 95% CI, test name) from the log process medians."""
    la, lb = np.log(a.process_medians), np.log(b.process_medians)
    welch = len(la) >= 2 and len(lb) >= 2
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = scipy_stats().ttest_ind(lb, la, equal_var=not welch)
        ci = res.confidence_interval(LEVEL)
    p = float(res.pvalue)
    if math.isnan(p):  # no spread on either side: the difference is exactly what it is
        p = 1.0 if float(np.mean(lb)) == float(np.mean(la)) else 0.0
    half = float(ci.high - ci.low) / 2
    return p, half if math.isfinite(half) else 0.0, "welch-t" if welch else "pooled-t"


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
        p, half_t, test = _t_test(a, b)
    elif pooled is not None:
        p, half_t, test = _mann_whitney(*pooled), 0.0, "mann-whitney"
    else:
        p, half_t, test = math.nan, 0.0, NO_TEST
    half = max(half_t, floor)
    c = Change(ratio, ratio * math.exp(-half), ratio * math.exp(half), p, test, floor > half_t, False, "same")
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
