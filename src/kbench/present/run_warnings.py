"""The run's warnings as shown.

- :func:`warnings`, what the terminal shows by default: a line only where the user can act on it or must know it
  (a parity failure; a ratio to NumPy or a verdict's order that could flip; parity close to its tolerance; a
  machine finding with a fix; cells skipped or failed); :func:`precision`, the precision the run reached, in one
  line, instead of a warning on every row that missed the timer's target; :func:`notes`, the per-row stability
  counts (unstable rows, CIs short of the target) for ``--details``.
- :func:`digest`, one line per kind of flag with its count and its worst case (the report's digest), and
  :func:`details`, every warning of every row for the report's full table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from kbench.core.fmt import DASH, as_list, flagged, fmt_err, fmt_pct, missing, visible
from kbench.measure.callpaths import BASELINE, PATHS
from kbench.measure.timer import UNSTABLE_IQR

PARITY_CLOSE = 0.5  # a passing row whose scaled error is above this share of its tolerance is "close"
MACHINE_WARNINGS = 2  # machine findings shown by default; the rest are counted


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


def _worst(rows: pd.DataFrame, score: pd.Series) -> Any:
    return rows.loc[score.astype(float).fillna(-1.0).idxmax()]


def _unstable(df: pd.DataFrame) -> str:
    rows = flagged(df, "unstable")
    if rows.empty:
        return ""
    w = _worst(rows, rows["iqr_s"] / rows["median_s"])
    return (f"warning: {len(rows)} of {len(df)} rows unstable (IQR > {UNSTABLE_IQR:.0%} of the median); "
            f"worst: {where(w)}, IQR {fmt_pct(w['iqr_s'] / w['median_s'])}")  # fmt: skip


def _ci_missed(df: pd.DataFrame, target: Any) -> str:
    rows = flagged(df, "ci_not_reached")
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


def _contended(df: pd.DataFrame) -> str:
    """Rows timed while other processes took a share of the CPUs (flag ``contended``): the worst, and the fix."""
    rows = flagged(df, "contended")
    if rows.empty:
        return ""
    w = _worst(rows, _num(rows, "others_cpu"))
    return (f"warning: {len(rows)} of {len(df)} rows contended: other processes took up to "
            f"{fmt_pct(_num(rows, 'others_cpu')[w.name])} of the CPUs while they were timed ({where(w)}), and these "
            "medians hold their time slices; fix: stop the other work (--rigorous samples longer on a shared CPU), "
            "or compare only runs taken alike")  # fmt: skip


def _other_flags(df: pd.DataFrame) -> list[str]:
    known = {"unstable", "ci_not_reached", "parity_fail", "contended"}
    flags = dict.fromkeys(f for v in df.get("flags", ()) for f in as_list(v) if f not in known)
    out = []
    for flag in flags:
        rows = flagged(df, flag)
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
    lines = [_parity_failed(df), _contended(df), _unstable(df), _ci_missed(df, target)] if len(df) else []
    lines += _other_flags(df) if len(df) else []
    return tuple(line for line in lines + _cell_notices(meta) if line)


def details(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[Detail, ...]:
    out = [Detail(visible(r["model"]), visible(r["sizes"]), visible(r["path"]), visible(w))
           for _, r in df.iterrows() for w in as_list(r.get("warnings"), " | ")]  # fmt: skip
    for key, what in (("skipped", "skipped"), ("failed_cells", "failed")):
        out += [Detail(visible(s.get("model")), visible(s.get("sizes")), DASH, f"{what}: {visible(s.get('reason'))}")
                for s in meta.get(key) or []]  # fmt: skip
    return tuple(out)


# -- the default view: what a user can act on ----------------------------------------------------------------------


def _num(df: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats (NaN where missing or absent)."""
    return pd.to_numeric(df[column], errors="coerce") if column in df else pd.Series(float("nan"), index=df.index)


