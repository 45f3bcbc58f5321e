"""Figures: pure functions from a results (or samples) DataFrame to a matplotlib Figure, drawn with seaborn.

No global style is set, at import or later: each function styles its own figure inside ``figure_style()`` and builds a
``matplotlib.figure.Figure`` directly (no pyplot state). Every path has one fixed colour across all figures
(:data:`PATH_COLORS`). Time axes are in seconds internally and labelled in the unit that suits them (ns/µs/ms/s).
The figures of where the time goes are :mod:`kbench.present.decompose_figures`'s; they share this module's style.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from typing import Iterator

import matplotlib
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # drawn without pyplot: no backend or global figure state is touched

from kbench.analysis.sweep import swept_axis
from kbench.core.durations import fmt_gap
from kbench.core.fmt import fmt_ratio, fmt_time, visible
from kbench.measure.callpaths import BASELINE, PATHS, RUNTIMES
from kbench.present import seaborn_import

sns = seaborn_import.load()

_FRAMEWORK = [p for p in PATHS if p not in RUNTIMES]  # their colours as before the runtimes came; these apart
PATH_COLORS: dict[str, tuple[float, float, float]] = {
    **dict(zip(_FRAMEWORK, sns.color_palette("colorblind", len(_FRAMEWORK)))),
    **dict(zip(RUNTIMES, ((0.1, 0.1, 0.1), (0.0, 0.5, 0.5), (0.5, 0.5, 0.0)))),  # near-black, teal, olive
}
PHASE_COLORS = dict(zip(("import", "build", "first call", "retrace", "steady call", "export", "load"),
                        sns.color_palette("muted", 7)))  # fmt: skip


def path_color(path: str) -> tuple[float, float, float]:
    return PATH_COLORS.get(path, (0.5, 0.5, 0.5))


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The style every kbench figure is drawn in, for the duration of the ``with`` block only."""
    # text.parse_math off: a "$" in a model name or option must stay a character, never start mathtext
    with sns.axes_style("whitegrid"), matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        yield


def new_figure(width: float, height: float, left: float = 1.3, right: float = 0.25, top: float = 0.45,
               bottom: float = 0.5, hspace: float = 0.6, wspace: float = 0.3) -> Figure:
    """A figure with fixed margins, in inches. No layout engine: matplotlib's constrained layout lays every tick
    label out once more before drawing, and measured as half of a report's time."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        hspace=hspace, wspace=wspace)  # fmt: skip
    return fig


def text_inches(labels, size: float = 9.0) -> float:
    """Room for the longest of ``labels`` at ``size`` points, in inches, with a little padding (DejaVu Sans averages
    about 0.6 em per character)."""
    return 0.25 + 0.0085 * size * max((len(str(label)) for label in labels), default=0)


def legend_inches(labels, size: float = 8.0) -> float:
    """Room for a legend outside the axes, on the right: its longest label beside a line sample."""
    return 0.6 + text_inches(labels, size)


def time_axis(axis, label: str) -> None:
    """Label a time axis (seconds internally) in the unit that suits each tick."""
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: fmt_time(v) if v > 0 else "0"))
    axis.set_label_text(label)


def paths_in(df: pd.DataFrame) -> list[str]:
    """The paths in ``df``, kbench's own in their fixed order first, then any others by name."""
    present = set(df["path"])
    return [p for p in PATHS if p in present] + sorted(present - set(PATHS))


