"""The presentation model: what the terminal and the HTML report show, computed once from a run's results and meta.

:func:`prepare` normalises the results (models labelled by backend when there are several, options as one
label, whatever the schema version) and runs the analysis once; :func:`build` turns that into frozen dataclasses of
display-ready strings: the cell tables, the verdicts, the crossover/fit tables, the headlines, parity, the imports,
the peak line, the machine check and the warnings digest. :mod:`kbench.present.terminal` lays them out with rich and the
report's template with Jinja; neither computes anything.

Every string that comes from a model file, an option, a size name, a path or the environment has gone through
:func:`kbench.core.fmt.visible` here (control characters spelled out). Escaping markup is the renderer's job: rich Text
objects in the terminal, Jinja's autoescape in the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from kbench.analysis.sweep import crossovers, fit_overhead, headlines, verdict_table
from kbench.measure.decompose import Breakdown, cell_breakdowns
from kbench.core.fmt import (
    DASH, as_list, fmt_err, fmt_median_iqr, fmt_pct, fmt_rate, fmt_ratio, fmt_time, missing, options_label,
    options_pairs, visible,
)  # fmt: skip
from kbench.measure.latency import LatencyTable, by_threads, latency_tables
from kbench.measure.callpaths import BASELINE
from kbench.measure.timer import UNSTABLE_IQR

CELL_KEYS = ["model", "sizes", "dtype", "options_label"]


@dataclass(frozen=True)
class Prepared:
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


def prepare(results: pd.DataFrame) -> Prepared:
    df = results.assign(
        model_name=results["model"],
        options_label=[options_label(v) for v in results["options"]] if "options" in results else "",
        dtype=results["dtype"] if "dtype" in results else "",
    )
    df = by_threads(by_backend(df))
    return Prepared(df, crossovers(df), fit_overhead(df))


def _where(row: Any) -> str:
    return f"{visible(row['path'])} at {visible(row['model'])} {visible(row['sizes'])}"


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


def _path_row(r: Any) -> PathRow:
    return PathRow(
        path=visible(r["path"]), baseline=r["path"] == BASELINE, ok=bool(r["parity_ok"]),
        median=fmt_median_iqr(r.get("median_s"), r.get("iqr_s")), ratio=fmt_ratio(r.get("ratio_to_numpy")),
        first_call=fmt_time(r.get("first_call_s")), retrace=fmt_time(r.get("retrace_s")),
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


def sweep_tables(p: Prepared) -> tuple[SweepTable, ...]:
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
    return tuple(f"parity FAILED: {_where(r)} {visible(r['dtype'])}: {visible(r['parity_message'])}"
                 for _, r in bad.iterrows())  # fmt: skip


# -- run context: imports, peak, machine check ---------------------------------------------------------------------


def import_lines(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """Per backend: the imports timed in its fresh worker and the runtime's first use."""
    init = meta.get("runtime_init_s") or {}
    return tuple(
        f"import ({visible(b)} worker): numpy {fmt_time(i.get('numpy'))}, keras+{visible(b)} "
        f"{fmt_time(i.get('backend'))}; runtime first use {fmt_time(init.get(b))}"
        for b, i in (meta.get("imports") or {}).items()
    )


def _engine_of(peak: Mapping[str, Any], dtype: str) -> str:
    """The engine that set this dtype's peak, with its library when the peak lists it: ``"tensorflow/oneDNN"``."""
    name = peak.get(f"engine_{dtype}") or peak.get("engine") or ""
    engines = peak.get("engines")
    if isinstance(engines, Mapping):  # dtype -> engine
        return visible(engines.get(dtype) or name)
    rates = [e for e in engines or () if isinstance(e, Mapping) and e.get("engine") == name]
    library = rates[0].get("library") if rates else ""
    return visible(f"{name}/{library}" if name and library else name)


