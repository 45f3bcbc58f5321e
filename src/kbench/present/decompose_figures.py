"""Figures of where the time goes (the columns :mod:`kbench.analysis.decompose` adds): per cell, a stacked bar per
Keras path; along a sweep, each part against the size. Drawn as :mod:`kbench.present.figures` draws, in its style and
path colours."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kbench.analysis.sweep import swept_axis
from kbench.core.fmt import fmt_time
from kbench.measure.callpaths import BASELINE
from kbench.present import seaborn_import
from kbench.present.figures import figure_style, new_figure, path_color, paths_in, text_inches, time_axis

sns = seaborn_import.load()

PARTS = ("compute", "dispatch", "conversion in", "conversion out", "overhead")
PART_COLORS = dict(zip(PARTS, sns.color_palette("deep", len(PARTS))))


def _num(d: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(d[column], errors="coerce") if column in d.columns else pd.Series(np.nan, index=d.index)


def part_widths(d: pd.DataFrame) -> dict[str, pd.Series]:
    """Each part of the rows' medians as drawn (>= 0, NaN as 0): compute as the row's ``compute_s`` says (the
    profiler's kernels where it ran, as in the terminal), dispatch the rest of the floor; where a row has no
    ``compute_s``, dispatch is its ``dispatch_s`` and compute the rest (all of the floor where no dispatch was timed);
    then the conversions and the overhead (below zero: within noise, none)."""
    floor = _num(d, "floor_s").clip(lower=0).fillna(0.0)
    from_dispatch = floor - np.minimum(_num(d, "dispatch_s").clip(lower=0).fillna(0.0), floor)
    compute = np.minimum(_num(d, "compute_s").clip(lower=0), floor).fillna(from_dispatch)
    return {"compute": compute, "dispatch": floor - compute,
            "conversion in": _num(d, "conversion_in_s").clip(lower=0).fillna(0.0),
            "conversion out": _num(d, "conversion_out_s").clip(lower=0).fillna(0.0),
            "overhead": _num(d, "overhead_s").clip(lower=0).fillna(0.0)}  # fmt: skip


def has_breakdown(results: pd.DataFrame, model: str) -> bool:
    """Whether the model's rows carry the decomposition (:mod:`kbench.analysis.decompose`): runs before it have none."""
    return "floor_s" in results.columns and results.loc[results["model"] == model, "floor_s"].notna().any()


def breakdown_figure(results: pd.DataFrame, model: str, max_cells: int = 6) -> Figure:
    """Where the time goes, per cell (one panel each, the first ``max_cells`` by size): a stacked horizontal bar per
    Keras path (compute, dispatch, conversion in, conversion out, framework overhead; a negative
    overhead, within noise, is drawn as none) and NumPy's median as a bar of its own. A bar past the axis says its
    total."""
    df = results[(results["model"] == model) & results["median_s"].notna()]
    x = swept_axis(df)
    cells = df.drop_duplicates("sizes")
    cells = list((cells.sort_values(x) if x is not None else cells)["sizes"])[:max_cells]
    with figure_style():
        fig = new_figure(7.5, 0.9 + 1.9 * len(cells), left=text_inches(paths_in(df)), hspace=0.5)
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        for ax, sizes in zip(axes, cells):
            _breakdown_panel(ax, df[df["sizes"] == sizes], sizes)
        from matplotlib.patches import Patch

        axes[0].legend(handles=[Patch(color=c, label=n) for n, c in PART_COLORS.items()]
                       + [Patch(color=path_color(BASELINE), label="numpy (whole call)")],
                       loc="lower right", fontsize=7)  # fmt: skip
        return fig


def _breakdown_panel(ax, cell: pd.DataFrame, sizes: str) -> None:
    d = cell.set_index("path").reindex([p for p in paths_in(cell) if p == BASELINE or _decomposed(cell, p)])
    totals = d["median_s"].astype(float)
    limit = float(min(totals.max(), 4 * totals.median())) * 1.08
    rows = np.arange(len(d.index))
    keras = np.array([p != BASELINE for p in d.index])
    left = np.zeros(len(d.index))
    for part, values in part_widths(d).items():  # one call per part: a stacked bar per Keras path
        width = np.where(keras, values, 0.0)
        ax.barh(rows, width, left=left, color=PART_COLORS[part])
        left += width
    ax.barh(rows, np.where(keras, 0.0, totals), color=path_color(BASELINE))
    for i, total in enumerate(totals):
        if total > limit:
            ax.text(limit, i, f"→ {fmt_time(total)}", va="center", ha="right", fontsize=7, color="white")
        elif not keras[i]:  # NumPy's whole call, labelled
            ax.text(total, i, f" {fmt_time(total)}", va="center", fontsize=7)
    ax.set_yticks(rows, list(d.index))
    ax.invert_yaxis()
    ax.set_xlim(0, limit)
    time_axis(ax.xaxis, "seconds per call")
    ax.set_title(sizes, fontsize=9, loc="left")


def _decomposed(cell: pd.DataFrame, path: str) -> bool:
    rows = cell[cell["path"] == path]
    return "floor_s" in rows.columns and rows["floor_s"].notna().any()


def parts_figure(results: pd.DataFrame, model: str) -> Figure:
    """The parts against the swept size, a panel per Keras path (log-log): the path's median, its compute, its
    dispatch, its conversion (in + out), its framework overhead (each where above zero) and NumPy's median. Where
    NumPy's line crosses compute's, the backend's kernels start to win; the path wins only where NumPy's crosses the
    path's."""
    df = results[(results["model"] == model) & results["median_s"].notna()]
    x = swept_axis(df)
    paths = [p for p in paths_in(df) if p != BASELINE and _decomposed(df, p)]
    base = df[df["path"] == BASELINE].sort_values(x)
    with figure_style():
        fig = new_figure(7.5, 0.8 + 2.3 * ((len(paths) + 1) // 2), left=0.8, hspace=0.65)
        axes = fig.subplots((len(paths) + 1) // 2, 2, squeeze=False, sharex=True, sharey=True).ravel()
        for ax, path in zip(axes, paths):
            d = df[df["path"] == path].sort_values(x)
            parts = part_widths(d)
            lines = {"path": d["median_s"], "compute": parts["compute"], "dispatch": parts["dispatch"],
                     "conversion": parts["conversion in"] + parts["conversion out"], "overhead": parts["overhead"]}
            for name, y in lines.items():
                color = "black" if name == "path" else PART_COLORS.get(name, PART_COLORS["conversion in"])
                ax.plot(d[x], y.where(y > 0), marker="o", ms=3, label=name, color=color)
            ax.plot(base[x], base["median_s"], ls="--", color=path_color(BASELINE), label="numpy")
            ax.set_xscale("log")
            ax.set_yscale("log")
            time_axis(ax.yaxis, "")
            ax.set_title(path, fontsize=9, loc="left")
        for i, ax in enumerate(axes):
            if i >= len(paths):
                ax.set_visible(False)
                axes[i - 2].xaxis.set_tick_params(labelbottom=True)  # the panel above the gap shows the axis
            if i >= len(paths) - 2:
                ax.set_xlabel(x.removeprefix("size_"))
        axes[0].legend(fontsize=7)
        return fig

