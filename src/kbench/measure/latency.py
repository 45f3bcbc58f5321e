"""Latency as a server sees it: single calls, idle gaps before them, thread settings, memory per path.

The steady state (:mod:`kbench.measure.timer`) times loops of back-to-back calls and reports their median: the hot loop. A
server that answers one request at a time sees something else: each request is *one* call, often after the process
sat idle. This module measures that, inside the worker, after the steady state and before the retrace:

- **single calls**: one call between two clock reads (only for paths whose call is at least
  :data:`MIN_SINGLE_CALL_S`, 20 µs: below that the clock's own cost and jitter are a visible share of the reading,
  and the path is noted "too short for single-call timing"); the percentiles p50, p90, p99 and max of the calls
  pooled over every worker process;
- **idle gaps** (``--gap 0,1ms,20ms``): each timed call is preceded by an idle gap of that length
  (:func:`idle` sleeps, then spins the last 200 µs for precision); the gap actually observed (from the end of the
  previous call to the start of this one) is recorded next to the asked one;
- **memory** (:func:`measure_memory`): over a few extra calls after the timed ones (never inside them: tracemalloc
  slows every allocation), the growth of the process's peak resident set (``VmHWM`` reset through
  ``/proc/self/clear_refs``; ``ru_maxrss`` where that is not possible) and the peak of Python's allocations
  (``tracemalloc``);
- **threads** (``--threads 1,2``): :func:`thread_env` is the environment a worker gets before it imports its
  backend (BLAS, OpenMP, TensorFlow's intra- and inter-op pools, XLA's CPU flags), and :func:`apply_threads` what
  it sets through the backend's own API right after the import, before any op.

The parsing and checking functions (:func:`parse_gaps`, :func:`parse_threads`, :func:`check_gaps`) are the
library's input validation, called by :func:`kbench.api.plan`. Everything else is pure or takes its clock and sleep
as arguments, so it can be tested on a fake clock.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from kbench.core.errors import BadGapError, BadThreadsError
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
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)?\s*")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


# -- input: gaps and threads -----------------------------------------------------------------------------------


def parse_gap(text: str | float) -> float:
    """``"0"``, ``"500us"``, ``"1ms"``, ``"20ms"``, ``"0.5s"`` (or a number of seconds) -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text)
        m = _DURATION.fullmatch(raw)
        if m is None:
            if raw.strip().startswith("-"):
                raise BadGapError(f"--gap {raw.strip()} is negative; an idle gap is 0 or more, e.g. --gap 0,1ms,20ms")
            raise BadGapError(f"--gap {raw.strip()!r} is not a duration; write e.g. --gap 0,500us,1ms,20ms,0.5s")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise BadGapError(f"--gap {text} is negative; an idle gap is 0 or more, e.g. --gap 0,1ms,20ms")
    return seconds


def parse_gaps(text: str | float | Iterable[str | float] | None) -> tuple[float, ...]:
    """Comma-separated gaps (``"0,1ms,20ms"``, or a list of them) -> seconds, sorted, duplicates dropped; None -> ()."""
    if text is None:
        return ()
    items = [text] if isinstance(text, (str, int, float)) else list(text)
    parts = [p.strip() if isinstance(p, str) else p for item in items
             for p in (str(item).split(",") if isinstance(item, str) else [item])]  # fmt: skip
    if not parts or any(p == "" for p in parts):
        raise BadGapError("--gap has an empty entry; give idle gaps such as --gap 0,1ms,20ms")
    return tuple(sorted({parse_gap(p) for p in parts}))


def parse_threads(text: str | int | Iterable[str | int] | None) -> tuple[int, ...]:
    """``"1,2"`` (or ``[1, 2]``) -> (1, 2); None -> (): the backends' defaults."""
    if text is None:
        return ()
    items = [text] if isinstance(text, (str, int)) else list(text)
    parts = [p.strip() for item in items for p in str(item).split(",")]
    out = set()
    for p in parts:
        if not re.fullmatch(r"-?\d+", p):
            raise BadThreadsError(f"--threads {p!r} is not a whole number; write e.g. --threads 1,2")
        if int(p) < 1:
            raise BadThreadsError(f"--threads {p} must be 1 or more; write e.g. --threads 1,2")
        out.add(int(p))
    return tuple(sorted(out))


