"""Statistics over samples from several worker processes: the median, its 95% CI, a repeat interval, and ratios.

One worker process's samples describe a few seconds of one process: its CI leaves out what changes *between*
processes (memory layout, thread placement, the machine's state), which is why two back-to-back runs agreed within
their single-process CIs in only 39% of rows. With N processes per backend the uncertainty is estimated from the
spread of the per-process medians.

**N = 1** (``method="order-statistics"``): the distribution-free 95% CI of the median from order statistics
(:func:`median_ci`). For a ratio, today's bounds: ``(path.ci_low / base.ci_high, path.ci_high /
base.ci_low)``, the extreme combinations of the two CIs.

**N >= 2** (``method="process-t"``): timings are multiplicative, so work on the log scale. With ``x_i`` the log of
process i's median and ``s`` their standard deviation (N-1 degrees of freedom), the interval is

    exp(log(pooled median) ± t(0.975, N-1) · s / sqrt(N))

(Student t: ``s`` is itself estimated from N values). For a ratio ``x_i`` is the log of process i's *paired*
ratio (path and baseline measured in the same process, so effects common to both cancel) and the centre is the
ratio of the pooled medians. **Floor**: N processes can agree by chance (``s`` = 0); the interval is then
never narrower than the within-process one, the N = 1 interval computed on all samples pooled. Each bound is
the wider of the two (``method="process-t+floor"`` when the floor decided a bound).

**Repeat interval** (``repeat_low``, ``repeat_high``): where another run's median (or ratio), measured the same way,
is expected to land, 95%. The CI is ``estimate ± k·se``; another run's estimate has the same ``se`` and is
independent of this one, so the difference of the two has standard error ``sqrt(2)·se`` and the prediction interval
is ``estimate ± sqrt(2)·k·se``. On the log scale, each side is the CI's side stretched by ``sqrt(2)``:
``repeat_low = median · (ci_low / median) ** sqrt(2)`` (likewise ``repeat_high``). Use it to judge a rerun; use the
CI to judge what the true median is.

Everything is deterministic (no resampling) and pure: sequences in, frozen dataclasses out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kbench.core.errors import KbenchError

LEVEL = 0.95
SQRT2 = math.sqrt(2.0)


def median_ci(sorted_samples: tuple[float, ...], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics (normal approx. to the binomial).

    For n samples the bounds are the order statistics at ranks ``floor(n/2 - z*sqrt(n)/2)`` and
    ``ceil(1 + n/2 + z*sqrt(n)/2)`` (1-based, clipped to [1, n]). Small n gives the whole range, as it should.
    """
    n = len(sorted_samples)
    if n == 0:
        return (math.nan, math.nan)
    half = z * math.sqrt(n) / 2
    lo = min(max(math.floor(n / 2 - half), 1), n)
    hi = min(max(math.ceil(1 + n / 2 + half), 1), n)
    return (sorted_samples[lo - 1], sorted_samples[hi - 1])


