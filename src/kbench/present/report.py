"""The HTML report: one self-contained file per run (figures as base64 SVG in ``<img>`` tags, styles inline, no
script, no network).

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
from typing import Any, Callable

import pandas as pd

from kbench.analysis.latency import by_threads
from kbench.core.errors import ReportWriteError
from kbench.core.files import atomic_write, unwritable
from kbench.core.fmt import visible
from kbench.present import presentation
from kbench.store.results import RunData


def _has_ratios(timed: pd.DataFrame, model: str) -> bool:
    return bool(timed.loc[timed["model"] == model, "ratio_to_numpy"].notna().any())


LINE_MIN_SIZES = 4
FIGURES = ("latency", "ratio", "ratio_line", "cold", "dist", "parts", "parts_sweep", "lat_ecdf", "lat_gaps")


def model_figures(p: presentation.DisplayFrame, samples: pd.DataFrame, peak: dict | None) -> tuple[list[dict], str]:
    """(per model: its figures as base64 SVG, "" where it has none; the roofline, or "")."""
    from kbench.present.figures import to_svg

    timed = p.results[p.results["median_s"].notna()]
    models = list(dict.fromkeys(timed["model"]))
    makers = {(i, name): maker for i, model in enumerate(models)
              for name, maker in _model_makers(p, timed, samples, model).items()}  # fmt: skip
    roofline = _roofline_maker(p, peak)
    if roofline is not None:
        makers[(-1, "roofline")] = roofline
    images = {key: base64.b64encode(to_svg(maker())).decode("ascii") for key, maker in makers.items()}
    out = [{"name": model, **{name: images.get((i, name), "") for name in FIGURES}} for i, model in enumerate(models)]
    return out, images.get((-1, "roofline"), "")


def _model_makers(p: presentation.DisplayFrame, timed: pd.DataFrame, samples: pd.DataFrame,
                  model: str) -> dict[str, Callable[[], Any]]:  # fmt: skip
    """The model's figures, each as a function that draws it: those its rows have data for."""
    from kbench.analysis.sweep import swept_axis
    from kbench.present import decompose_figures as dfig
    from kbench.present import figures as fig

    ratios = _has_ratios(timed, model)
    # a user model without a NumPy twin has no ratios: no ratio figures for it. The figures against the swept size
    # need LINE_MIN_SIZES sizes: below that, the heatmap and the per-cell bars already show every size.
    rows = timed[timed["model"] == model]
    axis = swept_axis(rows)
    swept = axis is not None and ratios and rows[axis].nunique() >= LINE_MIN_SIZES
    breakdown = dfig.has_breakdown(timed, model)
    makers = {
        "latency": lambda: fig.latency_figure(timed, model, p.fits),
        "ratio": lambda: fig.ratio_heatmap(timed, model),
        "ratio_line": lambda: fig.ratio_figure(timed, model, p.cross),
        "cold": lambda: fig.cold_start_figure(timed, model),
        "dist": lambda: fig.distribution_figure(samples, model),
        "parts": lambda: dfig.breakdown_figure(timed, model),
        "parts_sweep": lambda: dfig.parts_figure(timed, model),
        "lat_ecdf": lambda: fig.latency_ecdf_figure(timed, model),
        "lat_gaps": lambda: fig.gap_figure(timed, model),
    }
    wanted = {"ratio": ratios, "ratio_line": swept, "parts": breakdown, "parts_sweep": breakdown and swept,
              "lat_ecdf": fig.has_latency(timed, model), "lat_gaps": fig.has_gaps(timed, model)}
    return {name: maker for name, maker in makers.items() if wanted.get(name, True)}


def _roofline_maker(p: presentation.DisplayFrame, peak: dict | None) -> Callable[[], Any] | None:
    df = p.results
    if "gflops" in df:  # a model whose FLOPs are unknown (a user model without a NumPy twin) has no place on it
        df = df[df["gflops"] > 0]
    if not peak or "gflops" not in df or not df["gflops"].notna().any():
        return None
    from kbench.present.figures import roofline_figure

    return lambda: roofline_figure(df, peak)


def build_html(run: RunData) -> str:
    """The report as one HTML string. Every value handed to the template is text that Jinja autoescapes."""
    import jinja2

    template = resources.files("kbench").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    meta = run.meta
    prepared = presentation.prepare(run.results)
    view = presentation.build(prepared, meta)
    peak = meta.get("peak")
    figures, roofline = model_figures(prepared, by_threads(presentation.by_backend(run.samples)), peak)
    return env.from_string(template).render(
        view=view,
        title=", ".join(m.label for m in view.models) or "empty run",
        run_id=visible(meta.get("run_id", run.run_dir.name)),
        started=visible(meta.get("started", "")),
        backend=visible(meta.get("backend", "")),
        status=visible(meta.get("status", "unknown")),
        failures=[visible(f) for f in meta.get("failures") or []],
        figures=figures,
        summaries={m.label: m for m in view.models},
        roofline=roofline,
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