_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(s|min))?\s*")


def parse_rate(text: str | float | None) -> float | None:
    """``"50/s"``, ``"50"``, ``"600/min"`` -> requests per second; None stays None."""
    if text is None:
        return None
    m = _RATE.fullmatch(str(text))
    if m is None:
        raise BadGapError(f"--rate {str(text).strip()!r} is not a request rate; write e.g. --rate 50/s")
    rate = float(m.group(1)) / (60.0 if m.group(2) == "min" else 1.0)
    if not rate > 0:
        raise BadGapError(f"--rate {str(text).strip()} must be more than 0 requests per second, e.g. --rate 50/s")
    return rate


def check_rate(rate: float | None, cell_budget_s: float) -> None:
    """Refuse a rate so low that :data:`GAP_MIN_CALLS` arrivals do not fit the cell budget."""
    if rate is not None and GAP_MIN_CALLS / rate > cell_budget_s:
        raise BadGapError(
            f"--rate {rate:g}/s: {GAP_MIN_CALLS} requests arrive over about {GAP_MIN_CALLS / rate:g} s, more than the "
            f"{cell_budget_s:g} s cell budget; use a rate of at least {GAP_MIN_CALLS / cell_budget_s:.3g}/s or a "
            "larger --cell-budget"
        )


def check_gaps(gaps: Sequence[float], cell_budget_s: float) -> None:
    """Refuse a gap so long that :data:`GAP_MIN_CALLS` calls after it do not fit the cell budget."""
    for gap in gaps:
        need = GAP_MIN_CALLS * gap
        if need > cell_budget_s:
            raise BadGapError(
                f"--gap {fmt_gap(gap)}: {GAP_MIN_CALLS} single calls after it idle {need:g} s, more than the "
                f"{cell_budget_s:g} s cell budget; use a gap up to {fmt_gap(cell_budget_s / GAP_MIN_CALLS)} or a "
                "larger --cell-budget"
            )


def fmt_gap(seconds: float) -> str:
    """``0``, ``500us``, ``20ms``, ``1.5s``: how a gap is written on the command line."""
    if seconds == 0:
        return "0"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g}{unit}"
    return f"{seconds / 1e-9:.3g}ns"


# -- threads: the worker's environment and the backend's own settings -----------------------------------------