def _computes(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of paths that compute the model (a transfer only copies) and have a median."""
    transfer = df["path"].map(lambda p: PATHS[p].transfer if p in PATHS else False).astype(bool)
    return df[~transfer & _num(df, "median_s").notna()]


def _ratio_flips(df: pd.DataFrame) -> str:
    """Keras rows whose ratio to NumPy has a 95% CI on both sides of 1: which of the two is faster is not known.
    The example shown is the fastest Keras path of its cell (the one the verdict names) if one is among them, the
    ratio nearest 1 otherwise."""
    rows = _computes(df)
    rows = rows[(rows["path"] != BASELINE) & (_num(rows, "ratio_ci_low") < 1) & (_num(rows, "ratio_ci_high") > 1)]
    if rows.empty:
        return ""
    keras = _computes(df)[lambda d: d["path"] != BASELINE]
    fastest = keras.groupby(["model", "sizes"])["median_s"].transform("min")
    named = rows["median_s"].eq(fastest.reindex(rows.index))  # the Keras path a verdict names comes first
    w = _worst(rows, named * 100 - _num(rows, "ratio_to_numpy").map(lambda r: abs(math.log(r)) if r > 0 else 99.0))
    return (f"warning: {len(rows)} ratio{'s' if len(rows) > 1 else ''} to NumPy could flip (95% CI crosses 1×); "
            f"e.g. {where(w)}: {float(w['ratio_to_numpy']):.3g}× [{float(w['ratio_ci_low']):.3g}–"
            f"{float(w['ratio_ci_high']):.3g}]")  # fmt: skip


def _named_pairs(cell: pd.DataFrame) -> list[tuple[Any, Any]]:
    """The pairs a verdict rests on, fastest first: the winner and the runner-up, and the fastest Keras path and the
    next one (a pair with NumPy is left to :func:`_ratio_flips`, whose ratio CI is the sharper test)."""
    ok = cell[cell["parity_ok"].astype(bool)].sort_values("median_s", kind="stable")
    keras = ok[ok["path"] != BASELINE]
    pairs = [(ok.iloc[0], ok.iloc[1])] if len(ok) > 1 else []
    pairs += [(keras.iloc[0], keras.iloc[1])] if len(keras) > 1 else []
    return [(a, b) for a, b in pairs if BASELINE not in (a["path"], b["path"])][:1]


def _order_uncertain(df: pd.DataFrame) -> str:
    """Cells where the path the verdict names and the next one have overlapping 95% CIs of their medians."""
    if "ci_low_s" not in df or "ci_high_s" not in df:
        return ""
    df = df.assign(ci_low_s=_num(df, "ci_low_s"), ci_high_s=_num(df, "ci_high_s"), median_s=_num(df, "median_s"))
    found: dict[frozenset[str], list[str]] = {}
    names: dict[frozenset[str], str] = {}
    cells = list(_computes(df).groupby(["model", "sizes", "dtype"], sort=False, dropna=False))
    for (model, sizes, _), cell in cells:
        for a, b in _named_pairs(cell):
            if not missing(a["ci_high_s"]) and not missing(b["ci_low_s"]) and a["ci_high_s"] >= b["ci_low_s"]:
                key = frozenset((a["path"], b["path"]))
                names.setdefault(key, f"{visible(a['path'])} vs {visible(b['path'])}")
                found.setdefault(key, []).append(f"{visible(model)} {visible(sizes)}")
    if not found:
        return ""
    n = sum(len(v) for v in found.values())
    key, at = next(iter(found.items()))
    pair = names[key] + (f" and {len(found) - 1} other pair(s)" if len(found) > 1 else "")
    first = "" if n == len(cells) else f"; first: {at[0]}"
    return f"warning: {pair}: order uncertain (95% CIs overlap) in {n} of {len(cells)} cells{first}"


def _parity_close(df: pd.DataFrame) -> str:
    rows = df[df["parity_ok"].astype(bool)] if "parity_max_rel_err" in df else df.iloc[0:0]
    share = rows["parity_max_rel_err"].astype(float) / rows["parity_tol"].astype(float) if len(rows) else None
    if share is None or not (share > PARITY_CLOSE).any():
        return ""
    close = rows[share > PARITY_CLOSE]
    w = _worst(close, share[close.index])
    return (f"warning: {len(close)} row{'s' if len(close) > 1 else ''} passed parity within {1 / PARITY_CLOSE:g}× of "
            f"the tolerance; closest: {where(w)}, scaled error {fmt_err(w['parity_max_rel_err'])} = "
            f"{share[w.name]:.2f}× the tolerance {fmt_err(w['parity_tol'])}")  # fmt: skip


def _machine(meta: Mapping[str, Any]) -> list[str]:
    """The machine check's findings a user can fix (level ``warn`` with a fix): what was found and the fix (what it
    costs is in ``kbench env --check``); from a run that recorded only the check's lines, its warning lines."""
    findings = meta.get("machine_findings")
    if findings is None:
        lines = [visible(x) for x in meta.get("machine") or () if str(x).startswith("machine:")]
    else:
        lines = [visible(f"machine: {f.get('found')}; fix: {f['fix']}")  # its cost: `kbench env --check`
                 for f in findings if isinstance(f, Mapping) and f.get("level") == "warn" and f.get("fix")]  # fmt: skip
    shown = [f"warning: {line}" for line in lines[:MACHINE_WARNINGS]]
    more = len(lines) - len(shown)
    return shown + ([f"warning: machine: {more} more finding(s) to fix: see `kbench env --check`"] if more > 0 else [])


