"""Statistics over single calls (:mod:`kbench.measure.latency`'s series, every process's): the percentiles, the
pooling over processes and gaps, a result row's ``lat_*``, ``lat_gap_*``, ``lat_rate_*`` and ``mem_*`` columns, and
the labelling of rows by thread setting."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from kbench.core.stats import quantile
from kbench.measure.latency import LatencySeries


@dataclass(frozen=True)
class Percentiles:
    n: int
    p50: float
    p90: float
    p99: float
    max: float


def percentiles(samples: Iterable[float]) -> Percentiles:
    """p50, p90, p99 (linear interpolation between order statistics, NumPy's default) and the max."""
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


def by_threads(df: Any) -> Any:
    """With ``--threads``, label each model with its thread count, so every table, figure and analysis groups the
    rows of one setting together (as :func:`kbench.present.presentation.by_backend` does for backends)."""
    if "threads" not in df.columns or not df["threads"].notna().any():
        return df
    label = df["threads"].map(lambda v: "default" if v is None or v != v else str(int(v)))
    return df.assign(model=df["model"].astype(str) + " · threads=" + label)
