"""Short durations as the command line writes them (``0``, ``500us``, ``20ms``, ``0.5s``): read into seconds and
written back. The one notation of ``--gap``; the checks of what a duration may be stay with the option's parser."""

from __future__ import annotations

import re

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)?\s*")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def read_duration(text: str) -> float | None:
    """``"500us"``, ``" 2 ms "``, ``"0.5s"``, ``"3"`` (seconds) -> seconds; None when ``text`` is not one."""
    m = _DURATION.fullmatch(text)
    return None if m is None else float(m.group(1)) * _UNITS[m.group(2)]


def fmt_gap(seconds: float) -> str:
    """``0``, ``500us``, ``20ms``, ``1.5s``: how a gap is written on the command line."""
    if seconds == 0:
        return "0"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g}{unit}"
    return f"{seconds / 1e-9:.3g}ns"
