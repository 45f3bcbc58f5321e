"""Formatting shared by the terminal and the HTML report: times, ratios, errors, and the normalising of result
fields that changed form between schema versions. Plain strings only: nothing here imports rich or Jinja.

Strings that come from a model file, an option or the environment go through :func:`visible` before anyone shows
them: control characters (an ANSI escape, a carriage return, a bidi override) become their ``\\x1b`` spelling, so
a terminal never interprets them and a page never hides them. Markup escaping is the renderer's job (rich Text
objects, Jinja autoescape); this module only makes every character printable.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

import pandas as pd

UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
DASH = "—"
_INVISIBLE_FORMAT = {"\u200e", "\u200f", "\u2028", "\u2029", "\ufeff"} | {chr(c) for c in range(0x202A, 0x202F)} | {
    chr(c) for c in range(0x2066, 0x206A)
}


def missing(v: Any) -> bool:
    """None, NaN, pandas' NA or NaT (anything a results cell holds when there is no value)."""
    if v is None:
        return True
    if isinstance(v, (str, list, tuple, dict)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # an array: a value, not a missing one
        return False


def time_unit(seconds: float) -> tuple[float, str]:
    """The largest unit in which ``seconds`` is at least 1 (ns at the bottom)."""
    for scale, unit in UNITS:
        if abs(seconds) >= scale:
            return scale, unit
    return UNITS[-1]


def fmt_time(seconds: Any) -> str:
    """``"2.59 µs"``, ``"42.3 ms"``; a dash when there is no value."""
    if missing(seconds):
        return DASH
    scale, unit = time_unit(float(seconds))
    return f"{float(seconds) / scale:.3g} {unit}"


def fmt_pct(fraction: Any, digits: int = 0) -> str:
    return DASH if missing(fraction) else f"{100 * float(fraction):.{digits}f}%"


def fmt_median_iqr(median: Any, iqr: Any) -> str:
    """``"2.42 µs (7%)"``: the median and its IQR as a share of it."""
    if missing(median):
        return DASH
    if missing(iqr) or float(median) <= 0:
        return fmt_time(median)
    return f"{fmt_time(median)} ({fmt_pct(float(iqr) / float(median))})"


def fmt_ratio(r: Any) -> str:
    """The one spelling of a ratio of times: ``"4.32×"``, ``"183×"``, ``"16.3k×"``."""
    if missing(r):
        return DASH
    r = float(r)
    if math.isinf(r):
        return "∞×"
    if r >= 10_000:
        return f"{r / 1000:.3g}k×"
    return f"{r:,.0f}×" if r >= 100 else f"{r:.3g}×"


def fmt_err(v: Any) -> str:
    return DASH if missing(v) else f"{float(v):.2e}"


def fmt_rate(v: Any) -> str:
    """GFLOP/s or GB/s: three significant digits."""
    return DASH if missing(v) else f"{float(v):.3g}"


def visible(text: Any) -> str:
    """``text`` as a string whose every character is printable: control and bidi characters are spelled out
    (ESC -> ``\\x1b``), so an escape sequence from a model file is shown, never interpreted."""
    s = "" if missing(text) else str(text)
    if s.isprintable():
        return s
    return "".join(_spell(ch) if _hidden(ch) else ch for ch in s)


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs", "Co", "Zl", "Zp") or ch in _INVISIBLE_FORMAT


def _spell(ch: str) -> str:
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters: a longer string keeps its start and says how much was left out."""
    if len(text) <= limit:
        return text
    rest = len(text) - limit
    return f"{text[:limit]}… (+{rest} characters)"


def as_list(value: Any, sep: str = ";") -> list[str]:
    """Schema v1 joined lists into one string (flags with ``;``, warnings with `` | ``); v2 keeps Python lists
    (or, read back from a file, their JSON). Either form, or nothing, comes back as a list of strings."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if not missing(v) and str(v)]
    if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array
        return as_list(value.tolist(), sep)
    if missing(value) or not str(value).strip():
        return []
    text = str(value)
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return as_list(parsed, sep)
    return [part.strip() for part in text.split(sep) if part.strip()]


def flagged(df: pd.DataFrame, flag: str) -> pd.DataFrame:
    """The rows of a results frame whose ``flags`` hold ``flag`` (none when the frame has no ``flags``)."""
    if "flags" not in df.columns:
        return df.iloc[0:0]
    return df[[flag in as_list(v) for v in df["flags"]]]


def as_options(value: Any) -> dict[str, Any]:
    """A cell's options: a dict (schema v2), its JSON (schema v1 and files), or nothing."""
    if isinstance(value, dict):
        return dict(value)
    if missing(value) or not str(value).strip():
        return {}
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return {"options": str(value)}
    return dict(parsed) if isinstance(parsed, dict) else {"options": parsed}


def options_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """Every option of a cell as (name, value) text, visible, in its recorded order."""
    return tuple((visible(k), visible(v)) for k, v in as_options(value).items())


def options_label(value: Any, limit: int | None = None) -> str:
    """``"activation=relu normalize=True"``; with ``limit``, each value clipped to that many characters."""
    pairs = value if isinstance(value, tuple) else options_pairs(value)
    return " ".join(f"{k}={v if limit is None else clip(v, limit)}" for k, v in pairs)