def _notes(df: pd.DataFrame) -> list[str]:
    """Flags besides parity and stability (e.g. a model without a NumPy twin): said once, as a note."""
    return [line.replace("warning:", "note:", 1) for line in _other_flags(df)]


def warnings(df: pd.DataFrame, meta: Mapping[str, Any], machine: bool = True) -> tuple[str, ...]:
    """What the default view warns about, one line per kind; ``machine=False`` leaves out the machine findings
    (a view that shows the machine check itself). Notes on other flags come first, the warnings after them."""
    lines = _notes(df) if len(df) else []
    if len(df):
        lines += [_parity_failed(df), _contended(df), _ratio_flips(df), _order_uncertain(df), _parity_close(df)]
    lines += _machine(meta) if machine else []
    return tuple(line for line in lines + _cell_notices(meta) if line)


def precision(df: pd.DataFrame) -> str:
    """``"precision: medians ±4% (95% CI half-width, median over 18 rows; widest ±9%)"``: the half-width of each
    row's 95% CI of its median, over the median, and the median of that over the rows; empty without CIs."""
    median = _num(df, "median_s")
    half = ((_num(df, "ci_high_s") - _num(df, "ci_low_s")) / 2 / median)[median > 0].dropna()
    if half.empty:
        return ""
    return (f"precision: medians ±{fmt_pct(half.median())} (95% CI half-width, median over {len(half)} "
            f"row{'s' if len(half) > 1 else ''}; widest ±{fmt_pct(half.max())})")  # fmt: skip


TIME_CUT_SHOWN = 0.10  # the share of the planned sampling a time goal must cut before the run says so


def time_plan(meta: Mapping[str, Any]) -> str:
    """``"time: 5 of 9 cell runs sampled less than 1.3 s, down to 0.05 s, to keep the 45 s goal; ..."`` when the
    default run's time goal cut the run's sampling by :data:`TIME_CUT_SHOWN` or more (a cell run is one process's
    turn at one cell); empty otherwise. A smaller cut (on a fast machine the first process's last cell, which shares
    its time with the backend's import) changes no figure a reader would act on."""
    plan = meta.get("plan") if isinstance(meta.get("plan"), Mapping) else {}
    budgets = [b for b in meta.get("cell_budgets_s") or () if isinstance(b, (int, float))]
    goal, timer = plan.get("cell_goal_s"), plan.get("timer") or {}
    processes = plan.get("processes") or meta.get("processes") or 1
    if not budgets or not isinstance(goal, (int, float)) or not isinstance(timer.get("budget_s"), (int, float)):
        return ""
    if sum(budgets) > (1 - TIME_CUT_SHOWN) * len(budgets) * timer["budget_s"] / processes:
        return ""
    cells = len(plan.get("cells") or ()) * max(len(meta.get("backends") or ()), 1) * max(len(plan.get("threads") or ()), 1)
    short = sum(b < 0.99 * timer["budget_s"] / processes for b in budgets)
    return (f"time: {short} of {len(budgets)} cell runs sampled less than {timer['budget_s'] / processes:.2g} s, down "
            f"to {min(budgets):.2g} s, to keep the {goal * cells:.0f} s goal; --cell-budget or --budget to choose")  # fmt: skip


def notes(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[str, ...]:
    """For ``--details``: the rows that were unstable or short of the timer's CI target, counted (not warnings: the
    precision line says what the run reached)."""
    target = ((meta.get("plan") or {}).get("timer") or {}).get("target_ci")
    lines = [_unstable(df), _ci_missed(df, target)] if len(df) else []
    return tuple(line.replace("warning:", "note:", 1) for line in lines if line)
