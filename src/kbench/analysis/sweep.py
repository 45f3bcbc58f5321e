"""Analysis of a results table: where Keras starts to win, and what each path's cost is made of.

Pure functions on the tidy results DataFrame (no backend, no plotting):

- :func:`fit_overhead` fits, per path along a swept size, ``time = overhead + FLOPs / throughput``: the per-call
  fixed cost (the seed's "initialisation and runtime overhead" as one number) and the asymptotic GFLOP/s. The fit is
  least squares on *relative* residuals (times span decades), made robust by Huber reweighting, with both
  parameters kept >= 0.
- :func:`crossovers`: for each Keras path (not a serving runtime) against NumPy, the size where the ratio of medians crosses 1, interpolated
  linearly in log(size)-log(ratio) space between the two measured sizes that bracket it. The same is done on the
  ratio's CI bounds, which gives the crossover's uncertainty. No crossing: "never in range" and the closest ratio.
- :func:`verdict_table` and :func:`headlines`: the recommended path per cell and its margin (the fastest serving
  runtime too, when the run timed any), and one sentence per
  sweep such as "Below batch ≈ N, NumPy is faster than every Keras path on this machine".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kbench.core.fmt import fmt_ratio
from kbench.measure.callpaths import BASELINE, PATHS, RUNTIMES

MIN_FIT_POINTS = 3


def size_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("size_") and df[c].notna().any()]


def swept_axis(df: pd.DataFrame) -> str | None:
    """The size column that varies across these cells (``size_batch`` preferred), or None."""
    varying = [c for c in size_columns(df) if df[c].nunique() > 1]
    if not varying:
        return None
    return "size_batch" if "size_batch" in varying else varying[0]


def sweeps(results: pd.DataFrame):
    """Yield (model, x column, fixed label, rows) for every line along a swept axis (other sizes fixed)."""
    timed = results[results["median_s"].notna()]
    for model, m in timed.groupby("model", sort=False):
        x = swept_axis(m)
        if x is None:
            continue
        others = [c for c in size_columns(m) if c != x]
        groups = m.groupby(others, sort=False, dropna=False) if others else [((), m)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            fixed = " ".join(f"{c.removeprefix('size_')}={int(v)}" for c, v in zip(others, key) if pd.notna(v))
            yield model, x, fixed, g.sort_values(x)


def robust_fit(flops: np.ndarray, seconds: np.ndarray, iterations: int = 20) -> tuple[float, float]:
    """(overhead_s, seconds_per_flop) minimising Huber-weighted relative residuals; both >= 0."""
    f, t = np.asarray(flops, float), np.asarray(seconds, float)
    w = np.ones_like(t)

    def solve(weights):
        A = np.column_stack([1 / t, f / t]) * weights[:, None]
        a, b = np.linalg.lstsq(A, weights, rcond=None)[0]
        if a < 0:  # through the origin
            a, b = 0.0, float(np.sum(weights**2 * f / t) / np.sum(weights**2 * (f / t) ** 2))
        if b < 0:  # flat: overhead only
            b, a = 0.0, float(np.sum(weights**2 / t) / np.sum(weights**2 / t**2))
        return float(a), float(b)

    a, b = solve(w)
    for _ in range(iterations):
        r = (a + b * f - t) / t
        scale = 1.4826 * np.median(np.abs(r - np.median(r))) or 1e-12
        k = 1.345 * scale
        w = np.sqrt(np.where(np.abs(r) <= k, 1.0, k / np.maximum(np.abs(r), 1e-300)))
        a2, b2 = solve(w)
        if math.isclose(a2, a, rel_tol=1e-9, abs_tol=1e-15) and math.isclose(b2, b, rel_tol=1e-9, abs_tol=1e-24):
            break
        a, b = a2, b2
    return a, b


def fit_overhead(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model, x, fixed, g in sweeps(results):
        for path, p in g.groupby("path", sort=False):
            if len(p) < MIN_FIT_POINTS:
                continue
            a, b = robust_fit(p["flops"].to_numpy(), p["median_s"].to_numpy())
            pred = a + b * p["flops"].to_numpy()
            rel = np.abs(pred - p["median_s"].to_numpy()) / p["median_s"].to_numpy()
            smallest = p.iloc[0]
            rows.append({
                "model": model, "swept": x.removeprefix("size_"), "fixed": fixed, "path": path, "points": len(p),
                "overhead_s": a, "throughput_gflops": (1 / b / 1e9) if b > 0 else math.inf,
                "fit_median_rel_err": float(np.median(rel)), "fit_max_rel_err": float(np.max(rel)),
                "smallest_size": int(smallest[x]), "smallest_median_s": float(smallest["median_s"]),
                "overhead_vs_smallest": a / float(smallest["median_s"]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _cross(xs: np.ndarray, ratios: np.ndarray) -> tuple[float | None, str]:
    """First crossing of ratio = 1 along xs, interpolated in log-log; direction 'keras_above' or 'keras_below'."""
    lx, lr = np.log(xs), np.log(ratios)
    for i in range(len(xs) - 1):
        if lr[i] == 0:
            return float(xs[i]), "keras_above" if lr[i + 1] < 0 else "keras_below"
        if lr[i] * lr[i + 1] < 0:
            frac = -lr[i] / (lr[i + 1] - lr[i])
            x = float(np.exp(lx[i] + frac * (lx[i + 1] - lx[i])))
            return x, "keras_above" if lr[i + 1] < lr[i] else "keras_below"
    return None, ""


def _computes(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of paths that compute the model: a transfer (``h2d``, ``d2h``) only copies an input or an output,
    so it never wins a cell and never crosses NumPy."""
    transfers = {name for name, p in PATHS.items() if p.transfer}
    return results[~results["path"].isin(transfers)]


