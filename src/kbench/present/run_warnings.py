"""The run's warnings as shown: :func:`digest`, one line per kind of warning (parity failures, unstable rows, CIs
that missed their target, other flags, skipped or failed cells) with its count and its worst case, and
:func:`details`, every warning of every row for the report's full table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from kbench.core.fmt import DASH, as_list, fmt_err, fmt_pct, missing, visible
from kbench.measure.timer import UNSTABLE_IQR


def where(row: Any) -> str:
    """``"call at dense batch=1"``: a row's path, model and sizes, as a warning names them."""
    return f"{visible(row['path'])} at {visible(row['model'])} {visible(row['sizes'])}"


@dataclass(frozen=True)
class Detail:
    """One warning of one row (or one skipped or failed cell), for the report's full table."""

    model: str
    sizes: str
    path: str
    text: str


def _flagged(df: pd.DataFrame, flag: str) -> pd.DataFrame:
    if "flags" not in df.columns:
        return df.iloc[0:0]
    return df[[flag in as_list(v) for v in df["flags"]]]


def _worst(rows: pd.DataFrame, score: pd.Series) -> Any:
    return rows.loc[score.astype(float).fillna(-1.0).idxmax()]


def _unstable(df: pd.DataFrame) -> str:
    rows = _flagged(df, "unstable")
    if rows.empty:
        return ""
    w = _worst(rows, rows["iqr_s"] / rows["median_s"])
    return (f"warning: {len(rows)} of {len(df)} rows unstable (IQR > {UNSTABLE_IQR:.0%} of the median); "
            f"worst: {where(w)}, IQR {fmt_pct(w['iqr_s'] / w['median_s'])}")  # fmt: skip


def _ci_missed(df: pd.DataFrame, target: Any) -> str:
    rows = _flagged(df, "ci_not_reached")
    if rows.empty:
        return ""
    half = (rows["ci_high_s"] - rows["ci_low_s"]) / 2 / rows["median_s"]
    w = _worst(rows, half)
    goal = "" if missing(target) else f" ±{fmt_pct(target)}"
    return (f"warning: {len(rows)} of {len(df)} rows spent their budget before the median's 95% CI reached the "
            f"target{goal}; worst: {where(w)}, ±{fmt_pct(half[w.name])}")  # fmt: skip


def _parity_failed(df: pd.DataFrame) -> str:
    rows = df[~df["parity_ok"].astype(bool)]
    if rows.empty:
        return ""
    w = _worst(rows, rows["parity_max_rel_err"] / rows["parity_tol"])
    return (f"warning: {len(rows)} of {len(df)} rows failed parity; worst: {where(w)}, scaled error "
            f"{fmt_err(w['parity_max_rel_err'])} against a tolerance of {fmt_err(w['parity_tol'])}")  # fmt: skip


def _other_flags(df: pd.DataFrame) -> list[str]:
    known = {"unstable", "ci_not_reached", "parity_fail"}
    flags = dict.fromkeys(f for v in df.get("flags", ()) for f in as_list(v) if f not in known)
    out = []
    for flag in flags:
        rows = _flagged(df, flag)
        first = rows.iloc[0]
        said = " | ".join(as_list(first.get("warnings"), " | ")) or visible(flag)
        out.append(f"warning: {len(rows)} of {len(df)} rows flagged {visible(flag)}; first: {where(first)}: "
                   f"{visible(said)}")  # fmt: skip
    return out


def _cell_notices(meta: Mapping[str, Any]) -> list[str]:
    out = []
    for key, what in (("skipped", "skipped"), ("failed_cells", "failed or not run")):
        items = meta.get(key) or []
        if items:
            f = items[0]
            out.append(f"warning: {len(items)} cell{'s' if len(items) > 1 else ''} {what}; first: "
                       f"{visible(f.get('model'))} {visible(f.get('sizes'))}: {visible(f.get('reason'))}")  # fmt: skip
    return out


def digest(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[str, ...]:
    """One line per kind of warning, with its count and its worst case; the details stay in the results."""
    target = ((meta.get("plan") or {}).get("timer") or {}).get("target_ci")
    lines = [_parity_failed(df), _unstable(df), _ci_missed(df, target)] if len(df) else []
    lines += _other_flags(df) if len(df) else []
    return tuple(line for line in lines + _cell_notices(meta) if line)


def details(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[Detail, ...]:
    out = [Detail(visible(r["model"]), visible(r["sizes"]), visible(r["path"]), visible(w))
           for _, r in df.iterrows() for w in as_list(r.get("warnings"), " | ")]  # fmt: skip
    for key, what in (("skipped", "skipped"), ("failed_cells", "failed")):
        out += [Detail(visible(s.get("model")), visible(s.get("sizes")), DASH, f"{what}: {visible(s.get('reason'))}")
                for s in meta.get(key) or []]  # fmt: skip
    return tuple(out)
