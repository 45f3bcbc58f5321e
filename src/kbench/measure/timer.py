"""The timing protocol: calibrated loops, warm-up, interleaved samples, gc kept out, a stopping rule on the median.

One *sample* is ``loops`` back-to-back calls of a zero-argument callable between two clock reads::

    t0 = clock(); for _ in repeat(None, loops): fn(); t1 = clock()     ->  (t1 - t0) / loops  seconds per call

- **Overhead.** Measured once per :class:`Timer`: the fixed cost of a sample (two clock reads and the loop set-up,
  from samples of zero loops) and the per-iteration cost of the loop itself (from a no-op callable).
- **Calibration.** ``loops`` grows until a sample lasts at least ``min_sample_s`` and the fixed overhead is below
  ``max_overhead`` (1%) of it. The per-iteration cost cannot be amortised; it is reported, never subtracted
  (as in ``timeit`` and pyperf).
- **Warm-up.** Each callable runs for ``warmup_s`` (and at least ``min_warmup_calls`` times) before calibration.
- **Interleaving.** Callables of one cell are sampled in rounds, in a freshly shuffled order each round, so slow
  machine drift spreads over every path instead of favouring one. Each round *visits* each callable once and takes
  ``samples_per_visit`` (12) samples back to back: 60 ms or more per visit, far shorter than the drift. Visits of 4
  samples left a path's state to its neighbour: on 2 CPUs with the kernels held back (``slow_machine.py --narrow``,
  dense batch 1024, 16-32 paired rounds of ``benchmarks/harness_accuracy.py``) ``compiled`` and ``predict_on_batch``
  read 4-5% slower interleaved than alone and ``xla`` 6% faster; 3x the untimed calls changed nothing, visits of 12
  samples brought all three within 1-3%.
- **Switch warm-up.** The first calls to a path right after *another* path ran are slow (its caches, TensorFlow's
  thread pools and allocator were just used by someone else): ``benchmarks/switch_penalty.py`` measures the 1st call
  after a switch at 1.5-2x the steady time for the TensorFlow paths at dense batch 32 (5x for NumPy's 12 µs call),
  the 2nd at 1.2-1.4x, the 3rd at 1.1-1.3x, steady from the 4th or 5th; after ``predict`` it lasts longer (``call``
  still 1.17x at the 4th). Inside a sample of ~10 loops that biased ``call`` by +20%, and 3 untimed calls before
  every sample still left +8% (``benchmarks/harness_accuracy.py``, 32 paired rounds). So a visit that follows a
  different callable (or a gc collection) starts with ``switch_warmup_calls`` (20) untimed calls, but never more
  than ``switch_warmup_max_frac`` (1.0) of the callable's loops: one untimed sample's worth for a TensorFlow path
  (8-20 loops), 20 calls for NumPy's hundreds, one call for ``predict``'s single 40 ms one. With 12 samples a visit
  the warm-up costs at most a twelfth more wall time than the timed samples (untimed, not charged to the budget).
  The count used is recorded on each :class:`Measurement`.
- **Quiesce.** Some work leaves threads spinning after it returns: OpenBLAS's workers busy-wait ~0.1 s after a
  multithreaded GEMM, and a TensorFlow matmul at n = 1024 started in that window on 2 cores took 2x its time
  (untimed warm-up calls do not help; a 200 ms pause does). So when the process's CPU time over a visit exceeded its
  wall time by 20% (helper threads ran), the next visit to another callable first sleeps in 5 ms steps until the
  process has been idle for 10 ms (at most ``quiesce_max_s``); the switch warm-up then re-warms the caches.
- **Stopping rule.** A callable stops when it has ``min_samples`` and both ends of the distribution-free 95%
  confidence interval of its median lie within ``±target_ci`` of the median (``"ci"``), when its share of the budget is spent
  (``"budget"``), or at ``max_samples``.
- **gc.** Disabled while sampling; a collection may run *between* samples, never inside one.
- **A shared CPU.** Beside a busy process that takes slices of milliseconds, a median of 5 ms samples depends on
  how the samples fall against its slices (``benchmarks/slow_machine.py --quantization``: 0.34x to 1.31x the figure
  of 200 ms samples, timeit's length). So before calibrating, the timer spins its thread for
  :data:`SHARED_PROBE_S` and reads how long it waited for a CPU meanwhile; at :data:`SHARED_WAIT` or more, samples
  last at least ``shared_sample_s`` (50 ms: many slices each, within 2-3% of 200 ms ones) instead of
  ``min_sample_s`` (:attr:`Measurement.shared`). Over the rounds it also reads how much of its usable CPUs other
  processes took (:func:`kbench.machine.cpustat.others_clock`): :attr:`Measurement.others_cpu`.

The clock is injectable so the protocol can be tested deterministically on a fake clock. The timed region, the
overhead, the warm-up and the calibration are :mod:`kbench.measure.sampling`'s (one callable at a time); this module
is the rest: the interleaved rounds, the switch warm-up, the quiesce, gc and the stopping rule.
"""

