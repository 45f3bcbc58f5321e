"""The presentation model: what the terminal and the HTML report show, computed once from a run's results and meta.

:func:`prepare` normalises the results into a :class:`DisplayFrame` (models labelled by backend when there are
several, options as one label, whatever the schema version) and runs the analysis once; :func:`build` turns that
into frozen dataclasses of display-ready strings. This module makes the per-cell tables, the verdicts, the
crossover/fit tables, the headlines and parity, and gathers the rest from their own modules: where the time goes
(:mod:`kbench.present.decompose`), single calls (:mod:`kbench.present.latency`), the imports, peak line and models
(:mod:`kbench.present.run_context`) and the warnings digest (:mod:`kbench.present.run_warnings`).
:mod:`kbench.present.terminal` lays them out with rich and the report's template with Jinja; neither computes
anything.

Every string that comes from a model file, an option, a size name, a path or the environment has gone through
:func:`kbench.core.fmt.visible` here (control characters spelled out). Escaping markup is the renderer's job: rich Text
objects in the terminal, Jinja's autoescape in the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from kbench.analysis.latency import by_threads
from kbench.analysis.sweep import crossovers, fit_overhead, headlines, verdict_table
from kbench.core.fmt import (
    DASH, fmt_err, fmt_median_iqr, fmt_pct, fmt_rate, fmt_ratio, fmt_time, missing, options_label, options_pairs,
    visible,
)  # fmt: skip
from kbench.measure.callpaths import BASELINE
from kbench.present.decompose import Breakdown, cell_breakdowns
from kbench.present.latency import LatencyTable, latency_tables
from kbench.present.run_context import ModelInfo, import_lines, model_infos, peak_line
from kbench.present.run_warnings import Detail, details, digest, notes, precision, time_plan, warnings, where
from kbench.present.screen import Screen, screen

CELL_KEYS = ["model", "sizes", "dtype", "options_label"]


@dataclass(frozen=True)
class DisplayFrame:
    """Results ready to show (``model`` labelled by backend when several ran; ``model_name`` keeps the model's
    own name; ``options_label`` the cell's options as text) and the analysis of its sweeps, computed once."""

    results: pd.DataFrame
    cross: pd.DataFrame
    fits: pd.DataFrame


def by_backend(df: pd.DataFrame) -> pd.DataFrame:
    """With several backends, label each model with its backend so every table, figure and analysis groups by
    both (each backend's worker measures its own NumPy baseline, so ratios stay within one process)."""
    if "backend" not in df.columns or df["backend"].nunique() <= 1:
        return df
    return df.assign(model=df["model"].astype(str) + " · " + df["backend"].astype(str))


def prepare(results: pd.DataFrame) -> DisplayFrame:
    df = results.assign(
        model_name=results["model"],
        options_label=[options_label(v) for v in results["options"]] if "options" in results else "",
        dtype=results["dtype"] if "dtype" in results else "",
    )
    df = by_threads(by_backend(df))
    return DisplayFrame(df, crossovers(df), fit_overhead(df))


# -- cell tables ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRow:
    """One path in one cell: timing, ratio, parity and cold start, as shown."""

    path: str
    baseline: bool
    ok: bool
    median: str
    ratio: str
    first_call: str
    retrace: str
    samples: str
    abs_err: str
    rel_err: str
    twin_err: str


@dataclass(frozen=True)
class CellTable:
    model: str
    sizes: str
    options: tuple[tuple[str, str], ...]
    dtype: str
    tolerance: str
    rows: tuple[PathRow, ...]

    def title(self, limit: int | None = None) -> str:
        """``"dense · batch=1 features=128 units=128 · activation=linear · float32"``; with ``limit``, each option
        value clipped to that many characters."""
        opts = options_label(self.options, limit)
        return " · ".join(p for p in (self.model, self.sizes, opts, self.dtype) if p)


def _first_call(r: Any) -> str:
    """The first call; a serving runtime's with its export and load before it."""
    first = fmt_time(r.get("first_call_s"))
    if missing(r.get("export_s")):
        return first
    return f"{first} (export {fmt_time(r.get('export_s'))}, load {fmt_time(r.get('load_s'))})"


def _path_row(r: Any) -> PathRow:
    return PathRow(
        path=visible(r["path"]), baseline=r["path"] == BASELINE, ok=bool(r["parity_ok"]),
        median=fmt_median_iqr(r.get("median_s"), r.get("iqr_s")), ratio=fmt_ratio(r.get("ratio_to_numpy")),
        first_call=_first_call(r), retrace=fmt_time(r.get("retrace_s")),
        samples=DASH if missing(r.get("n_samples")) else f"{int(r['n_samples'])}×{int(r['loops'])}",
        abs_err=fmt_err(r.get("parity_max_abs_err")), rel_err=fmt_err(r.get("parity_max_rel_err")),
        twin_err=fmt_err(r.get("parity_twin_max_abs_err")),
    )  # fmt: skip


def cell_tables(df: pd.DataFrame) -> tuple[CellTable, ...]:
    """One table per cell, in the order cells were run."""
    out = []
    for (model, sizes, dtype, _), rows in df.groupby(CELL_KEYS, sort=False, dropna=False):
        opts = options_pairs(rows["options"].iloc[0]) if "options" in rows else ()
        paths = tuple(_path_row(r) for _, r in rows.iterrows())
        out.append(CellTable(visible(model), visible(sizes), opts, visible(dtype), fmt_err(rows["parity_tol"].iloc[0]), paths))
    return tuple(out)


# -- verdicts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Per model and cell: which path to use, and how far the Keras paths are from the NumPy twin."""

    model: str
    sizes: str
    options: str
    recommended: str
    median: str
    margin: str
    keras_path: str
    keras_ratio: str
    recommend: str
    fastest: str
    slowest: str
    overall: str
    excluded: str


def _verdict_sentences(v: Any) -> tuple[str, str, str]:
    if v.keras_best is None:
        rec = f"Use {visible(v.recommended)}: no Keras path passed parity here." if v.recommended else ""
        return rec or "No path passed parity here.", "", ""
    if missing(v.keras_best_ratio):  # a user model without a NumPy twin: only its Keras paths ran
        return f"Use {visible(v.keras_best)}, the fastest Keras path here (no NumPy twin to compare with).", "", ""
    fast, ratio = visible(v.keras_best), float(v.keras_best_ratio)
    if ratio > 1:
        rec = f"NumPy wins: every Keras path is slower here. If you must call Keras, use {fast}."
    else:
        rec = f"Keras wins: use {fast}, {fmt_ratio(1 / ratio)} faster than the NumPy twin."
    fastest = (f"The fastest Keras path, {fast}, takes {fmt_ratio(ratio)} NumPy's time "
               f"({fmt_time(v.keras_best_median_s)} against {fmt_time(v.baseline_median_s)} per call).")  # fmt: skip
    slowest = (f"The slowest, {visible(v.keras_slowest)}, takes {fmt_ratio(v.keras_slowest_ratio)} NumPy's time "
               f"({fmt_time(v.keras_slowest_median_s)} per call).")  # fmt: skip
    return rec, fastest, slowest


def _overall(v: Any) -> str:
    """When a Keras path is the fastest of all: by how much it beats the runner-up."""
    if not v.recommended or v.recommended == BASELINE or missing(v.margin):
        return ""
    return f"Fastest overall: {visible(v.recommended)}, {fmt_ratio(v.margin)} faster than {visible(v.runner_up)}."


def verdicts(df: pd.DataFrame) -> tuple[Verdict, ...]:
    """:func:`kbench.analysis.sweep.verdict_table` (the one verdict engine) in words."""
    table = verdict_table(df)
    opts = df.drop_duplicates(["model", "sizes"]).set_index(["model", "sizes"])["options_label"] if len(df) else {}
    out = []
    for v in table.itertuples():
        rec, fastest, slowest = _verdict_sentences(v)
        bad = ", ".join(visible(p) for p in v.failed_parity)
        out.append(Verdict(
            model=visible(v.model), sizes=visible(v.sizes), options=opts.get((v.model, v.sizes), ""),
            recommended=visible(v.recommended) if v.recommended else DASH, median=fmt_time(v.median_s),
            margin=DASH if missing(v.margin) else f"{fmt_ratio(v.margin)} faster than {visible(v.runner_up)}",
            keras_path=visible(v.keras_best) if v.keras_best else DASH, keras_ratio=fmt_ratio(v.keras_best_ratio),
            recommend=rec, fastest=fastest, slowest=slowest, overall=_overall(v),
            excluded=f"Left out because they failed parity: {bad}." if bad else "",
        ))  # fmt: skip
    return tuple(out)


# -- sweeps: crossover and fit -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitRow:
    path: str
    crossover: str
    overhead: str
    gflops: str
    vs_smallest: str
    fit_err: str


@dataclass(frozen=True)
class SweepTable:
    """Along one swept size (the others fixed): each path's crossover against NumPy and its fitted cost."""

    model: str
    fixed: str
    swept: str
    range: str
    rows: tuple[FitRow, ...]

    @property
    def title(self) -> str:
        return f"{self.model}{' · ' + self.fixed if self.fixed else ''}, {self.swept} {self.range}"

    @property
    def smallest(self) -> str:
        return f"{self.swept}={self.range.split('..')[0]}"


def crossover_text(r: Any) -> str:
    """``"≈ 181 [150–210] (Keras faster above)"`` or ``"never; closest 4.32× at 1024"``."""
    if missing(r["crossover"]):
        return f"never; closest {fmt_ratio(r['nearest_ratio'])} at {r['nearest_at']}"
    side = "Keras faster above" if r["direction"] == "keras_above" else "Keras faster below"
    extra = f", {int(r['crossings'])} crossings" if r["crossings"] > 1 else ""
    return f"≈ {r['crossover']:.3g} [{r['crossover_low']:.3g}–{r['crossover_high']:.3g}] ({side}{extra})"


def _fit_row(path: str, cross: Any, fit: Any) -> FitRow:
    return FitRow(
        path=visible(path), crossover=DASH if cross is None else crossover_text(cross),
        overhead=DASH if fit is None else fmt_time(fit["overhead_s"]),
        gflops=DASH if fit is None else fmt_rate(fit["throughput_gflops"]),
        vs_smallest=DASH if fit is None else fmt_ratio(fit["overhead_vs_smallest"]),
        fit_err=DASH if fit is None else fmt_pct(fit["fit_median_rel_err"]),
    )  # fmt: skip


def sweep_tables(p: DisplayFrame) -> tuple[SweepTable, ...]:
    if p.cross.empty:
        return ()
    out = []
    for (model, swept, fixed), g in p.cross.groupby(["model", "swept", "fixed"], sort=False):
        fits = p.fits[(p.fits["model"] == model) & (p.fits["fixed"] == fixed)] if not p.fits.empty else p.fits
        fit_of = {f["path"]: f for _, f in fits.iterrows()}
        rows = [_fit_row(BASELINE, None, fit_of.get(BASELINE))]
        rows += [_fit_row(r["path"], r, fit_of.get(r["path"])) for _, r in g.iterrows()]
        out.append(SweepTable(visible(model), visible(fixed), visible(swept), g["range"].iloc[0], tuple(rows)))
    return tuple(out)


# -- parity --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParityRow:
    """One (model, path) over all its cells: worst errors, the tolerance, which cells failed."""

    model: str
    path: str
    ok: bool
    failed: str
    abs_err: str
    rel_err: str
    twin_err: str
    tol: str
    message: str


def parity_rows(df: pd.DataFrame) -> tuple[ParityRow, ...]:
    """Failures first."""
    rows = []
    for (model, path), g in df.groupby(["model", "path"], sort=False):
        failed = g[~g["parity_ok"].astype(bool)]
        tols = sorted(set(g["parity_tol"].dropna().round(12)))
        tol = " – ".join(fmt_err(t) for t in (tols[0], tols[-1])) if len(tols) > 1 else fmt_err(next(iter(tols), None))
        messages = "; ".join(m for m in failed["parity_message"].dropna().astype(str) if m)
        cells = f" ({', '.join(visible(s) for s in failed['sizes'])})" if len(failed) else ""
        rows.append(ParityRow(
            model=visible(model), path=visible(path), ok=failed.empty, failed=f"{len(failed)}/{len(g)}{cells}",
            abs_err=fmt_err(g["parity_max_abs_err"].max()), rel_err=fmt_err(g["parity_max_rel_err"].max()),
            twin_err=fmt_err(g["parity_twin_max_abs_err"].max()), tol=tol, message=visible(messages[:300]),
        ))  # fmt: skip
    return tuple(sorted(rows, key=lambda r: r.ok))


def parity_failure_lines(df: pd.DataFrame) -> tuple[str, ...]:
    bad = df[~df["parity_ok"].astype(bool)]
    return tuple(f"parity FAILED: {where(r)} {visible(r['dtype'])}: {visible(r['parity_message'])}"
                 for _, r in bad.iterrows())  # fmt: skip


# -- the whole view ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Presentation:
    machine: tuple[str, ...] = ()
    cells: tuple[CellTable, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    sweeps: tuple[SweepTable, ...] = ()
    headlines: tuple[str, ...] = ()
    parity: tuple[ParityRow, ...] = ()
    parity_failures: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    peak: str = ""
    digest: tuple[str, ...] = ()
    details: tuple[Detail, ...] = ()
    models: tuple[ModelInfo, ...] = field(default_factory=tuple)
    breakdowns: tuple[Breakdown, ...] = ()  # where the time goes: one per cell, aligned with ``cells``
    latency: tuple[LatencyTable, ...] = ()  # single calls (kbench.present.latency): one per cell that has them
    screen: Screen = field(default_factory=Screen)  # the default terminal view: one grid per model, short verdicts
    precision: str = ""  # the precision the medians reached, in one line
    time_plan: str = ""  # what the default run's time goal trimmed, in one line; empty when nothing
    warnings: tuple[str, ...] = ()  # what the default view warns about (kbench.present.run_warnings.warnings)
    notes: tuple[str, ...] = ()  # stability counts for --details
    latency_asked: bool = False  # the run asked for single calls after gaps or at a rate (--gap, --rate)


def _latency_asked(meta: Mapping[str, Any]) -> bool:
    plan = meta.get("plan")
    return bool(plan.get("gaps") or plan.get("rate")) if isinstance(plan, Mapping) else False


def build(p: DisplayFrame, meta: Mapping[str, Any]) -> Presentation:
    """Everything shown about a run, from its prepared results and its meta (``run.json``)."""
    df = p.results
    return Presentation(
        machine=tuple(visible(line) for line in meta.get("machine") or ()),
        cells=cell_tables(df),
        breakdowns=cell_breakdowns(df, CELL_KEYS),
        latency=latency_tables(df, CELL_KEYS),
        verdicts=verdicts(df),
        sweeps=sweep_tables(p),
        headlines=tuple(visible(h) for h in headlines(df, p.cross)),
        parity=parity_rows(df),
        parity_failures=parity_failure_lines(df),
        imports=import_lines(meta),
        peak=peak_line(meta.get("peak")),
        digest=digest(df, meta),
        details=details(df, meta),
        models=model_infos(df, meta),
        screen=screen(df, p.cross),
        precision=precision(df),
        time_plan=time_plan(meta),
        warnings=warnings(df, meta),
        notes=notes(df, meta),
        latency_asked=_latency_asked(meta),
    )
