"""The HTML report: one self-contained file per run (figures as base64 PNG, styles inline, no script, no network).

Sections, in the order a reader needs them: the verdict per model and size, parity, then per model latency, ratio
to NumPy, cold start and the distribution of samples, then warnings, the command that reproduces the run and the
environment. Every string that comes from a model file, an option or the environment is autoescaped by Jinja.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from kbench.errors import ReportWriteError
from kbench.paths import BASELINE
from kbench.render import by_backend, fmt_ratio, fmt_time, import_lines
from kbench.results import RunData, atomic_write


@dataclass(frozen=True)
class Verdict:
    model: str
    sizes: str
    best_path: str
    best_ratio: float
    recommend: str
    fastest: str
    slowest: str
    excluded: str


def _times(r: float) -> str:
    return fmt_ratio(r).rstrip("×") + "×"


def verdicts(results: pd.DataFrame) -> list[Verdict]:
    """Per model and size: the fastest and slowest Keras path, each against NumPy, in one sentence each."""
    out = []
    df = results[results["median_s"].notna()]
    for (model, sizes), cell in df.groupby(["model", "sizes"], sort=False):
        ok = cell[cell["parity_ok"].astype(bool)]
        bad = sorted(set(cell["path"]) - set(ok["path"]))
        excluded = f"Left out because they failed parity: {', '.join(bad)}." if bad else ""
        keras = ok[ok["path"] != BASELINE].sort_values("median_s")
        base = cell[cell["path"] == BASELINE]
        if keras.empty or base.empty:
            continue
        b = float(base["median_s"].iloc[0])
        fast, slow = keras.iloc[0], keras.iloc[-1]
        fr, sr = float(fast["ratio_to_numpy"]), float(slow["ratio_to_numpy"])
        if fr > 1:
            recommend = (f"NumPy wins: every Keras path is slower here. If you must call Keras, use "
                         f"{fast['path']}.")  # fmt: skip
            fastest = (f"The fastest Keras path, {fast['path']}, takes {_times(fr)} NumPy's time "
                       f"({fmt_time(fast['median_s'])} against {fmt_time(b)} per call).")  # fmt: skip
        else:
            recommend = f"Keras wins: use {fast['path']}, {_times(1 / fr)} faster than the NumPy twin."
            fastest = (f"The fastest Keras path, {fast['path']}, takes {_times(fr)} NumPy's time "
                       f"({fmt_time(fast['median_s'])} against {fmt_time(b)} per call).")  # fmt: skip
        slowest = (f"The slowest, {slow['path']}, takes {_times(sr)} NumPy's time "
                   f"({fmt_time(slow['median_s'])} per call).")  # fmt: skip
        out.append(Verdict(model, sizes, str(fast["path"]), fr, recommend, fastest, slowest, excluded))
    return out


def _fmt_err(v: float) -> str:
    return "—" if pd.isna(v) else f"{v:.2e}"


def parity_rows(results: pd.DataFrame) -> list[dict]:
    """One row per (model, path): worst errors over its cells, the tolerance, and which cells failed. Failures first."""
    rows = []
    for (model, path), g in results.groupby(["model", "path"], sort=False):
        failed = g[~g["parity_ok"].astype(bool)]
        tols = sorted(set(g["parity_tol"].round(12)))
        rows.append({
            "model": model, "path": path, "ok": failed.empty,
            "failed": f"{len(failed)}/{len(g)}" + (f" ({', '.join(failed['sizes'])})" if len(failed) else ""),
            "abs_err": _fmt_err(g["parity_max_abs_err"].max()), "rel_err": _fmt_err(g["parity_max_rel_err"].max()),
            "twin_err": _fmt_err(g["parity_twin_max_abs_err"].max()),
            "tol": " – ".join(f"{t:.2e}" for t in (tols[0], tols[-1])) if len(tols) > 1 else f"{tols[0]:.2e}",
            "message": "; ".join(m for m in failed["parity_message"].dropna().astype(str) if m)[:300],
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["ok"])


def _png(fig) -> str:
    from kbench.figures import to_png

    return base64.b64encode(to_png(fig)).decode("ascii")


def model_figures(run: RunData, fits: pd.DataFrame, cross: pd.DataFrame) -> list[dict]:
    from kbench import figures
    from kbench.analysis import swept_axis

    out = []
    timed = run.results[run.results["median_s"].notna()]
    for model in dict.fromkeys(timed["model"]):
        swept = swept_axis(timed[timed["model"] == model]) is not None
        out.append({
            "name": model,
            "latency": _png(figures.latency_figure(timed, model, fits)),
            "ratio": _png(figures.ratio_heatmap(timed, model)),
            "ratio_line": _png(figures.ratio_figure(timed, model, cross)) if swept else "",
            "cold": _png(figures.cold_start_figure(timed, model)),
            "dist": _png(figures.distribution_figure(run.samples, model)),
        })  # fmt: skip
    return out


def verdict_rows(results: pd.DataFrame) -> list[dict]:
    from kbench.analysis import verdict_table

    table = verdict_table(results)
    keras = {v.sizes + v.model: v for v in verdicts(results)}
    return [{
        "model": r.model, "sizes": r.sizes, "recommended": r.recommended, "median": fmt_time(r.median_s),
        "margin": "—" if pd.isna(r.margin) else f"{_times(r.margin)} faster than {r.runner_up}",
        "keras": keras[r.sizes + r.model].best_path if r.sizes + r.model in keras else "—",
        "keras_ratio": _times(keras[r.sizes + r.model].best_ratio) if r.sizes + r.model in keras else "—",
    } for r in table.itertuples()]  # fmt: skip


def crossover_rows(cross: pd.DataFrame, fits: pd.DataFrame) -> list[dict]:
    from kbench.render import _crossover_text

    rows = []
    fit_index = {(f.model, f.fixed, f.path): f for f in fits.itertuples()} if not fits.empty else {}
    keys = [(r["model"], r["swept"], r["fixed"], r["path"], r) for _, r in cross.iterrows()]
    numpy_keys = {(m, s, f) for m, s, f, _, _ in keys}
    keys = [(m, s, f, "numpy", None) for m, s, f in numpy_keys] + keys
    for model, swept, fixed, path, r in sorted(keys, key=lambda k: (k[0], k[2], k[3] != "numpy")):
        fit = fit_index.get((model, fixed, path))
        rows.append({
            "model": model + (f" · {fixed}" if fixed else ""), "swept": swept, "path": path,
            "crossover": "—" if r is None else _crossover_text(r),
            "overhead": "—" if fit is None else fmt_time(fit.overhead_s),
            "gflops": "—" if fit is None else f"{fit.throughput_gflops:.3g} GFLOP/s",
            "vs_smallest": "—" if fit is None else f"{fit.overhead_vs_smallest:.2f}× (at {swept}={fit.smallest_size})",
            "fit_err": "—" if fit is None else f"{100 * fit.fit_median_rel_err:.0f}%",
        })  # fmt: skip
    return rows


def build_html(run: RunData) -> str:
    import jinja2

    from kbench.analysis import crossovers, fit_overhead, headlines

    template = resources.files("kbench").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    run = RunData(run.run_dir, run.meta, by_backend(run.results), by_backend(run.samples))
    meta, df = run.meta, run.results
    imports = meta.get("imports") or {}
    warnings = [f"{r.model} {r.sizes} {r.path}: {r.warnings}" for r in df.itertuples() if isinstance(r.warnings, str) and r.warnings]
    models = list(dict.fromkeys(df["model"]))
    cross, fits = crossovers(df), fit_overhead(df)
    peak = meta.get("peak")
    roofline = ""
    if peak and "gflops" in df and df["gflops"].notna().any():
        from kbench.figures import roofline_figure

        roofline = _png(roofline_figure(df, peak))
    return env.from_string(template).render(
        title=", ".join(models) or "empty run",
        run_id=meta.get("run_id", run.run_dir.name),
        started=meta.get("started", ""),
        backend=meta.get("backend", ""),
        status=meta.get("status", "unknown"),
        failures=meta.get("failures") or [],
        verdicts=verdicts(df),
        verdict_rows=verdict_rows(df),
        headlines=headlines(df),
        crossovers=crossover_rows(cross, fits) if not cross.empty else [],
        parity=parity_rows(df),
        models=model_figures(run, fits, cross),
        roofline=roofline,
        peak={k: (f"{v:.0f}" if k.startswith("gflops") else f"{v:.1f}" if k == "copy_gbps" else v)
              for k, v in (peak or {}).items()},  # fmt: skip
        skipped=[f"{s['model']} {s['sizes']}: {s['reason']}" for s in meta.get("skipped") or []],
        imports=("; ".join(import_lines(meta)) + " (the runtime's first use is paid once per worker, before its "
                 "first cell)") if imports else "Imports not recorded",  # fmt: skip
        warnings=warnings,
        command=meta.get("command", ""),
        timer=", ".join(f"{k}={v}" for k, v in (meta.get("plan", {}).get("timer") or {}).items()),
        environment=json.dumps(meta.get("env", {}), indent=2, default=str),
    )


def check_writable(path: Path) -> None:
    """Refuse a report path that cannot be written, by trying (access() says yes to root even in /proc)."""
    if path.is_dir():
        raise ReportWriteError(f"--out {path} is a folder; pass a file path such as {path / 'report.html'}")
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".kbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {path}: {exc.strerror}; pass --out to a writable file") from None


def write_report(run: RunData, out: str | Path | None = None) -> Path:
    """Render and write atomically (temporary file + rename): a failure never leaves a half report or clobbers one."""
    path = Path(out) if out is not None else run.run_dir / "report.html"
    check_writable(path)
    html = build_html(run)  # render first: a failure here leaves any existing report untouched
    try:
        atomic_write(path, html)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {path}: {exc.strerror}; pass --out to a writable file") from None
    return path
