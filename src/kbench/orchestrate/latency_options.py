"""The latency options of a plan, read and checked in the parent: ``--gap`` (idle gaps before single calls),
``--threads`` (thread settings, one worker set per setting) and ``--rate`` (open-loop arrivals). Called by
:func:`kbench.api.plan`, so the CLI and the API refuse the same input with the same one-line message; what the
worker then measures is :mod:`kbench.measure.latency`."""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

from kbench.core.durations import fmt_gap, read_duration
from kbench.core.errors import BadGapError, BadThreadsError
from kbench.measure.latency import GAP_MIN_CALLS

_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(s|min))?\s*")


def parse_gap(text: str | float) -> float:
    """``"0"``, ``"500us"``, ``"1ms"``, ``"20ms"``, ``"0.5s"`` (or a number of seconds) -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text)
        read = read_duration(raw)
        if read is None:
            if raw.strip().startswith("-"):
                raise BadGapError(f"--gap {raw.strip()} is negative; an idle gap is 0 or more, e.g. --gap 0,1ms,20ms")
            raise BadGapError(f"--gap {raw.strip()!r} is not a duration; write e.g. --gap 0,500us,1ms,20ms,0.5s")
        seconds = read
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
    """Refuse a rate so low that :data:`~kbench.measure.latency.GAP_MIN_CALLS` arrivals do not fit the cell budget."""
    if rate is not None and GAP_MIN_CALLS / rate > cell_budget_s:
        raise BadGapError(
            f"--rate {rate:g}/s: {GAP_MIN_CALLS} requests arrive over about {GAP_MIN_CALLS / rate:g} s, more than the "
            f"{cell_budget_s:g} s cell budget; use a rate of at least {GAP_MIN_CALLS / cell_budget_s:.3g}/s or a "
            "larger --cell-budget"
        )


def check_gaps(gaps: Sequence[float], cell_budget_s: float) -> None:
    """Refuse a gap so long that :data:`~kbench.measure.latency.GAP_MIN_CALLS` calls after it do not fit the cell
    budget."""
    for gap in gaps:
        need = GAP_MIN_CALLS * gap
        if need > cell_budget_s:
            raise BadGapError(
                f"--gap {fmt_gap(gap)}: {GAP_MIN_CALLS} single calls after it idle {need:g} s, more than the "
                f"{cell_budget_s:g} s cell budget; use a gap up to {fmt_gap(cell_budget_s / GAP_MIN_CALLS)} or a "
                "larger --cell-budget"
            )
