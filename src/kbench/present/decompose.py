"""Where the time goes, as shown: one :class:`Breakdown` per cell (a row per Keras path with its parts as display
strings and a text bar) and the cell's sentence. The split itself is :mod:`kbench.analysis.decompose`'s."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from kbench.analysis.decompose import Decomposition, from_row
from kbench.core.fmt import fmt_time, time_unit, visible


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


_LABELS = {"overhead": "framework overhead"}


def _largest(d: Decomposition) -> tuple[str, float]:
    shares = d.shares()
    name = max(shares, key=lambda k: shares[k])
    return _LABELS.get(name, name), shares[name]


def cell_sentence(where: str, decomps: Mapping[str, Decomposition], numpy_s: float = math.nan) -> str:
    """One sentence per cell about its fastest Keras path: where the largest share goes, the four shares, and
    compute alone against NumPy, e.g. "At batch=1, 71% of xla (the fastest Keras path) is dispatch (compute 6%,
    dispatch 71%, conversion 4%, framework overhead 19%); compute alone takes 0.4× NumPy's time, the path 24×"."""
    if not decomps:
        return ""
    path, d = min(decomps.items(), key=lambda kv: kv[1].path_s)
    name, share = _largest(d)
    shares = d.shares()
    split = ", ".join(f"{_LABELS.get(k, k)} {_pct(shares[k])}" for k in shares)
    noise = "; the overhead is within noise" if d.within_noise else ""
    if d.overhead_high_s < 0:
        noise = "; the references exceed the path beyond their noise, so read these shares with care"
    if not d.has_dispatch:
        noise += "; this backend's dispatch is not timed apart, so compute holds it"
    compute_vs = ""
    if numpy_s > 0:
        compute_vs = (f"; compute alone takes {d.compute_s / numpy_s:.3g}× NumPy's time, "
                      f"the path {d.path_s / numpy_s:.3g}×")  # fmt: skip
    return f"At {where}, {_pct(share)} of {path} (the fastest Keras path) is {name} ({split}{noise}){compute_vs}."


BAR_CHARS = {"compute": "█", "dispatch": "▓", "conversion": "▒", "overhead": "░"}


def text_bar(d: Decomposition, width: int = 8) -> str:
    """The path's time as a stacked bar of ``width`` characters: ``█`` compute, ``▓`` dispatch, ``▒`` conversion,
    ``░`` overhead (shares of the path's own median: paths 10,000× apart still show their split)."""
    shares = d.shares()
    if any(math.isnan(v) for v in shares.values()):
        return ""
    counts = {k: round(shares[k] * width) for k in ("compute", "dispatch", "conversion")}
    rest = max(width - sum(counts.values()), 0) if shares["overhead"] > 0 else 0  # the bar always spans its width
    return "".join(BAR_CHARS[k] * n for k, n in {**counts, "overhead": rest}.items())


def signed_time(seconds: float, fmt: Callable[[float], str]) -> str:
    """``fmt`` for a time that may be negative (an overhead within noise): ``"−12 µs"``."""
    return f"−{fmt(-seconds)}" if seconds < 0 else fmt(seconds)


def span_text(low: float, high: float) -> str:
    """An interval in one unit, the smaller end's, ``"−92.7…226 µs"``, ``"411…1260 µs"``; the larger end's where
    the ends are 1,000× apart or more (narrow enough for a terminal column: no number over 4 digits)."""
    ends = sorted(abs(v) for v in (low, high) if v != 0) or [0.0]
    scale, unit = time_unit(ends[0] if ends[-1] < 1000 * ends[0] else ends[-1])

    def num(v: float) -> str:
        x = abs(v) / scale
        return f"{'−' if v < 0 else ''}{x:.0f}" if x >= 100 else f"{'−' if v < 0 else ''}{x:.3g}"

    return f"{num(low)}…{num(high)} {unit}"


def overhead_text(d: Decomposition, fmt: Callable[[float], str]) -> tuple[str, str]:
    """(the overhead, its 95% interval); a negative overhead is always said to be within noise (or, when its whole
    interval is below zero, that the references exceed the path)."""
    span = span_text(d.overhead_low_s, d.overhead_high_s)
    if d.overhead_s >= 0:
        return fmt(d.overhead_s), span
    if d.within_noise:
        return "≈0 (noise)", span
    return f"{signed_time(d.overhead_s, fmt)} (refs > path)", span


@dataclass(frozen=True)
class PartsRow:
    """One Keras path's decomposition, as shown."""

    path: str
    total: str
    compute: str
    dispatch: str  # "" where the backend has no dispatch reference (compute then holds it)
    floor: str  # which floor: tf.function, xla, jax.jit, ...
    conversion: str  # in + out
    overhead: str  # "≈0 (noise)" when below zero within noise
    overhead_ci: str
    bar: str


@dataclass(frozen=True)
class Breakdown:
    """One cell's "where the time goes": a row per Keras path and serving runtime, NumPy's time beside them, and
    one sentence about the fastest Keras path."""

    numpy: str
    rows: tuple[PartsRow, ...] = ()
    sentence: str = ""
    model: str = ""  # the cell's model label (by backend when several ran), to place the sentence in the report


def breakdown(rows: Sequence[Mapping[str, Any]], where: str, baseline: str = "numpy", model: str = "") -> Breakdown:
    """The breakdown of one cell's result rows (``where``: its sizes label, for the sentence)."""
    decomps = {str(r["path"]): d for r in rows if (d := from_row(r)) is not None}
    if not decomps:
        return Breakdown("", model=visible(model))
    numpy_s = next((float(r["median_s"]) for r in rows if r["path"] == baseline), math.nan)
    floors = {str(r["path"]): visible(r.get("floor_name")) for r in rows}
    shown = tuple(PartsRow(visible(p), fmt_time(d.path_s), fmt_time(d.compute_s),
                           fmt_time(d.dispatch_part_s) if d.has_dispatch else "", floors.get(p, ""),
                           signed_time(d.conversion_s, fmt_time), *overhead_text(d, fmt_time), text_bar(d))
                  for p, d in decomps.items())  # fmt: skip
    served = {str(r["path"]) for r in rows if isinstance(r.get("runtime"), str) and r["runtime"]}
    keras = {p: d for p, d in decomps.items() if p not in served}  # the sentence is about the Keras paths
    return Breakdown(fmt_time(numpy_s), shown, visible(cell_sentence(where, keras, numpy_s)), visible(model))


def cell_breakdowns(df: Any, keys: Sequence[str]) -> tuple[Breakdown, ...]:
    """One :class:`Breakdown` per cell of a results DataFrame, grouped and ordered as the cell tables are."""
    out = []
    for _, g in df.groupby(list(keys), sort=False, dropna=False):
        records = g.to_dict("records")
        first = records[0]
        out.append(breakdown(records, str(first.get("sizes", "")), model=str(first.get("model", ""))))
    return tuple(out)
