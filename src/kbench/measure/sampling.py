"""One callable's samples and their loop count: the timed region, its overhead, the warm-up and the calibration.

The first half of the timing protocol that :mod:`kbench.measure.timer` describes whole. A *sample* is ``loops``
back-to-back calls between two clock reads (:meth:`Sampler.sample`, the one timed region); :meth:`Sampler.overhead`
measures what a sample costs besides the calls, :meth:`Sampler.warmup` runs a callable before it is timed and
:meth:`Sampler.calibrate` picks its loop count. :class:`kbench.measure.timer.Timer` builds the interleaved rounds and
the stopping rule on top.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Protocol

Clock = Callable[[], float]
Fn = Callable[[], object]


class SampleSettings(Protocol):
    """The settings the warm-up and calibration read (a :class:`kbench.measure.timer.TimerConfig` has them)."""

    @property
    def min_sample_s(self) -> float: ...

    @property
    def max_overhead(self) -> float: ...

    @property
    def warmup_s(self) -> float: ...

    @property
    def min_warmup_calls(self) -> int: ...


@dataclass(frozen=True)
class Overhead:
    fixed_s: float  # one sample's cost besides the calls: two clock reads and loop set-up
    per_loop_s: float  # one loop iteration calling a no-op callable


class Sampler:
    """Times one callable: its samples, the overhead of taking one (measured once), its warm-up and loop count."""

    def __init__(self, config: SampleSettings, clock: Clock = time.perf_counter) -> None:
        self.config = config
        self.clock = clock
        self._overhead: Overhead | None = None

    # -- the one timed region ------------------------------------------------------------------------------
    def sample(self, fn: Fn, loops: int) -> float:
        """Seconds for ``loops`` calls of ``fn`` (total, not per call)."""
        clock = self.clock
        it = itertools.repeat(None, loops)
        t0 = clock()
        for _ in it:
            fn()
        t1 = clock()
        return t1 - t0

    # -- overhead and calibration --------------------------------------------------------------------------
    def overhead(self) -> Overhead:
        if self._overhead is None:
            fixed = statistics.median(self.sample(_noop, 0) for _ in range(101))
            n = 10_000
            per_loop = statistics.median((self.sample(_noop, n) - fixed) / n for _ in range(11))
            self._overhead = Overhead(max(fixed, 0.0), max(per_loop, 0.0))
        return self._overhead

    def warmup(self, fn: Fn) -> int:
        cfg = self.config
        calls = 0
        start = self.clock()
        while calls < cfg.min_warmup_calls or self.clock() - start < cfg.warmup_s:
            fn()
            calls += 1
        return calls

    def calibrate(self, fn: Fn, min_sample_s: float | None = None) -> int:
        """A loop count whose sample lasts ``min_sample_s`` (default the config's) with fixed overhead under
        ``max_overhead``.

        Grows from 1 like timeit's autorange, but jumps by the measured shortfall (aiming 20% past the target, at
        most 10x a step), so it lands between the smallest sufficient count and about 1.2 times it.
        """
        cfg = self.config
        shortest = cfg.min_sample_s if min_sample_s is None else min_sample_s
        target = max(shortest, self.overhead().fixed_s / cfg.max_overhead)
        loops = 1
        while True:
            t = self.sample(fn, loops)
            if t >= target or loops >= 10**9:
                return loops
            # aim 20% past the target from this estimate, growing at most 10x per step (timeit grows 1-2-5)
            grow = 10.0 if t <= 0 else min(10.0, 1.2 * target / t)
            loops = max(loops + 1, math.ceil(loops * grow))


def _noop() -> None:
    return None
