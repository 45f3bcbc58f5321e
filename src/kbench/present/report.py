"""The HTML report: one self-contained file per run (figures as base64 PNG, styles inline, no script, no network).

Sections, in the order a reader needs them: the verdict per model and size, parity, then per model latency, ratio
to NumPy, cold start and the distribution of samples, then warnings, the command that reproduces the run and the
environment. The content is :mod:`kbench.present.presentation`'s presentation model, the same the terminal shows; the template
only lays it out. Every string that comes from a model file, an option, a size name, a path or the environment is
autoescaped by Jinja (nothing is marked safe) and has its control characters spelled out.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import pandas as pd

from kbench.analysis.latency import by_threads
from kbench.core.errors import ReportWriteError
from kbench.core.files import atomic_write, unwritable
from kbench.core.fmt import visible
from kbench.present import presentation
from kbench.store.results import RunData


def _png(fig) -> str:
    from kbench.present.figures import to_png

    return base64.b64encode(to_png(fig)).decode("ascii")


def _has_ratios(timed: pd.DataFrame, model: str) -> bool:
    return bool(timed.loc[timed["model"] == model, "ratio_to_numpy"].notna().any())


def model_figures(p: presentation.DisplayFrame, samples: pd.DataFrame) -> list[dict]:
    """Per model (label): its figures as base64 PNG."""
    from kbench.present import figures
    from kbench.analysis.sweep import swept_axis

    out = []
    timed = p.results[p.results["median_s"].notna()]
    for model in dict.fromkeys(timed["model"]):
        # a user model without a NumPy twin has no ratios: no ratio figures for it
        swept = swept_axis(timed[timed["model"] == model]) is not None and _has_ratios(timed, model)
        out.append({
            "name": model,
            "latency": _png(figures.latency_figure(timed, model, p.fits)),
            "ratio": _png(figures.ratio_heatmap(timed, model)) if _has_ratios(timed, model) else "",
            "ratio_line": _png(figures.ratio_figure(timed, model, p.cross)) if swept else "",
            "cold": _png(figures.cold_start_figure(timed, model)),
            "dist": _png(figures.distribution_figure(samples, model)),
            **_breakdown_figures(timed, model, swept),
            **_latency_figures(timed, model),
        })  # fmt: skip
    return out


def _latency_figures(timed: pd.DataFrame, model: str) -> dict[str, str]:
    """Single calls (:mod:`kbench.measure.latency`): the ECDF per path and, with ``--gap``, latency against the idle gap;
    empty strings for a run without them."""
    from kbench.present import figures

    return {"lat_ecdf": _png(figures.latency_ecdf_figure(timed, model)) if figures.has_latency(timed, model) else "",
            "lat_gaps": _png(figures.gap_figure(timed, model)) if figures.has_gaps(timed, model) else ""}  # fmt: skip


def _breakdown_figures(timed: pd.DataFrame, model: str, swept: bool) -> dict[str, str]:
    """Where the time goes (:mod:`kbench.analysis.decompose`): the per-cell stacked bars and, for a sweep, the parts against
    the size; empty strings for a run without the decomposition."""
    from kbench.present import decompose_figures

    if not decompose_figures.has_breakdown(timed, model):
        return {"parts": "", "parts_sweep": ""}
    return {"parts": _png(decompose_figures.breakdown_figure(timed, model)),
            "parts_sweep": _png(decompose_figures.parts_figure(timed, model)) if swept else ""}  # fmt: skip


def _roofline(p: presentation.DisplayFrame, peak: dict | None) -> str:
    df = p.results
    if "gflops" in df:  # a model whose FLOPs are unknown (a user model without a NumPy twin) has no place on it
        df = df[df["gflops"] > 0]
    if not peak or "gflops" not in df or not df["gflops"].notna().any():
        return ""
    from kbench.present.figures import roofline_figure

    return _png(roofline_figure(df, peak))


def build_html(run: RunData) -> str:
    """The report as one HTML string. Every value handed to the template is text that Jinja autoescapes."""
    import jinja2

    template = resources.files("kbench").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    meta = run.meta
    prepared = presentation.prepare(run.results)
    view = presentation.build(prepared, meta)
    peak = meta.get("peak")
    return env.from_string(template).render(
        view=view,
        title=", ".join(m.label for m in view.models) or "empty run",
        run_id=visible(meta.get("run_id", run.run_dir.name)),
        started=visible(meta.get("started", "")),
        backend=visible(meta.get("backend", "")),
        status=visible(meta.get("status", "unknown")),
        failures=[visible(f) for f in meta.get("failures") or []],
        figures=model_figures(prepared, by_threads(presentation.by_backend(run.samples))),
        summaries={m.label: m for m in view.models},
        roofline=_roofline(prepared, peak),
        peak_measured=visible((peak or {}).get("measured", "")),
        imports=("; ".join(view.imports) + " (the runtime's first use is paid once per worker, before its "
                 "first cell)") if view.imports else "Imports not recorded",  # fmt: skip
        command=visible(meta.get("command", "")),
        timer=", ".join(f"{k}={v}" for k, v in ((meta.get("plan") or {}).get("timer") or {}).items()),
        environment=json.dumps(meta.get("env", {}), indent=2, default=str),
    )


def check_writable(path: Path) -> None:
    """Refuse a report path that cannot be written, by trying (access() says yes to root even in /proc)."""
    why = unwritable(path)
    if why == "is a folder":
        raise ReportWriteError(f"--out {path} is a folder; pass a file path such as {path / 'report.html'}")
    if why is not None:
        raise ReportWriteError(f"cannot write the report to {path}: {why}; pass --out to a writable file")


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
