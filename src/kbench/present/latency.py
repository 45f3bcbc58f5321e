"""Single calls as shown (the terminal and the report): one :class:`LatencyTable` per cell that has them, its rows
of percentiles, gaps and memory as display strings, and the sentences on latency at low request rates and under
``--rate``. The figures are computed in :mod:`kbench.analysis.latency`; nothing here computes a statistic."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from kbench.core.durations import fmt_gap
from kbench.core.fmt import DASH, fmt_ratio, fmt_time, missing, visible
from kbench.measure.latency import MIN_SINGLE_CALL_S, TOO_SHORT


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
    p50, p99, hot = r.get("lat_p50_s"), r.get("lat_p99_s"), r.get("median_s")
    p99_at, p50_at = _gap_values(r, "p99_s"), _gap_values(r, "p50_s")
    return LatencyRow(
        path=visible(r["path"]), p50=fmt_time(p50), p99=fmt_time(p99),
        tail=DASH if missing(p50) or missing(p99) else fmt_ratio(float(p99) / float(p50)),
        loop=DASH if missing(p50) or missing(hot) or not float(hot) > 0 else fmt_ratio(float(p50) / float(hot)),
        gaps=tuple(fmt_time(p99_at.get(g)) for g in gaps), gaps_p50=tuple(fmt_time(p50_at.get(g)) for g in gaps),
        memory=f"{fmt_bytes(r.get('mem_rss_growth_b'))} · {fmt_bytes(r.get('mem_py_peak_b'))}",
        rate=fmt_time(r.get("lat_rate_p99_s")) if _is_positive(r.get("lat_rate_p99_s")) else "",
    )  # fmt: skip


def verdict_sentence(rows: Sequence[Mapping[str, Any]], gaps: Sequence[float]) -> str:
    """One sentence on latency at low request rates: after the longest gap when there are gaps, else back to back."""
    timed = [r for r in rows if _is_positive(r.get("lat_p50_s"))]
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


def _is_positive(v: Any) -> bool:
    """A finite number above zero (a figure that was measured)."""
    try:
        return v is not None and math.isfinite(float(v)) and float(v) > 0
    except (TypeError, ValueError):
        return False


def latency_tables(df: Any, cell_keys: Sequence[str]) -> tuple[LatencyTable, ...]:
    """One table per cell that has single-call figures (``df``: :func:`kbench.present.presentation.prepare`'s
    results)."""
    if "lat_p50_s" not in df.columns or not df["lat_p50_s"].notna().any():
        return ()
    out = []
    for key, cell in df.groupby(list(cell_keys), sort=False, dropna=False):
        rows = cell.to_dict("records")
        gaps = sorted({g for r in rows for g in _gap_values(r, "p99_s")})
        timed = [r for r in rows if _is_positive(r.get("lat_p50_s"))]
        if not timed:
            continue
        short = [visible(r["path"]) for r in rows if r.get("lat_note")]
        rate = next((float(r["lat_rate_per_s"]) for r in timed if _is_positive(r.get("lat_rate_per_s"))), None)
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
    if not rate:
        return ""
    over = [visible(r["path"]) for r in rows if _is_positive(r.get("lat_p50_s")) and float(r["lat_p50_s"]) * rate > 1]
    if not over:
        return f"At {rate:g} requests/s every path keeps up (each call is shorter than the mean gap between arrivals)."
    return (f"At {rate:g} requests/s, {', '.join(over)} cannot keep up (a call takes longer than the mean gap between "
            "arrivals): the queue grows for as long as requests come, so its latency there depends on how long they "
            "were sent.")
