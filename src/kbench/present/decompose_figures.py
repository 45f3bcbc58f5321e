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

PART_COLORS = dict(zip(("kernel", "conversion in", "conversion out", "overhead"), sns.color_palette("deep", 4)))
_PART_COLUMNS = {"kernel": "kernel_s", "conversion in": "conversion_in_s", "conversion out": "conversion_out_s",
                 "overhead": "overhead_s"}  # fmt: skip


def has_breakdown(results: pd.DataFrame, model: str) -> bool:
    """Whether the model's rows carry the decomposition (:mod:`kbench.analysis.decompose`): runs before it have none."""
    return "kernel_s" in results.columns and results.loc[results["model"] == model, "kernel_s"].notna().any()


def breakdown_figure(results: pd.DataFrame, model: str, max_cells: int = 6) -> Figure:
    """Where the time goes, per cell (one panel each, the first ``max_cells`` by size): a stacked horizontal bar per
    Keras path (kernel floor, its dispatch hatched, conversion in, conversion out, framework overhead; a negative
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
                       + [Patch(facecolor=PART_COLORS["kernel"], hatch="///", edgecolor="white",
                                label="of it, dispatch"),
                          Patch(color=path_color(BASELINE), label="numpy (whole call)")],
                       loc="lower right", fontsize=7)  # fmt: skip
        return fig


def _breakdown_panel(ax, cell: pd.DataFrame, sizes: str) -> None:
    d = cell.set_index("path").reindex([p for p in paths_in(cell) if p == BASELINE or _decomposed(cell, p)])
    totals = d["median_s"].astype(float)
    limit = float(min(totals.max(), 4 * totals.median())) * 1.08
    rows = np.arange(len(d.index))
    keras = np.array([p != BASELINE for p in d.index])
    left = np.zeros(len(d.index))
    for part, col in _PART_COLUMNS.items():  # one call per part: a stacked bar per Keras path
        width = np.where(keras, pd.to_numeric(d[col], errors="coerce").clip(lower=0).fillna(0.0), 0.0)
        ax.barh(rows, width, left=left, color=PART_COLORS[part])
        left += width
    if "dispatch_s" in d.columns:  # the backend's own per-call cost inside the floor, hatched
        dispatch = np.minimum(pd.to_numeric(d["dispatch_s"], errors="coerce"), pd.to_numeric(d["kernel_s"], errors="coerce"))
        ax.barh(rows, np.where(keras, dispatch.fillna(0.0).clip(lower=0), 0.0), fill=False, hatch="///",
                edgecolor="white", lw=0)  # fmt: skip
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
    return "kernel_s" in rows.columns and rows["kernel_s"].notna().any()


def parts_figure(results: pd.DataFrame, model: str) -> Figure:
    """The parts against the swept size, a panel per Keras path (log-log): the path's median, its kernel floor,
    its conversion (in + out), its framework overhead (where above zero) and NumPy's median. Where NumPy's line
    crosses the kernel's, the kernel starts to win; the path wins only where NumPy's crosses the path's."""
    df = results[(results["model"] == model) & results["median_s"].notna()]
    x = swept_axis(df)
    paths = [p for p in paths_in(df) if p != BASELINE and _decomposed(df, p)]
    base = df[df["path"] == BASELINE].sort_values(x)
    with figure_style():
        fig = new_figure(7.5, 0.8 + 2.3 * ((len(paths) + 1) // 2), left=0.8, hspace=0.65)
        axes = fig.subplots((len(paths) + 1) // 2, 2, squeeze=False, sharex=True, sharey=True).ravel()
        for ax, path in zip(axes, paths):
            d = df[df["path"] == path].sort_values(x)
            lines = {"path": d["median_s"], "kernel": d["kernel_s"],
                     "conversion": d["conversion_in_s"] + d["conversion_out_s"], "overhead": d["overhead_s"]}
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