def thread_env(threads: int | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables a worker with ``threads`` threads needs before it imports anything (empty for the default)."""
    if threads is None:
        return {}
    n = str(threads)
    env = {k: n for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                          "TF_NUM_INTEROP_THREADS")}  # fmt: skip
    xla = environ.get("XLA_FLAGS", "")
    if threads == 1:
        xla = f"{xla} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    return {**env, **({"XLA_FLAGS": xla} if xla else {})}


def apply_threads(backend: str, threads: int | None) -> dict[str, Any]:
    """In the worker, right after the backend's import and before any op: its own thread settings, and what is in
    effect (for the fingerprint). Nothing for the default."""
    if threads is None:
        return {"threads": None}
    applied: dict[str, Any] = {"threads": threads}
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as exc:  # the context was already initialised: the variables still hold
            applied["tf_threading_error"] = str(exc)
        applied["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        applied["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only settable once, before parallel work
            pass
        applied["torch_threads"] = torch.get_num_threads()
    applied["blas_threads"] = blas_threads(threads)
    return applied


def blas_threads(threads: int | None = None) -> list[int]:
    """Every loaded BLAS/OpenMP pool's thread count (limited to ``threads`` first when given)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return []
    if threads is not None:
        threadpool_limits(threads)
    return sorted({int(p.get("num_threads", 0)) for p in threadpool_info()})


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
    if placement == "device" and backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def device_peak_bytes(backend: str, placement: str) -> int | None:
    """Peak device memory for a ``@device`` path where the backend can say: torch's since
    :func:`reset_device_peak`, JAX's ``peak_bytes_in_use`` (the process's peak so far: JAX cannot reset it). None on
    a CPU and for host paths."""
    if placement != "device":
        return None
    if backend == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
        return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
    return None


# -- statistics ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    n: int
    p50: float
    p90: float
    p99: float
    max: float


def percentiles(samples: Iterable[float]) -> Percentiles:
    """p50, p90, p99 (linear interpolation between order statistics, NumPy's default) and the max."""
    from kbench.measure.timer import quantile

    s = tuple(sorted(float(x) for x in samples))
    if not s:
        nan = math.nan
        return Percentiles(0, nan, nan, nan, nan)
    return Percentiles(len(s), quantile(s, 0.5), quantile(s, 0.9), quantile(s, 0.99), s[-1])


def pooled(series: Iterable[Sequence[LatencySeries]], gap_s: float) -> tuple[list[float], list[float]]:
    """(calls, observed gaps) of every process's series at ``gap_s``."""
    calls: list[float] = []
    gaps: list[float] = []
    for per_process in series:
        for s in per_process:
            if s.gap_s == gap_s:
                calls += s.calls_s
                gaps += s.idle_s
    return calls, gaps


def _median_int(values: Iterable[int | None]) -> int | None:
    import statistics

    present = [v for v in values if v is not None]
    return int(statistics.median(present)) if present else None


def latency_columns(results: Sequence[Any]) -> dict[str, Any]:
    """A row's ``lat_*`` and ``mem_*`` columns from one path's :class:`kbench.measure.protocol.PathResult`, one per
    process: the single calls pooled over the processes, per gap; memory from the processes that measured it."""
    series = [r.latency for r in results]
    row: dict[str, Any] = {
        "mem_rss_growth_b": _median_int(r.mem_rss_growth_b for r in results),
        "mem_py_peak_b": _median_int(r.mem_py_peak_b for r in results),
        "mem_device_peak_b": _median_int(r.mem_device_peak_b for r in results),
    }
    notes = [r.latency_note for r in results if r.latency_note]
    if not any(series):
        return {**row, "lat_note": notes[0] if notes else ""}
    calls, _ = pooled(series, 0.0)
    p = percentiles(calls)
    row.update(lat_n=p.n, lat_p50_s=p.p50, lat_p90_s=p.p90, lat_p99_s=p.p99, lat_max_s=p.max,
               lat_samples_s=list(calls), lat_note="")  # fmt: skip
    asked = sorted({s.gap_s for per in series for s in per if s.gap_s > 0})
    if asked:
        gaps = [0.0, *asked]
        stats = [(percentiles(c), percentiles(g)) for c, g in (pooled(series, gap) for gap in gaps)]
        row.update(lat_gap_s=gaps, lat_gap_actual_s=[g.p50 for _, g in stats], lat_gap_n=[float(c.n) for c, _ in stats],
                   lat_gap_p50_s=[c.p50 for c, _ in stats], lat_gap_p90_s=[c.p90 for c, _ in stats],
                   lat_gap_p99_s=[c.p99 for c, _ in stats], lat_gap_max_s=[c.max for c, _ in stats])  # fmt: skip
    return {**row, **_rate_columns(results)}


def _rate_columns(results: Sequence[Any]) -> dict[str, Any]:
    """``--rate``: the requests' latencies from arrival (queueing included) pooled over the processes."""
    arrivals = [s for r in results for s in getattr(r, "arrivals", ())]
    if not arrivals:
        return {}
    p = percentiles(x for s in arrivals for x in s.calls_s)
    wait = percentiles(x for s in arrivals for x in s.idle_s)
    return {"lat_rate_per_s": 1.0 / arrivals[0].gap_s, "lat_rate_n": p.n, "lat_rate_p50_s": p.p50,
            "lat_rate_p99_s": p.p99, "lat_rate_max_s": p.max, "lat_rate_wait_p50_s": wait.p50}  # fmt: skip


# -- presentation (the terminal and the report; pandas and kbench.core.fmt are imported here only) -----------------


@dataclass(frozen=True)
class LatencyRow:
    """One path in one cell, as shown: its single calls back to back, after each gap, and its memory."""

    path: str
    p50: str
    p99: str
    tail: str  # p99 over p50
    loop: str  # the single call's p50 over the hot loop's median
    gaps: tuple[str, ...]  # p99 after each gap > 0
    gaps_p50: tuple[str, ...]  # p50 after each gap > 0
    memory: str  # peak RSS growth · Python's peak
    rate: str = ""  # --rate: p99 from arrival, queueing included


@dataclass(frozen=True)
class LatencyTable:
    model: str
    sizes: str
    gaps: tuple[str, ...]  # each gap > 0 as written on the command line, e.g. "20ms"
    rows: tuple[LatencyRow, ...]
    short: str  # the paths too short for single-call timing, with why
    sentence: str  # the verdict at low request rates
    rate: str = ""  # --rate as written, e.g. "50/s"; empty without

    @property
    def title(self) -> str:
        return f"single calls · {self.model} · {self.sizes}"


def fmt_bytes(v: Any) -> str:
    from kbench.core.fmt import DASH, missing

    if missing(v):
        return DASH
    v = float(v)
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.0f} B"