def latency_figure(results: pd.DataFrame, model: str, fits: pd.DataFrame | None = None) -> Figure:
    """Median per call against the swept size, one line per path, IQR as error bars (log-log over decades);
    with ``fits`` (:func:`kbench.analysis.sweep.fit_overhead`), each path's fitted overhead + FLOPs/throughput dashed.
    With a single cell: one bar per path."""
    df = results[(results["model"] == model) & results["median_s"].notna()]
    x = swept_axis(df)
    paths = paths_in(df)
    with figure_style():
        if x is None:
            fig = new_figure(7.5, 0.9 + 0.32 * len(paths), left=text_inches(paths), right=0.6)
            ax = fig.add_subplot()
            rows = df.set_index("path").loc[paths]
            err = np.vstack([rows["median_s"] - rows["q1_s"], rows["q3_s"] - rows["median_s"]])
            ax.barh(paths, rows["median_s"], xerr=err, color=[path_color(p) for p in paths], capsize=3)
            ax.set_xscale("log")
            ax.invert_yaxis()
            time_axis(ax.xaxis, "time per call (median; bars: IQR)")
            for i, v in enumerate(rows["median_s"]):
                ax.annotate(fmt_time(v), (v, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
            ax.set_title(f"{model} · {df['sizes'].iloc[0]}: latency per call path", loc="left")
            return fig
        fig = new_figure(7.5, 4.2, left=0.8, right=legend_inches(paths))
        ax = fig.add_subplot()
        for path in paths:
            d = df[df["path"] == path].sort_values(x)
            ax.errorbar(d[x], d["median_s"], yerr=[d["median_s"] - d["q1_s"], d["q3_s"] - d["median_s"]],
                        label=path, color=path_color(path), marker="o", ms=4, capsize=3, lw=1.5)  # fmt: skip
            f = None if fits is None or fits.empty else fits[(fits["model"] == model) & (fits["path"] == path)]
            if f is not None and len(f) == 1 and d["flops"].nunique() == len(d):
                a, gf = float(f["overhead_s"].iloc[0]), float(f["throughput_gflops"].iloc[0])
                ax.plot(d[x], a + d["flops"] / (gf * 1e9), ls="--", lw=1, color=path_color(path), alpha=0.8)
        values = df[x].astype(float)
        if values.max() / values.min() >= 10:
            ax.set_xscale("log", base=2 if x == "size_batch" else 10)
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        spread = df["median_s"].max() / df["median_s"].min()
        if spread >= 10:
            ax.set_yscale("log")
        time_axis(ax.yaxis, "time per call (median; bars: IQR)")
        ax.set_xlabel(x.removeprefix("size_"))
        ax.legend(title="path", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f"{model}: latency per call path", loc="left")
        return fig


def ratio_figure(results: pd.DataFrame, model: str, crossovers: pd.DataFrame | None = None) -> Figure:
    """Ratio to NumPy against the swept size, one line per Keras path, the 1× line, and each crossover marked."""
    df = results[(results["model"] == model) & results["ratio_to_numpy"].notna() & (results["path"] != BASELINE)]
    x = swept_axis(df)
    with figure_style():
        fig = new_figure(7.5, 4.0, left=0.8, right=legend_inches(paths_in(df)))
        ax = fig.add_subplot()
        for path in paths_in(df):
            d = df[df["path"] == path].sort_values(x)
            ax.errorbar(d[x], d["ratio_to_numpy"], yerr=[d["ratio_to_numpy"] - d["ratio_ci_low"],
                        d["ratio_ci_high"] - d["ratio_to_numpy"]], label=path, color=path_color(path), marker="o",
                        ms=3, capsize=2, lw=1.4)  # fmt: skip
        ax.axhline(1.0, color="black", lw=1, ls=":")
        if crossovers is not None and not crossovers.empty:
            for _, c in crossovers[(crossovers["model"] == model) & crossovers["crossover"].notna()].iterrows():
                ax.plot([c["crossover"]], [1.0], marker="X", ms=10, color=path_color(c["path"]), mec="black")
                ax.annotate(f"{c['path']} ≈ {c['crossover']:.3g}", (c["crossover"], 1.0), xytext=(4, 8),
                            textcoords="offset points", fontsize=8)  # fmt: skip
        ax.set_xscale("log", base=2 if x == "size_batch" else 10)
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.set_xlabel(x.removeprefix("size_"))
        ax.set_ylabel("time / NumPy time (bars: from the medians' CIs)")
        ax.legend(title="path", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f"{model}: ratio to NumPy; below the dotted 1× line Keras wins (X: crossover)", loc="left")
        return fig


def roofline_figure(results: pd.DataFrame, peak: dict) -> Figure:
    """Achieved GFLOP/s against arithmetic intensity (FLOPs per byte of inputs, weights and output), under the
    machine's roofline: min(peak GEMM GFLOP/s, intensity x copy bandwidth). One colour per path, one marker per
    model; larger markers for larger cells."""
    df = results[results["gflops"].notna()].copy()
    df["intensity"] = df["flops"] / df["bytes"]
    dtype = df["dtype"].iloc[0] if len(df) else "float32"
    gflops_peak = peak["gflops_float64" if dtype == "float64" else "gflops_float32"]
    labels = [f"{m} · {p}" for m, p in df.groupby(["model", "path"], sort=False).groups]
    with figure_style():
        right = legend_inches([*labels, "roofline (000 GFLOP/s, 00.0 GB/s)"], 7)
        fig = new_figure(5.5 + right, 4.6, left=0.8, right=right)
        ax = fig.add_subplot()
        ridge = gflops_peak / peak["copy_gbps"]  # where the roof turns flat: always in view
        lo, hi = max(min(df["intensity"].min(), ridge) / 2, 1e-3), max(df["intensity"].max(), ridge) * 2
        xs = np.geomspace(lo, hi, 200)
        ax.plot(xs, np.minimum(gflops_peak, xs * peak["copy_gbps"]), color="black", lw=1.5,
                label=f"roofline ({gflops_peak:.0f} GFLOP/s, {peak['copy_gbps']:.1f} GB/s)")  # fmt: skip
        markers = dict(zip(dict.fromkeys(df["model"]), itertools.cycle("osD^vP*Xh<>")))
        for (model, path), d in df.groupby(["model", "path"], sort=False):
            sizes = 15 + 60 * (np.log(d["flops"]) - np.log(df["flops"].min())) / max(np.log(df["flops"].max() / df["flops"].min()), 1e-9)
            ax.scatter(d["intensity"], d["gflops"], s=sizes, color=path_color(path), marker=markers[model],
                       edgecolor="black", linewidth=0.3, alpha=0.85, label=f"{model} · {path}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP per byte of inputs, weights and output)")
        ax.set_ylabel("achieved GFLOP/s (FLOPs / median)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f"roofline ({dtype}): how far each path is from what this machine can do", loc="left")
        return fig


def ratio_heatmap(results: pd.DataFrame, model: str) -> Figure:
    """Ratio of each path's median to NumPy's, path x cell, annotated; > 1 means slower than NumPy."""
    df = results[(results["model"] == model) & results["ratio_to_numpy"].notna()]
    x = swept_axis(df)
    order = df.drop_duplicates("sizes")
    if x is not None:
        order = order.sort_values(x)
    cols = list(order["sizes"])
    grid = df.pivot_table(index="path", columns="sizes", values="ratio_to_numpy").reindex(paths_in(df))[cols]
    labels = grid.map(lambda r: "" if pd.isna(r) else fmt_ratio(r))
    if x is not None:
        grid.columns = [f"{x.removeprefix('size_')}={int(v)}" for v in order[x]]
    with figure_style():
        left = text_inches(grid.index)
        fig = new_figure(max(5.5, left + 1.6 + 1.25 * len(cols)), 0.45 * len(grid) + 1.2, left=left, right=0.2,
                         bottom=0.45)  # fmt: skip
        ax = fig.add_subplot()
        log = np.log10(grid.astype(float).clip(lower=1e-3))
        vmax = max(1.0, float(np.nanmax(np.abs(log.to_numpy()))))
        sns.heatmap(log, annot=labels, fmt="", cmap="RdBu_r", center=0, vmin=-vmax, vmax=vmax, ax=ax,
                    cbar_kws={"label": "log10(time / NumPy time)"}, linewidths=0.5)  # fmt: skip
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_title(f"{model}: time / NumPy time (red: slower)", loc="left")
        return fig


def cold_start_figure(results: pd.DataFrame, model: str) -> Figure:
    """Import (NumPy for the twin, Keras with its backend for the rest), build (and a serving runtime's export and
    load), first call and retrace beside the steady per-call median, per path (log scale), for each cell (the first four by size), on one shared time axis."""
    df = results[results["model"] == model]
    x = swept_axis(df)
    cells = df.drop_duplicates("sizes")
    if x is not None:
        cells = cells.sort_values(x)
    cells = list(cells["sizes"])[:4]
    phases = {"import": "import_s", "build": "build_s", "export": "export_s", "load": "load_s",
              "first call": "first_call_s", "retrace": "retrace_s", "steady call": "median_s"}  # fmt: skip
    phases = {name: col for name, col in phases.items()  # a serving runtime's export and load: only when timed
              if col in df.columns and (col not in ("export_s", "load_s") or df[col].notna().any())}
    paths = paths_in(df)
    with figure_style():
        fig = new_figure(7.5, 1.5 + (0.5 + 0.3 * len(paths)) * len(cells), left=text_inches(paths), top=0.7,
                         bottom=0.95, hspace=0.45)  # fmt: skip
        axes = fig.subplots(len(cells), 1, squeeze=False, sharex=True)[:, 0]
        height = 0.8 / max(len(phases), 1)
        for ax, sizes in zip(axes, cells):
            d = df[df["sizes"] == sizes].set_index("path").reindex(paths)
            for j, (phase, col) in enumerate(phases.items()):
                seconds = pd.to_numeric(d[col], errors="coerce").where(lambda v: v > 0)
                ax.barh(np.arange(len(paths)) - 0.4 + (j + 0.5) * height, seconds, height=height,
                        color=PHASE_COLORS[phase], label=phase)  # fmt: skip
            ax.set_yticks(range(len(paths)), paths)
            ax.invert_yaxis()
            ax.set_xscale("log")
            time_axis(ax.xaxis, "")
            ax.set_title(sizes, loc="left", fontsize=9)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=8, ncols=5, loc="lower center", bbox_to_anchor=(0.5, 0.0))
        axes[-1].set_xlabel("time (log scale)")
        fig.suptitle(f"{model}: cold start next to the steady per-call time", x=0.01, ha="left")
        return fig


def distribution_figure(samples: pd.DataFrame, model: str) -> Figure:
    """The per-call samples per path as boxes (quartiles; whiskers to 1.5 IQR; every sample beyond them drawn as
    a point), log scale, one panel per cell (the first four), so noise and outliers are visible."""
    df = samples[samples["model"] == model]
    cells = list(dict.fromkeys(df["sizes"]))[:4]
    paths = paths_in(df)
    with figure_style():
        fig = new_figure(7.5, 1.2 + (0.55 + 0.28 * len(paths)) * len(cells), left=text_inches(paths), top=0.7,
                         hspace=0.55)
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        for ax, sizes in zip(axes, cells):
            d = df[df["sizes"] == sizes]
            order = paths_in(d)
            boxes = ax.boxplot([d.loc[d["path"] == p, "seconds"].to_numpy() for p in order], orientation="horizontal",
                               widths=0.6, patch_artist=True, flierprops={"marker": ".", "markersize": 3, "alpha": 0.6},
                               medianprops={"color": "black"})  # fmt: skip
            for box, path in zip(boxes["boxes"], order):
                box.set(facecolor=(*path_color(path), 0.45), edgecolor=path_color(path))
            ax.set_yticks(range(1, len(order) + 1), order)
            ax.invert_yaxis()
            ax.set_xscale("log")
            time_axis(ax.xaxis, "")
            ax.set_title(sizes, loc="left", fontsize=9)
        axes[-1].set_xlabel("time per call (log scale); points: samples past the whiskers")
        fig.suptitle(f"{model}: distribution of samples", x=0.01, ha="left")
        return fig


def _latency_cells(results: pd.DataFrame, model: str, column: str, max_cells: int = 4) -> pd.DataFrame:
    """The model's rows that hold ``column`` (a list of single-call figures), its first ``max_cells`` cells."""
    if column not in results.columns:
        return results.iloc[0:0]
    df = results[(results["model"] == model) & results[column].map(lambda v: isinstance(v, list) and len(v) > 0)]
    return df[df["sizes"].isin(list(dict.fromkeys(df["sizes"]))[:max_cells])]


def has_latency(results: pd.DataFrame, model: str) -> bool:
    return not _latency_cells(results, model, "lat_samples_s").empty


def has_gaps(results: pd.DataFrame, model: str) -> bool:
    return not _latency_cells(results, model, "lat_gap_s").empty


def latency_ecdf_figure(results: pd.DataFrame, model: str) -> Figure:
    """Per cell, the ECDF of every single call per path (one call between two clock reads, back to back, pooled
    over the processes), log time axis; p99 marked by a dotted line."""
    df = _latency_cells(results, model, "lat_samples_s")
    long = df[["sizes", "path", "lat_samples_s"]].explode("lat_samples_s").astype({"lat_samples_s": float})
    cells = list(dict.fromkeys(df["sizes"]))
    with figure_style():
        fig = new_figure(7.5, 1.2 + 2.1 * len(cells), left=0.8, right=legend_inches(paths_in(df)), top=0.7)
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        for ax, sizes in zip(axes, cells):
            d = long[long["sizes"] == sizes]
            order = paths_in(d)
            for path in order:  # the ECDF as a step line (seaborn's ecdfplot took a third of the report's time)
                calls = np.sort(d.loc[d["path"] == path, "lat_samples_s"].to_numpy())
                ax.step(calls, np.arange(1, len(calls) + 1) / len(calls), where="post", color=path_color(path),
                        label=path)  # fmt: skip
            ax.set_xscale("log")
            ax.axhline(0.99, color="black", lw=0.8, ls=":")
            time_axis(ax.xaxis, "")
            ax.set_ylabel("share of calls")
            ax.set_title(sizes, loc="left", fontsize=9)
        # one legend for every panel (the colours are the same in each), with every path any panel draws
        handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
        paths = [p for p in paths_in(df) if p in handles]
        axes[0].legend([handles[p] for p in paths], paths, title="path", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       fontsize=8, title_fontsize=8)  # fmt: skip
        axes[-1].set_xlabel("one call (log scale); dotted: p99")
        fig.suptitle(f"{model}: single calls, back to back", x=0.01, ha="left")
        return fig


def gap_figure(results: pd.DataFrame, model: str) -> Figure:
    """Per cell, the p50 (solid) and p99 (dashed) of a single call against the idle gap before it, per path."""
    df = _latency_cells(results, model, "lat_gap_s")
    cells = list(dict.fromkeys(df["sizes"]))
    with figure_style():
        fig = new_figure(7.5, 1.4 + 2.3 * len(cells), left=0.8, top=0.7)
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        for ax, sizes in zip(axes, cells):
            d = df[df["sizes"] == sizes]
            gaps = list(d["lat_gap_s"].iloc[0])
            for _, r in d.iterrows():
                xs = range(len(r["lat_gap_s"]))
                ax.plot(xs, r["lat_gap_p50_s"], marker="o", ms=4, color=path_color(r["path"]), label=r["path"])
                ax.plot(xs, r["lat_gap_p99_s"], marker="^", ms=4, ls="--", color=path_color(r["path"]))
            ax.set_yscale("log")
            ax.set_xticks(range(len(gaps)), [fmt_gap(g) for g in gaps])
            time_axis(ax.yaxis, "one call")
            ax.set_title(sizes, loc="left", fontsize=9)
        axes[0].legend(fontsize=8, ncols=3)
        axes[-1].set_xlabel("idle gap before the call (0: back to back); solid p50, dashed p99")
        fig.suptitle(f"{model}: latency after an idle gap", x=0.01, ha="left")
        return fig


def to_svg(fig: Figure) -> bytes:
    """The figure as SVG for an ``<img>`` (where an SVG runs no script), its log axes thinned first
    (:func:`thin_log_ticks`) and every text spelled with :func:`kbench.core.fmt.visible` (a control character is
    not allowed in XML). Text stays text, drawn in the reader's sans-serif: drawing it as glyph outlines, or
    rasterising the figure as PNG, took twice as long (measured on the default run's report: 1.0 s against 1.7 s
    for PNG)."""
    from matplotlib.text import Text

    thin_log_ticks(fig)
    for text in fig.findobj(Text):
        text.set_text(visible(text.get_text()))
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kbench", "text.parse_math": False}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def to_png(fig: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG, its log axes thinned first (:func:`thin_log_ticks`)."""
    thin_log_ticks(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def thin_log_ticks(fig: Figure) -> None:
    """Log axes get major ticks at 1, 2 and 5 per decade (1 and 3 over more than 2.5 decades, decades alone over more
    than 4, thinned to at most 9), plain numbers where matplotlib would write 10^k in mathtext (parsing it took 0.15 s
    a figure), and no minor ticks: every tick is an artist laid out on each draw, and a log axis's minor ticks were
    most of a figure's drawing time."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                lo, hi = sorted(abs(v) for v in axis.get_view_interval())
                decades = np.log10(hi / lo) if lo > 0 else np.inf
                subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0, 3.0) if decades <= 4 else (1.0,)
                axis.set_major_locator(mticker.LogLocator(subs=subs, numticks=9))
                axis.set_minor_locator(mticker.NullLocator())
                if isinstance(axis.get_major_formatter(), mticker.LogFormatter):  # 10^k as mathtext: parsed, slowly
                    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
