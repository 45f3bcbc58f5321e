"""Terminal rendering: pure functions from results to rich renderables or lines. Nothing here prints."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import pandas as pd
from rich import box
from rich.table import Table
from rich.text import Text

from kbench.paths import BACKENDS, BASELINE, PATHS
from kbench.spec import ModelSpec

UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def time_unit(seconds: float) -> tuple[float, str]:
    """The largest unit in which ``seconds`` is at least 1 (ns at the bottom)."""
    for scale, unit in UNITS:
        if abs(seconds) >= scale:
            return scale, unit
    return UNITS[-1]


def fmt_time(seconds: Any) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)) or pd.isna(seconds):
        return "—"
    scale, unit = time_unit(float(seconds))
    return f"{float(seconds) / scale:.3g} {unit}"


def fmt_median_iqr(median: Any, iqr: Any) -> str:
    """``"2.42 µs (7%)"``: the median and its IQR as a share of it."""
    if pd.isna(median):
        return "—"
    return f"{fmt_time(median)} ({iqr / median:.0%})" if median > 0 else fmt_time(median)


def fmt_ratio(r: Any) -> str:
    if pd.isna(r):
        return "—"
    if r >= 10_000:
        return f"{r / 1000:.3g}k×"
    return f"{r:,.0f}×" if r >= 100 else f"{r:.3g}×"


def _cells(df: pd.DataFrame):
    """(title, rows) per cell, in the order cells were run."""
    for key, rows in df.groupby(["model", "sizes", "dtype", "options"], sort=False):
        model, sizes, dtype, options = key
        opts = json.loads(options) if isinstance(options, str) and options else {}
        extra = " ".join(f"{k}={v}" for k, v in opts.items())
        yield f"{model} · {sizes}{' · ' + extra if extra else ''} · {dtype}", rows


def results_tables(df: pd.DataFrame) -> list[Table]:
    """One table per cell: median ± IQR, ratio to NumPy, parity, first-call and retrace cost per path."""
    tables = []
    for title, rows in _cells(df):
        t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for col, just in (("path", "left"), ("median (IQR)", "right"), ("×NumPy", "right"), ("ok", "left"),
                          ("1st call", "right"), ("retrace", "right"), ("n×loops", "right")):  # fmt: skip
            t.add_column(col, justify=just, no_wrap=True)
        for _, row in rows.iterrows():
            ok = bool(row["parity_ok"])
            ratio = fmt_ratio(row.get("ratio_to_numpy"))
            t.add_row(
                row["path"],
                fmt_median_iqr(row.get("median_s"), row.get("iqr_s")),
                Text(ratio, style="dim") if row["path"] == BASELINE else Text(ratio),
                Text("✓", style="green") if ok else Text("✗ FAIL", style="bold red"),
                fmt_time(row.get("first_call_s")),
                fmt_time(row.get("retrace_s")),
                "—" if pd.isna(row.get("n_samples")) else f"{int(row['n_samples'])}×{int(row['loops'])}",
                style="red" if not ok else None,
            )
        tables.append(t)
    return tables


def parity_tables(df: pd.DataFrame) -> list[Table]:
    """One table per cell: errors against the float64 reference and the NumPy twin, and the tolerance."""
    tables = []
    for title, rows in _cells(df):
        tol = rows["parity_tol"].iloc[0]
        t = Table(title=f"{title} · tolerance {tol:.2e} × max|ref|", title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("path", "max abs err", "/ max|ref|", "vs twin", "ok"):
            t.add_column(col)
        for _, row in rows.sort_values("parity_ok", kind="stable").iterrows():  # failures first
            ok = bool(row["parity_ok"])
            t.add_row(
                row["path"], f"{row['parity_max_abs_err']:.2e}", f"{row['parity_max_rel_err']:.2e}",
                f"{row['parity_twin_max_abs_err']:.2e}",
                Text("✓", style="green") if ok else Text("✗ FAIL", style="bold red"),
            )  # fmt: skip
        tables.append(t)
    return tables


def parity_failure_lines(df: pd.DataFrame) -> list[str]:
    bad = df[~df["parity_ok"].astype(bool)]
    return [f"parity FAILED: {r.model} {r.sizes} {r.dtype} {r.path}: {r.parity_message}" for r in bad.itertuples()]


def import_lines(meta: dict) -> list[str]:
    """Per backend: the imports timed in its fresh worker and the runtime's first use."""
    init = meta.get("runtime_init_s") or {}
    return [
        f"import ({backend} worker): numpy {fmt_time(i.get('numpy'))}, keras+{backend} {fmt_time(i.get('backend'))}; "
        f"runtime first use {fmt_time(init.get(backend))}"
        for backend, i in (meta.get("imports") or {}).items()
    ]