def peak_line(peak: Mapping[str, Any] | None) -> str:
    """``"machine peak: float32 433 GFLOP/s (tensorflow/oneDNN), …"`` when the peak names its engines, else
    ``"machine peak (NumPy BLAS): float32 281 GFLOP/s, float64 130 GFLOP/s, copy 14.5 GB/s"``; empty without one."""
    if not peak:
        return ""
    named = any(peak.get(k) for k in ("engine", "engines", "engine_float32", "engine_float64"))
    parts = []
    for dtype in ("float32", "float64"):
        value = peak.get(f"gflops_{dtype}")
        if not missing(value):
            engine = _engine_of(peak, dtype) if named else ""
            parts.append(f"{dtype} {float(value):.0f} GFLOP/s" + (f" ({engine})" if engine else ""))
    if not missing(peak.get("copy_gbps")):
        parts.append(f"copy {float(peak['copy_gbps']):.1f} GB/s")
    return f"machine peak{'' if named else ' (NumPy BLAS)'}: {', '.join(parts)}"


# -- warnings: the digest and the details --------------------------------------------------------------------------


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
            f"worst: {_where(w)}, IQR {fmt_pct(w['iqr_s'] / w['median_s'])}")  # fmt: skip


def _ci_missed(df: pd.DataFrame, target: Any) -> str:
    rows = _flagged(df, "ci_not_reached")
    if rows.empty:
        return ""
    half = (rows["ci_high_s"] - rows["ci_low_s"]) / 2 / rows["median_s"]
    w = _worst(rows, half)
    goal = "" if missing(target) else f" ±{fmt_pct(target)}"
    return (f"warning: {len(rows)} of {len(df)} rows spent their budget before the median's 95% CI reached the "
            f"target{goal}; worst: {_where(w)}, ±{fmt_pct(half[w.name])}")  # fmt: skip


def _parity_failed(df: pd.DataFrame) -> str:
    rows = df[~df["parity_ok"].astype(bool)]
    if rows.empty:
        return ""
    w = _worst(rows, rows["parity_max_rel_err"] / rows["parity_tol"])
    return (f"warning: {len(rows)} of {len(df)} rows failed parity; worst: {_where(w)}, scaled error "
            f"{fmt_err(w['parity_max_rel_err'])} against a tolerance of {fmt_err(w['parity_tol'])}")  # fmt: skip


def _other_flags(df: pd.DataFrame) -> list[str]:
    known = {"unstable", "ci_not_reached", "parity_fail"}
    flags = dict.fromkeys(f for v in df.get("flags", ()) for f in as_list(v) if f not in known)
    out = []
    for flag in flags:
        rows = _flagged(df, flag)
        first = rows.iloc[0]
        said = " | ".join(as_list(first.get("warnings"), " | ")) or visible(flag)
        out.append(f"warning: {len(rows)} of {len(df)} rows flagged {visible(flag)}; first: {_where(first)}: "
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


# -- models --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """A model as the run knew it: its label (with the backend when several ran), the summary and file its model
    file declared (``meta["models"][name]``, when the run recorded them) and the options its cells ran with."""

    label: str
    name: str
    summary: str
    file: str
    options: str


def model_infos(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[ModelInfo, ...]:
    recorded = meta.get("models") or {}
    out = []
    for label, rows in df.groupby("model", sort=False):
        name = rows["model_name"].iloc[0]
        info = recorded.get(name) if isinstance(recorded, Mapping) else None
        info = info if isinstance(info, Mapping) else {}
        opts = " / ".join(dict.fromkeys(rows["options_label"]))
        out.append(ModelInfo(visible(label), visible(name), visible(info.get("summary", "")),
                             visible(info.get("file", "")), opts))  # fmt: skip
    return tuple(out)


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
    latency: tuple[LatencyTable, ...] = ()  # single calls (kbench.measure.latency): one per cell that has them


def build(p: Prepared, meta: Mapping[str, Any]) -> Presentation:
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
    )