def quantile(sorted_samples: tuple[float, ...], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default method)."""
    n = len(sorted_samples)
    if n == 0:
        return math.nan
    pos = q * (n - 1)
    i = math.floor(pos)
    j = min(i + 1, n - 1)
    return sorted_samples[i] + (sorted_samples[j] - sorted_samples[i]) * (pos - i)


class StatsError(KbenchError):
    """Samples that statistics cannot be computed from (no process, an empty process, a time that is not > 0)."""


@dataclass(frozen=True)
class Summary:
    median: float  # of every sample of every process, pooled
    ci_low: float  # 95% CI of the median
    ci_high: float
    repeat_low: float  # 95% interval for another run's median
    repeat_high: float
    process_medians: tuple[float, ...]
    n_processes: int
    method: str  # "order-statistics" (N = 1), "process-t", or "process-t+floor"


@dataclass(frozen=True)
class RatioSummary:
    ratio: float  # pooled median of the path / pooled median of the baseline
    ci_low: float
    ci_high: float
    repeat_low: float
    repeat_high: float
    process_ratios: tuple[float, ...]  # per process: its path median / its baseline median
    n_processes: int
    method: str


def summarize(per_process: Sequence[Sequence[float]]) -> Summary:
    """Median of the pooled samples with a 95% CI that includes the spread between processes (module docstring)."""
    procs = _checked(per_process)
    pooled = _pooled_median(procs)
    floor = _order_ci(procs)
    medians = tuple(_median(p) for p in procs)
    lo, hi, method = _interval(pooled, medians, floor)
    return Summary(pooled, lo, hi, *repeat_interval(pooled, lo, hi), medians, len(procs), method)


def ratio(path_per_process: Sequence[Sequence[float]], base_per_process: Sequence[Sequence[float]]) -> RatioSummary:
    """The path's pooled median over the baseline's, with a CI from the paired per-process ratios."""
    path, base = _checked(path_per_process), _checked(base_per_process)
    if len(path) != len(base):
        raise StatsError(f"ratio needs the path and the baseline from the same processes: {len(path)} != {len(base)}")
    centre = _pooled_median(path) / _pooled_median(base)
    (p_lo, p_hi), (b_lo, b_hi) = _order_ci(path), _order_ci(base)
    floor = (p_lo / b_hi, p_hi / b_lo)
    ratios = tuple(_median(p) / _median(b) for p, b in zip(path, base))
    lo, hi, method = _interval(centre, ratios, floor)
    return RatioSummary(centre, lo, hi, *repeat_interval(centre, lo, hi), ratios, len(path), method)


def repeat_interval(estimate: float, ci_low: float, ci_high: float) -> tuple[float, float]:
    """Where another run's estimate should land (95%): each side of the CI stretched by sqrt(2) on the log scale."""
    return estimate * (ci_low / estimate) ** SQRT2, estimate * (ci_high / estimate) ** SQRT2


def t_interval(centre: float, values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """``exp(log(centre) ± t((1+level)/2, N-1) · sd(log values) / sqrt(N))``, N = len(values) >= 2."""
    logs = np.log(np.asarray(values, dtype=float))
    n = len(logs)
    half = t_quantile((1 + level) / 2, n - 1) * float(np.std(logs, ddof=1)) / math.sqrt(n)
    return centre * math.exp(-half), centre * math.exp(half)


def _interval(centre: float, values: tuple[float, ...], floor: tuple[float, float]) -> tuple[float, float, str]:
    """The N = 1 interval (``floor``) or, for N >= 2, the t interval over ``values`` floored by it, side by side."""
    if len(values) == 1:
        return floor[0], floor[1], "order-statistics"
    t_lo, t_hi = t_interval(centre, values)
    floored = floor[0] < t_lo or floor[1] > t_hi
    return min(t_lo, floor[0]), max(t_hi, floor[1]), "process-t+floor" if floored else "process-t"


def _checked(per_process: Sequence[Sequence[float]]) -> list[tuple[float, ...]]:
    procs = [tuple(float(x) for x in p) for p in per_process]
    if not procs:
        raise StatsError("no process: statistics need the samples of at least one worker process")
    for i, p in enumerate(procs):
        if not p:
            raise StatsError(f"process {i} has no samples")
        if not all(math.isfinite(x) and x > 0 for x in p):
            raise StatsError(f"process {i} has a time that is not a finite number > 0")
    return procs


def _median(samples: Sequence[float]) -> float:
    return quantile(tuple(sorted(samples)), 0.5)


def _pooled_median(procs: list[tuple[float, ...]]) -> float:
    return _median([x for p in procs for x in p])


def _order_ci(procs: list[tuple[float, ...]]) -> tuple[float, float]:
    """The order-statistics CI of the median of all samples pooled (for N = 1, median_ci's)."""
    return median_ci(tuple(sorted(x for p in procs for x in p)))


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile, from ``scipy.special`` (0.2 s to import; ``scipy.stats`` took 0.7-1.7 s more, paid by
    the parent while a worker measured)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def scipy_stats():
    """scipy.stats, imported on first use: it costs ~0.5 s, and most commands never need it."""
    from scipy import stats

    return stats