def by_backend(df: pd.DataFrame) -> pd.DataFrame:
    """With several backends, label each model with its backend so every table, figure and analysis groups by
    both (each backend's worker measures its own NumPy baseline, so ratios stay within one process)."""
    if "backend" not in df.columns or df["backend"].nunique() <= 1:
        return df
    return df.assign(model=df["model"].astype(str) + " · " + df["backend"].astype(str))


def summary_lines(df: pd.DataFrame, meta: dict) -> list[str]:
    """Headlines of sweeps, cold-start context, skipped cells and warnings, one line each."""
    from kbench.analysis import headlines

    lines = list(headlines(df))
    lines += import_lines(meta)
    peak = meta.get("peak")
    if peak:
        lines.append(f"machine peak (NumPy BLAS): float32 {peak['gflops_float32']:.0f} GFLOP/s, float64 "
                     f"{peak['gflops_float64']:.0f} GFLOP/s, copy {peak['copy_gbps']:.1f} GB/s")  # fmt: skip
    for s in meta.get("skipped") or []:
        lines.append(f"skipped: {s['model']} {s['sizes']}: {s['reason']}")
    for _, row in df.iterrows():
        if isinstance(row.get("warnings"), str) and row["warnings"]:
            lines.append(f"warning: {row['model']} {row['sizes']} {row['path']}: {row['warnings']}")
    return lines


def _crossover_text(r: Any) -> str:
    if r["crossover"] is None or pd.isna(r["crossover"]):
        return f"never; closest {fmt_ratio(r['nearest_ratio'])} at {r['nearest_at']}"
    side = "Keras faster above" if r["direction"] == "keras_above" else "Keras faster below"
    extra = f", {int(r['crossings'])} crossings" if r["crossings"] > 1 else ""
    return f"≈ {r['crossover']:.3g} [{r['crossover_low']:.3g}–{r['crossover_high']:.3g}] ({side}{extra})"


def sweep_tables(results: pd.DataFrame) -> list[Table]:
    """Per sweep: each Keras path's crossover against NumPy and its fitted overhead and throughput."""
    from kbench.analysis import crossovers, fit_overhead

    cross, fits = crossovers(results), fit_overhead(results)
    tables = []
    for (model, swept, fixed), g in cross.groupby(["model", "swept", "fixed"], sort=False) if not cross.empty else []:
        f = fits[(fits["model"] == model) & (fits["fixed"] == fixed)].set_index("path") if not fits.empty else None
        t = Table(title=f"{model}{' · ' + fixed if fixed else ''}, {swept} {g['range'].iloc[0]}: crossover against NumPy; "
                  "fit of time = overhead + FLOPs / throughput", title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
        for col, just in (("path", "left"), (f"NumPy = Keras at {swept}", "left"), ("overhead", "right"),
                          ("GFLOP/s", "right"), (f"vs {swept}={g['range'].iloc[0].split('..')[0]}", "right"),
                          ("fit err", "right")):  # fmt: skip
            t.add_column(col, justify=just)
        rows = list(g.iterrows())
        if f is not None and "numpy" in f.index:
            rows.insert(0, (None, {"path": "numpy"}))
        for _, r in rows:
            fit = f.loc[r["path"]] if f is not None and r["path"] in f.index else None
            t.add_row(
                r["path"],
                "—" if r["path"] == "numpy" else _crossover_text(r),
                "—" if fit is None else fmt_time(fit["overhead_s"]),
                "—" if fit is None else f"{fit['throughput_gflops']:.3g}",
                "—" if fit is None else f"{fit['overhead_vs_smallest']:.2f}×",
                "—" if fit is None else f"{100 * fit['fit_median_rel_err']:.0f}%",
            )
        tables.append(t)
    return tables


def list_lines(specs: Iterable[ModelSpec]) -> list[str]:
    """``kbench list``: models with sizes, defaults and options; call paths with what each timed region holds."""
    lines = ["models (sizes list their defaults; an option's first value is its default):"]
    for s in specs:
        sizes = " ".join(f"{k}={','.join(map(str, v))}" for k, v in s.sizes.items())
        opts = " ".join(f"{k}={'|'.join(map(str, v))}" for k, v in s.options.items())
        lines += [f"  {s.name:<10} {sizes}" + (f"   options: {opts}" if opts else ""),
                  f"  {'':<10} {s.summary}", f"  {'':<10} file: {s.source}"]  # fmt: skip
    lines += ["", "call paths (every timed region is NumPy in -> NumPy out):"]
    for p in PATHS.values():
        lines.append(f"  {p.name:<17} timed: {p.timed_region}")
        for backend in BACKENDS:
            impl = p.impl(backend)
            if impl is None:
                lines.append(f"  {'':<17} {backend:<10} — (not on this backend)")
            else:
                lines += [f"  {'':<17} {backend:<10} runs: {impl.runs}", f"  {'':<17} {'':<10} recompiles: {impl.recompiles}"]
    return lines


def env_lines(env: dict) -> list[str]:
    return json.dumps(env, indent=2, default=str).splitlines()