from __future__ import annotations

import gc
import itertools
import math
import random
import statistics
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping

from kbench.core.stats import median_ci, quantile
from kbench.machine.cpustat import others_clock, thread_wait
from kbench.measure.sampling import Clock, Fn, Sampler

UNSTABLE_IQR = 0.10  # warn when IQR exceeds this share of the median


@dataclass(frozen=True)
class TimerConfig:
    budget_s: float = 4.0  # steady-state sampling time for one cell, shared equally by its callables
    min_samples: int = 10
    max_samples: int = 2000
    target_ci: float = 0.02
    min_sample_s: float = 0.005
    max_overhead: float = 0.01
    warmup_s: float = 0.02
    min_warmup_calls: int = 2
    seed: int = 0  # for the round order; a run is reproducible in the order it sampled
    switch_warmup_calls: int = 20  # untimed calls when a visit follows another callable (0: off) ...
    switch_warmup_max_frac: float = 1.0  # ... at most this share of the callable's loops (rounded down)
    samples_per_visit: int = 12  # timed samples back to back each time a round comes to a callable
    quiesce_max_s: float = 0.5  # after a visit that kept helper threads busy, wait at most this long for them (0: off)
    shared_sample_s: float = 0.05  # the shortest sample when the timing thread shares its CPU with others (0: off)

    def __post_init__(self) -> None:
        if not (self.budget_s > 0 and self.min_samples >= 1 and self.max_samples >= self.min_samples):
            raise ValueError(f"invalid timer config {self}")
        if self.samples_per_visit < 1:
            raise ValueError(f"invalid timer config {self}: a visit takes at least one sample")
        if self.switch_warmup_calls < 0 or not 0.0 <= self.switch_warmup_max_frac:
            raise ValueError(f"invalid timer config {self}: the switch warm-up cannot be negative")

    def switch_calls(self, loops: int) -> int:
        """Untimed calls before a sample of ``loops`` loops that follows a different callable."""
        return min(self.switch_warmup_calls, math.floor(self.switch_warmup_max_frac * loops))


@dataclass(frozen=True)
class Measurement:
    """Per-call times (seconds) of one callable, with statistics computed lazily."""

    samples: tuple[float, ...]
    loops: int
    stop_reason: str = ""
    per_loop_overhead_s: float = 0.0
    fixed_overhead_s: float = 0.0
    switch_warmup_calls: int = 0  # untimed calls made at the start of each visit that followed another callable
    others_cpu: float = math.nan  # share of the usable CPUs other processes took over the rounds (nan: unknown)
    shared: bool = False  # the probe found the timing thread's CPU shared: samples of shared_sample_s at least

    @cached_property
    def sorted(self) -> tuple[float, ...]:
        return tuple(sorted(self.samples))

    @property
    def n(self) -> int:
        return len(self.samples)

    @cached_property
    def median(self) -> float:
        return quantile(self.sorted, 0.5)

    @cached_property
    def q1(self) -> float:
        return quantile(self.sorted, 0.25)

    @cached_property
    def q3(self) -> float:
        return quantile(self.sorted, 0.75)

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def min(self) -> float:
        return self.sorted[0] if self.samples else math.nan

    @property
    def max(self) -> float:
        return self.sorted[-1] if self.samples else math.nan

    @cached_property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else math.nan

    @cached_property
    def stdev(self) -> float:
        return statistics.stdev(self.samples) if self.n > 1 else math.nan

    @cached_property
    def ci(self) -> tuple[float, float]:
        return median_ci(self.sorted)

    @property
    def ci_rel_halfwidth(self) -> float:
        """How far the CI reaches from the median, relative to it (the larger side: the CI can be lopsided)."""
        lo, hi = self.ci
        return max(self.median - lo, hi - self.median) / self.median if self.median > 0 else math.inf

    @property
    def unstable(self) -> bool:
        return self.iqr > UNSTABLE_IQR * self.median

    @property
    def loop_overhead_pct(self) -> float:
        """The per-iteration loop cost as a percentage of the median per-call time."""
        return 100.0 * self.per_loop_overhead_s / self.median if self.median > 0 else math.nan

    def warnings(self) -> list[str]:
        out = []
        if self.unstable:
            out.append(f"unstable: IQR is {100 * self.iqr / self.median:.1f}% of the median (threshold {UNSTABLE_IQR:.0%})")
        if self.stop_reason == "budget":
            out.append(f"budget spent before the median's 95% CI reached the target (±{100 * self.ci_rel_halfwidth:.1f}%)")
        return out


