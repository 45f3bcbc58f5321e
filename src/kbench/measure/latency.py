"""Latency as a server sees it, measured in the worker: single calls, idle gaps before them, open-loop arrivals and
memory per path, after the steady state and before the retrace.

The steady state (:mod:`kbench.measure.timer`) times loops of back-to-back calls and reports their median: the hot
loop. A server that answers one request at a time sees something else: each request is *one* call, often after the
process sat idle. This module measures that:

- **single calls**: one call between two clock reads (only for paths whose call is at least
  :data:`MIN_SINGLE_CALL_S`, 20 µs: below that the clock's own cost and jitter are a visible share of the reading,
  and the path is noted "too short for single-call timing"); every process's :class:`LatencySeries` goes to the
  parent, which pools them (:mod:`kbench.analysis.latency`);
- **idle gaps** (``--gap 0,1ms,20ms``): each timed call is preceded by an idle gap of that length
  (:func:`idle` sleeps, then spins the last 200 µs for precision); the gap actually observed (from the end of the
  previous call to the start of this one) is recorded next to the asked one;
- **open loop** (``--rate 50/s``, :func:`open_loop`): Poisson arrivals served one at a time, the latency counted
  from each arrival;
- **memory** (:func:`measure_memory`): over a few extra calls after the timed ones (never inside them: tracemalloc
  slows every allocation), the growth of the process's peak resident set (``VmHWM`` reset through
  ``/proc/self/clear_refs``; ``ru_maxrss`` where that is not possible) and the peak of Python's allocations
  (``tracemalloc``); a ``@device`` path's peak device memory where its backend can say.

The options are read in the parent (:mod:`kbench.orchestrate.latency_options`), the thread settings applied by
:mod:`kbench.backends.threads`. Everything here takes its clock and sleep as arguments, so it can be tested on a
fake clock.
"""

from __future__ import annotations

import gc
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from kbench import backends
from kbench.backends.base import Resident
from kbench.measure.timer import wait_quiet

MIN_SINGLE_CALL_S = 20e-6  # a call shorter than this is not timed alone
TOO_SHORT = "too short for single-call timing"
LATENCY_S = 0.3  # back-to-back single calls: seconds per cell, every process and path together
MIN_CALLS = 30  # single calls per path (pooled over processes) at least ...
MIN_CALLS_SLOW = 3  # ... or this many for a slow path (predict: one per process by default)
SLOW_CALL_S = 5e-3  # a path slower than this per call is "slow"
QUIESCE_MAX_S = 0.5  # before each path's single calls, wait at most this long for idle threads
MAX_CALLS = 200  # per path and process
GAP_CALLS = 60  # single calls per path and gap > 0, pooled over processes
GAP_MIN_CALLS = 30  # a gap whose calls cannot fit the cell budget this many times is refused
SPIN_S = 200e-6  # the last stretch of an idle gap is spun, not slept (sleep overshoots by ~50-100 µs or more)
MEM_CALLS = 2  # calls under tracemalloc per path (1 for a slow path)


# -- single calls ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySeries:
    """One path's single calls in one process after idle gaps of ``gap_s`` (0: back to back)."""

    gap_s: float  # the idle gap asked for
    calls_s: tuple[float, ...]  # each call, between two clock reads
    idle_s: tuple[float, ...]  # the idle gap actually observed before each call