def crossovers(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model, x, fixed, g in sweeps(_computes(results)):
        for path, p in g[(g["path"] != BASELINE) & ~g["path"].isin(RUNTIMES)].groupby("path", sort=False):
            p = p[p["ratio_to_numpy"].notna()]
            if len(p) < 2:
                continue
            xs = p[x].to_numpy(float)
            at, direction = _cross(xs, p["ratio_to_numpy"].to_numpy(float))
            lo, _ = _cross(xs, p["ratio_ci_low"].to_numpy(float))
            hi, _ = _cross(xs, p["ratio_ci_high"].to_numpy(float))
            nearest = p.iloc[int(np.argmin(np.abs(np.log(p["ratio_to_numpy"].to_numpy(float)))))]
            crossings = int(np.sum(np.diff(np.sign(np.log(p["ratio_to_numpy"].to_numpy(float)))) != 0))
            rows.append({
                "model": model, "swept": x.removeprefix("size_"), "fixed": fixed, "path": path,
                "crossover": at, "direction": direction,
                "crossover_low": min(v for v in (lo, hi, at) if v is not None) if at is not None else None,
                "crossover_high": max(v for v in (lo, hi, at) if v is not None) if at is not None else None,
                "crossings": crossings, "range": f"{int(xs[0])}..{int(xs[-1])}",
                "nearest_ratio": float(nearest["ratio_to_numpy"]), "nearest_at": int(nearest[x]),
                "ratio_at_largest": float(p["ratio_to_numpy"].iloc[-1]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _pick(rows: pd.DataFrame, i: int, col: str):
    """``rows[col]`` at position ``i`` (negative: from the end), or None when there are too few rows."""
    return rows[col].iloc[i] if -len(rows) <= i < len(rows) else None


def verdict_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and cell, the one verdict engine: the fastest parity-clean path (NumPy included) and how much
    faster it is than the runner-up; the fastest and slowest clean Keras paths with their ratios to NumPy; the
    paths left out because they failed parity; the fastest clean serving runtime (``served_best``, none when the
    run timed no runtime) with its ratio. A cell where every path failed parity recommends nothing."""
    rows = []
    timed = _computes(results)
    timed = timed[timed["median_s"].notna()]
    for (model, sizes), cell in timed.groupby(["model", "sizes"], sort=False):
        passed = cell["parity_ok"].astype(bool)
        ok = cell[passed].sort_values("median_s", kind="stable")
        keras = ok[(ok["path"] != BASELINE) & ~ok["path"].isin(RUNTIMES)]
        served = ok[ok["path"].isin(RUNTIMES)]
        base = cell[cell["path"] == BASELINE]["median_s"]
        rows.append({
            "model": model, "sizes": sizes, "recommended": _pick(ok, 0, "path"), "median_s": _pick(ok, 0, "median_s"),
            "runner_up": _pick(ok, 1, "path"),
            "margin": float(ok["median_s"].iloc[1] / ok["median_s"].iloc[0]) if len(ok) > 1 else math.nan,
            "baseline_median_s": float(base.iloc[0]) if len(base) else math.nan,
            "keras_best": _pick(keras, 0, "path"), "keras_best_median_s": _pick(keras, 0, "median_s"),
            "keras_best_ratio": _pick(keras, 0, "ratio_to_numpy"),
            "keras_slowest": _pick(keras, -1, "path"), "keras_slowest_median_s": _pick(keras, -1, "median_s"),
            "keras_slowest_ratio": _pick(keras, -1, "ratio_to_numpy"),
            "served_best": _pick(served, 0, "path"), "served_best_ratio": _pick(served, 0, "ratio_to_numpy"),
            "failed_parity": tuple(sorted(set(cell["path"][~passed]))),
        })  # fmt: skip
    return pd.DataFrame(rows)


def headlines(results: pd.DataFrame, cross: pd.DataFrame | None = None) -> list[str]:
    """One sentence per sweep: below which size NumPy beats every Keras path (or that it always / never does).
    ``cross``: :func:`crossovers` of ``results`` when the caller has it already."""
    cross = crossovers(results) if cross is None else cross
    out = []
    if cross.empty:
        return out
    for (model, swept, fixed), g in cross.groupby(["model", "swept", "fixed"], sort=False):
        out.append(_headline(f"{model}{' at ' + fixed if fixed else ''}", swept, g))
    return out


def _headline(where: str, swept: str, g: pd.DataFrame) -> str:
    wins = g[g["direction"] == "keras_above"].sort_values("crossover")
    if not wins.empty:
        first = wins.iloc[0]
        return (
            f"{where}: below {swept} ≈ {first['crossover']:.3g}, NumPy is faster than every Keras path on this "
            f"machine; above it {first['path']} wins (crossover {first['crossover_low']:.3g}–"
            f"{first['crossover_high']:.3g} from the medians' CIs)."
        )
    always = g[(g["crossover"].isna()) & (g["nearest_ratio"] < 1)]
    if not always.empty:
        return f"{where}: {', '.join(always['path'])} beat NumPy at every {swept} in {g['range'].iloc[0]}."
    best = g.sort_values("nearest_ratio").iloc[0]
    return (
        f"{where}: NumPy is faster than every Keras path at every {swept} in {g['range'].iloc[0]} on this machine "
        f"(closest: {best['path']} at {fmt_ratio(best['nearest_ratio'])} NumPy's time, {swept}={best['nearest_at']})."
    )