BUSY_THREADS = 1.2  # process CPU time over wall time above which a visit kept helper threads busy
QUIET = 0.1  # ... and below which, while this thread sleeps, they have gone quiet
QUIESCE_STEP_S = 0.005
# other threads' CPU time is only counted at scheduler ticks (4 ms at HZ=250): a window shorter than a tick can
# look idle while a thread spins (2 ms steps did, here), so quiet means quiet over two steps in a row
QUIET_FOR_S = 0.010
# /proc/stat counts in 10 ms steps per CPU: over a shorter stretch than this, others' share is not said (nan)
OTHERS_MIN_S = 1.0
SHARED_PROBE_S = 0.03  # the timing thread spins this long before calibration, reading how long it waited for a CPU
SHARED_WAIT = 0.05  # ... and this share of waiting (a CPU shared with a busy process) lengthens the samples


def process_cpu() -> float:
    """CPU seconds of every thread of this process, user + system (``CLOCK_PROCESS_CPUTIME_ID`` on Linux)."""
    return time.process_time()


def wait_quiet(max_s: float, clock: Clock = time.perf_counter, cpu_clock: Clock = process_cpu,
               sleep: Callable[[float], None] = time.sleep) -> float:  # fmt: skip
    """Sleep in :data:`QUIESCE_STEP_S` steps until this process has used no CPU (other threads idle) for
    :data:`QUIET_FOR_S`, at most ``max_s``; the seconds waited."""
    start = clock()
    quiet_since = None
    while (now := clock()) - start < max_s:
        if quiet_since is not None and now - quiet_since >= QUIET_FOR_S - 1e-9:
            break
        cpu0, wall0 = cpu_clock(), clock()
        sleep(QUIESCE_STEP_S)
        cpu1, wall1 = cpu_clock(), clock()
        if wall1 > wall0 and (cpu1 - cpu0) / (wall1 - wall0) >= QUIET:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = wall0
    return clock() - start


def cpu_shared(clock: Clock, wait_clock: Clock) -> bool:
    """Whether the calling thread shares its CPU with others now: it spins for :data:`SHARED_PROBE_S` and waited for
    a CPU (``wait_clock``, seconds) :data:`SHARED_WAIT` of that time or more."""
    wait0, start = wait_clock(), clock()
    while (now := clock()) - start < SHARED_PROBE_S:
        pass
    return wait_clock() - wait0 >= SHARED_WAIT * (now - start)