def idle(seconds: float, clock: Callable[[], float] = time.perf_counter,
         sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
    """Stay idle for ``seconds``: sleep all but the last :data:`SPIN_S`, then spin on the clock."""
    if seconds <= 0:
        return
    deadline = clock() + seconds
    if seconds > SPIN_S:
        sleep(seconds - SPIN_S)
    while clock() < deadline:
        pass


def single_calls(fn: Callable[[], Any], n: int, gap_s: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep, warmup: int = 3) -> LatencySeries:  # fmt: skip
    """``warmup`` untimed calls (the path was just switched to), then ``n`` calls, each timed alone after an idle
    gap of ``gap_s``. gc is held off for the series."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    calls, gaps = [], []
    try:
        for _ in itertools.repeat(None, warmup):
            fn()
        end = clock()
        for _ in itertools.repeat(None, n):
            idle(gap_s, clock, sleep)
            t0 = clock()
            fn()
            t1 = clock()
            calls.append(t1 - t0)
            gaps.append(t0 - end)
            end = t1
    finally:
        if gc_was_enabled:
            gc.enable()
    return LatencySeries(gap_s, tuple(calls), tuple(gaps))


def open_loop(fn: Callable[[], Any], rate: float, n: int, rng: Any, clock: Callable[[], float] = time.perf_counter,
              sleep: Callable[[float], None] = time.sleep) -> LatencySeries:  # fmt: skip
    """``n`` requests arriving as a Poisson process of ``rate`` per second, served one at a time: each request's
    latency runs from its arrival to the end of its call, so it includes the wait behind earlier requests (the
    series' ``idle_s`` holds those waits; ``gap_s`` the mean time between arrivals)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    latencies, waits = [], []
    try:
        fn()
        arrival = clock()
        for _ in itertools.repeat(None, n):
            arrival += rng.expovariate(rate)
            idle(arrival - clock(), clock, sleep)
            t0 = clock()
            fn()
            t1 = clock()
            latencies.append(t1 - arrival)
            waits.append(max(t0 - arrival, 0.0))
    finally:
        if gc_was_enabled:
            gc.enable()
    return LatencySeries(1.0 / rate, tuple(latencies), tuple(waits))


def calls_for(call_s: float, share_s: float, processes: int) -> int:
    """Single calls per process for a path of ``call_s`` per call given ``share_s`` seconds: at least its share
    of :data:`MIN_CALLS` (:data:`MIN_CALLS_SLOW` for a slow path), at most :data:`MAX_CALLS`."""
    least = math.ceil((MIN_CALLS_SLOW if call_s > SLOW_CALL_S else MIN_CALLS) / max(processes, 1))
    fit = int(share_s / call_s) if call_s > 0 else MAX_CALLS
    return max(least, min(fit, MAX_CALLS))


def too_short(call_s: float | None) -> bool:
    return call_s is None or not math.isfinite(call_s) or call_s < MIN_SINGLE_CALL_S


def measure_paths(fns: Mapping[str, Callable[[], Any]], call_s: Mapping[str, float], gaps: Sequence[float],
                  processes: int, order: Sequence[str], budget_s: float = LATENCY_S,
                  fastest_s: Mapping[str, float] | None = None) -> dict[str, tuple[LatencySeries, ...]]:  # fmt: skip
    """Per path (those long enough, in ``order``): the back-to-back series (within this process's share of
    ``budget_s``), then one series per gap > 0 in ``gaps`` (:data:`GAP_CALLS` pooled over processes). ``call_s`` is
    each path's steady median; ``fastest_s`` its fastest sample, which decides "too short" (steadier under load)."""
    fastest = fastest_s or call_s
    timed = [p for p in order if p in fns and not too_short(fastest.get(p, call_s.get(p)))]
    if not timed:
        return {}
    share = budget_s / max(processes, 1) / len(timed)
    out: dict[str, tuple[LatencySeries, ...]] = {}
    for p in timed:
        wait_quiet(QUIESCE_MAX_S)  # threads the previous path left spinning (kbench.measure.timer's quiesce)
        warmup = 0 if call_s[p] > SLOW_CALL_S else 3  # a short switch warm-up; none for a slow path
        series = [single_calls(fns[p], calls_for(call_s[p], share, processes), 0.0, warmup=warmup)]
        n_gap = max(math.ceil(GAP_CALLS / max(processes, 1)), 1)
        series += [single_calls(fns[p], n_gap, g, warmup=min(warmup, 1)) for g in gaps if g > 0]
        out[p] = tuple(series)
    return out


# -- memory ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_growth_b: int | None  # peak resident set during the calls over the resident set before them
    py_peak_b: int | None  # tracemalloc's peak over the calls (Python allocations only)
    calls: int


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0); False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_memory(fn: Callable[[], Any], calls: int = MEM_CALLS) -> Memory:
    """Peak RSS growth and Python's peak allocations over ``calls`` calls (after the timed ones)."""
    import tracemalloc

    gc.collect()
    reset = _reset_peak()
    before = _status_kb("VmRSS") if reset else _maxrss_kb()
    tracemalloc.start()
    try:
        for _ in range(calls):
            fn()
        _, py_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    after = _status_kb("VmHWM") if reset else _maxrss_kb()
    rss = None if before is None or after is None else max(after - before, 0) * 1024
    return Memory(rss, py_peak, calls)


def reset_device_peak(backend: str, placement: str) -> None:
    """Before the memory calls of a ``@device`` path: reset the backend's peak counter where it has one (torch)."""
    resident = _resident(backend, placement)
    if resident is not None and resident.reset_peak is not None:
        resident.reset_peak()


def device_peak_bytes(backend: str, placement: str) -> int | None:
    """Peak device memory for a ``@device`` path where the backend can say: torch's since
    :func:`reset_device_peak`, JAX's ``peak_bytes_in_use`` (the process's peak so far: JAX cannot reset it). None on
    a CPU and for host paths."""
    resident = _resident(backend, placement)
    return resident.peak_bytes() if resident is not None and resident.peak_bytes is not None else None


def _resident(backend: str, placement: str) -> Resident | None:
    """The backend's device hooks for a ``@device`` path (None for a host path)."""
    entry = backends.find(backend) if placement == "device" else None
    return entry.resident if entry is not None else None