def _gap_values(row: Mapping[str, Any], key: str) -> dict[float, float]:
    """``lat_gap_<key>`` of a row by gap, gaps > 0 only."""
    gaps, values = row.get("lat_gap_s"), row.get(f"lat_gap_{key}")
    if not isinstance(gaps, (list, tuple)) or not isinstance(values, (list, tuple)):
        return {}
    return {float(g): float(v) for g, v in zip(gaps, values) if g is not None and v is not None and float(g) > 0}


def _latency_row(r: Mapping[str, Any], gaps: Sequence[float]) -> LatencyRow:
    from kbench.core.fmt import DASH, fmt_ratio, fmt_time, missing, visible

    p50, p99, hot = r.get("lat_p50_s"), r.get("lat_p99_s"), r.get("median_s")
    p99_at, p50_at = _gap_values(r, "p99_s"), _gap_values(r, "p50_s")
    return LatencyRow(
        path=visible(r["path"]), p50=fmt_time(p50), p99=fmt_time(p99),
        tail=DASH if missing(p50) or missing(p99) else fmt_ratio(float(p99) / float(p50)),
        loop=DASH if missing(p50) or missing(hot) or not float(hot) > 0 else fmt_ratio(float(p50) / float(hot)),
        gaps=tuple(fmt_time(p99_at.get(g)) for g in gaps), gaps_p50=tuple(fmt_time(p50_at.get(g)) for g in gaps),
        memory=f"{fmt_bytes(r.get('mem_rss_growth_b'))} · {fmt_bytes(r.get('mem_py_peak_b'))}",
        rate=fmt_time(r.get("lat_rate_p99_s")) if _number(r.get("lat_rate_p99_s")) else "",
    )  # fmt: skip