class Timer(Sampler):
    """The protocol over several callables: each warmed up and calibrated (:class:`kbench.measure.sampling.Sampler`),
    then sampled in shuffled rounds, gc held off, until the stopping rule stops each one."""

    config: TimerConfig

    def __init__(self, config: TimerConfig = TimerConfig(), clock: Clock = time.perf_counter,
                 cpu_clock: Clock | None = None, sleep: Callable[[float], None] = time.sleep,
                 others: Clock | None = None, wait_clock: Clock | None = None) -> None:  # fmt: skip
        """``cpu_clock``: the process's CPU time, for the quiesce step; ``others``: the CPU seconds other processes
        spent on this one's CPUs, per CPU, for :attr:`Measurement.others_cpu`; ``wait_clock``: the seconds this
        thread waited for a CPU, for the shared-CPU probe (defaults :func:`process_cpu`,
        :func:`kbench.machine.cpustat.others_clock` and :func:`kbench.machine.cpustat.thread_wait` with the real
        clock; none, so none of the three, with an injected one unless given)."""
        super().__init__(config, clock)
        real = clock is time.perf_counter
        self.cpu_clock = cpu_clock if cpu_clock is not None else (process_cpu if real else None)
        self.others = others if others is not None else (others_clock() if real else None)
        self.wait_clock = wait_clock if wait_clock is not None else (thread_wait if real else None)
        self.sleep = sleep

    # -- the protocol --------------------------------------------------------------------------------------
    def run(self, fns: Mapping[str, Fn], weights: Mapping[str, float] | None = None) -> dict[str, Measurement]:
        """Warm up, calibrate and sample every callable, interleaved, until each one stops. ``weights``: each
        callable's share of the budget, relative to the others' (default: equal shares)."""
        cfg = self.config
        names = sorted(fns)
        if not names:
            return {}
        gc_was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        try:
            overhead = self.overhead()
            shared = self.cpu_shared()
            sample_s = max(cfg.min_sample_s, cfg.shared_sample_s) if shared else cfg.min_sample_s
            loops = {}
            for name in names:
                self.warmup(fns[name])
                loops[name] = self.calibrate(fns[name], sample_s)
            start = self._others_now()
            samples, reason = self._sample_rounds(fns, loops, weights)
            others = self._others_share(start)
        finally:
            if gc_was_enabled:
                gc.enable()
        return {
            n: Measurement(tuple(samples[n]), loops[n], reason[n], overhead.per_loop_s, overhead.fixed_s,
                           cfg.switch_calls(loops[n]), others, shared)
            for n in names
        }  # fmt: skip

    def cpu_shared(self) -> bool:
        """:func:`cpu_shared` on this timer's clocks (False without a wait clock or with ``shared_sample_s`` 0)."""
        if self.wait_clock is None or self.config.shared_sample_s <= 0:
            return False
        return cpu_shared(self.clock, self.wait_clock)

    def _others_now(self) -> tuple[float, float]:
        return (self.others() if self.others else math.nan), self.clock()

    def _others_share(self, start: tuple[float, float]) -> float:
        """Others' CPU seconds per CPU over the wall seconds since ``start``, in [0, 1]; nan when unknown or over
        less than :data:`OTHERS_MIN_S`."""
        others, wall = self._others_now()
        if wall - start[1] < OTHERS_MIN_S or math.isnan(others - start[0]):
            return math.nan
        return min(max((others - start[0]) / (wall - start[1]), 0.0), 1.0)

    def _sample_rounds(self, fns: Mapping[str, Fn], loops: Mapping[str, int],
                       weights: Mapping[str, float] | None = None) -> tuple[dict, dict]:
        """Rounds of one visit per active callable, shuffled; (per-call samples, stop reason) per name. A visit is
        ``samples_per_visit`` samples back to back (fewer when the callable stops).

        Before a visit whose callable is not the one that ran last (or that follows a gc collection), the switch
        warm-up's untimed calls run first."""
        cfg = self.config
        names = sorted(fns)
        rng = random.Random(cfg.seed)
        w = {n: (weights or {}).get(n, 1.0) for n in names}
        share = {n: cfg.budget_s * w[n] / sum(w.values()) for n in names}
        samples: dict[str, list[float]] = {n: [] for n in names}
        spent = dict.fromkeys(names, 0.0)
        reason: dict[str, str] = {}
        active, last = list(names), names[-1]  # calibration ran the last name last
        busy = math.inf  # what calibration left running is unknown: the first switch quiesces
        while active:
            order = active[:]
            rng.shuffle(order)
            for name in order:
                fn, n_loops = fns[name], loops[name]
                if name != last:
                    self.quiesce(busy)
                    for _ in itertools.repeat(None, cfg.switch_calls(n_loops)):
                        fn()
                last = name
                visit = self._usage()
                for _ in range(cfg.samples_per_visit):
                    t = self.sample(fn, n_loops)
                    samples[name].append(t / n_loops)
                    spent[name] += t
                    stop = self._stop_reason(samples[name], spent[name], share[name])
                    if stop:
                        reason[name] = stop
                        active.remove(name)
                        break
                busy = self._busy_since(visit)
            if gc.get_count()[0] > 5000:  # between rounds only: never inside a sample
                gc.collect()
                last = None
        return samples, reason

    def _usage(self) -> tuple[float, float]:
        return (self.cpu_clock() if self.cpu_clock else 0.0), self.clock()

    def _busy_since(self, start: tuple[float, float]) -> float:
        """Process CPU time over wall time since ``start``: about 1 when only this thread ran."""
        cpu, wall = self._usage()
        return (cpu - start[0]) / (wall - start[1]) if wall > start[1] else 0.0

    def quiesce(self, busy: float) -> float:
        """After a visit whose work kept other threads busy (``busy`` > :data:`BUSY_THREADS`), sleep in 5 ms steps
        until the process has been idle for :data:`QUIET_FOR_S`, at most ``quiesce_max_s``; the seconds waited.
        OpenBLAS's threads spin ~0.1 s after a multithreaded GEMM: a TensorFlow matmul at n = 1024 run in that
        window took 2x its time."""
        if self.cpu_clock is None or self.config.quiesce_max_s <= 0 or busy <= BUSY_THREADS:
            return 0.0
        return wait_quiet(self.config.quiesce_max_s, self.clock, self.cpu_clock, self.sleep)

    def measure(self, fn: Fn) -> Measurement:
        return self.run({"fn": fn})["fn"]

    def _stop_reason(self, samples: list[float], spent: float, share: float) -> str:
        cfg = self.config
        n = len(samples)
        if n < cfg.min_samples:
            return ""
        s = tuple(sorted(samples))
        med = quantile(s, 0.5)
        lo, hi = median_ci(s)
        if med > 0 and max(med - lo, hi - med) <= cfg.target_ci * med:
            return "ci"
        if n >= cfg.max_samples:
            return "max_samples"
        if spent >= share:
            return "budget"
        return ""


def time_once(fn: Fn, clock: Clock = time.perf_counter) -> tuple[float, object]:
    """One cold call, gc held off: (seconds, result). For import, build, first call and retrace."""
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        t0 = clock()
        result = fn()
        t1 = clock()
    finally:
        if gc_was_enabled:
            gc.enable()
    return t1 - t0, result