def verdict_sentence(rows: Sequence[Mapping[str, Any]], gaps: Sequence[float]) -> str:
    """One sentence on latency at low request rates: after the longest gap when there are gaps, else back to back."""
    from kbench.core.fmt import fmt_ratio, fmt_time, visible

    timed = [r for r in rows if _number(r.get("lat_p50_s"))]
    if not timed:
        return ""
    if not gaps:
        best = min(timed, key=lambda r: float(r["lat_p99_s"]))
        wide = max(timed, key=lambda r: float(r["lat_p99_s"]) / float(r["lat_p50_s"]))
        return (f"Single calls: the lowest p99 is {visible(best['path'])}'s ({fmt_time(best['lat_p99_s'])}, "
                f"{fmt_ratio(float(best['lat_p99_s']) / float(best['lat_p50_s']))} its p50); the widest tail is "
                f"{visible(wide['path'])}'s (p99 {fmt_ratio(float(wide['lat_p99_s']) / float(wide['lat_p50_s']))} its "
                "p50).")  # fmt: skip
    g = max(gaps)
    at = [(r, _gap_values(r, "p99_s").get(g)) for r in timed]
    at = [(r, v) for r, v in at if v is not None]
    if not at:
        return ""
    best, best_p99 = min(at, key=lambda rv: rv[1])
    worst, worst_p99 = max(at, key=lambda rv: rv[1] / float(rv[0]["lat_p50_s"]))
    rate = f"≈ {1 / g:,.0f} requests/s"
    return (f"After a {fmt_time(g)} idle gap ({rate}), {visible(worst['path'])}'s p99 is "
            f"{fmt_ratio(worst_p99 / float(worst['lat_p50_s']))} its back-to-back median; the fastest path at low "
            f"load is {visible(best['path'])} (p99 {fmt_time(best_p99)}, "
            f"{fmt_ratio(best_p99 / float(best['lat_p50_s']))} its back-to-back median).")  # fmt: skip


def _number(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v)) and float(v) > 0
    except (TypeError, ValueError):
        return False


def latency_tables(df: Any, cell_keys: Sequence[str]) -> tuple[LatencyTable, ...]:
    """One table per cell that has single-call figures (``df`` is :func:`kbench.present.presentation.prepare`'s results)."""
    from kbench.core.fmt import visible

    if "lat_p50_s" not in df.columns or not df["lat_p50_s"].notna().any():
        return ()
    out = []
    for key, cell in df.groupby(list(cell_keys), sort=False, dropna=False):
        rows = cell.to_dict("records")
        gaps = sorted({g for r in rows for g in _gap_values(r, "p99_s")})
        timed = [r for r in rows if _number(r.get("lat_p50_s"))]
        if not timed:
            continue
        short = [visible(r["path"]) for r in rows if r.get("lat_note")]
        rate = next((float(r["lat_rate_per_s"]) for r in timed if _number(r.get("lat_rate_per_s"))), None)
        out.append(LatencyTable(
            model=visible(key[0]), sizes=visible(key[1]), gaps=tuple(fmt_gap(g) for g in gaps),
            rows=tuple(_latency_row(r, gaps) for r in timed),
            short=f"{TOO_SHORT} (a call under {MIN_SINGLE_CALL_S * 1e6:g} µs): {', '.join(short)}" if short else "",
            sentence=" ".join(x for x in (verdict_sentence(timed, gaps), overload_sentence(timed, rate)) if x),
            rate=f"{rate:g}/s" if rate else "",
        ))  # fmt: skip
    return tuple(out)


def overload_sentence(rows: Sequence[Mapping[str, Any]], rate: float | None) -> str:
    """``--rate``: the paths whose call takes longer than the mean time between arrivals (their queue only grows)."""
    from kbench.core.fmt import visible

    if not rate:
        return ""
    over = [visible(r["path"]) for r in rows if _number(r.get("lat_p50_s")) and float(r["lat_p50_s"]) * rate > 1]
    if not over:
        return f"At {rate:g} requests/s every path keeps up (each call is shorter than the mean gap between arrivals)."
    return (f"At {rate:g} requests/s, {', '.join(over)} cannot keep up (a call takes longer than the mean gap between "
            "arrivals): the queue grows for as long as requests come, so its latency there depends on how long they "
            "were sent.")


def by_threads(df: Any) -> Any:
    """With ``--threads``, label each model with its thread count, so every table, figure and analysis groups the
    rows of one setting together (as :func:`kbench.present.presentation.by_backend` does for backends)."""
    if "threads" not in df.columns or not df["threads"].notna().any():
        return df
    label = df["threads"].map(lambda v: "default" if v is None or v != v else str(int(v)))
    return df.assign(model=df["model"].astype(str) + " · threads=" + label)
