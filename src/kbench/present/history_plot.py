"""The figure of ``kbench history``: one cell's median per call over runs (:class:`kbench.analysis.trend.Trend`),
with its 95% CI, each significant change from the previous run marked, and a change of versions by a dotted line;
and where it is written (``--plot``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from kbench.analysis.trend import Trend, TrendPoint
from kbench.core.errors import ReportWriteError
from kbench.core.files import atomic_write, unwritable
from kbench.core.fmt import fmt_time, visible


def trend_figure(t: Trend):
    """The median per call with its 95% CI over runs, in run order; each significant change from the previous run
    is marked (red: slower, green: faster) with its size, and a change of versions by a dotted line."""
    import matplotlib
    import matplotlib.ticker as mticker
    from kbench.present import seaborn_import

    sns = seaborn_import.load()
    from matplotlib.figure import Figure

    from kbench.present.figures import path_color

    x = list(range(len(t.points)))
    med = [p.median_s for p in t.points]
    lo = [p.median_s - (p.ci_low_s if p.ci_low_s is not None else p.median_s) for p in t.points]
    hi = [(p.ci_high_s if p.ci_high_s is not None else p.median_s) - p.median_s for p in t.points]
    with sns.axes_style("whitegrid"), matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        fig = Figure(figsize=(min(4 + 0.25 * len(x), 16), 4.2), layout="constrained")
        ax = fig.add_subplot()
        color = path_color(t.path)
        ax.errorbar(x, med, yerr=[lo, hi], fmt="none", ecolor=color, alpha=0.6, capsize=2, lw=1)
        sns.lineplot(x=x, y=med, ax=ax, color=color, marker="o", markersize=4, lw=1.2, label="median (bars: 95% CI)")
        _mark_changes(ax, t.points)
        _mark_versions(ax, t.points)
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: fmt_time(v) if v > 0 else "0"))
        ax.set_ylabel("time per call")
        step = max(1, math.ceil(len(x) / 20))
        ax.set_xticks(x[::step], [visible(p.run_id) for p in t.points][::step], rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("run (oldest first)")
        ax.set_title(f"{t.title}: median per call over runs", loc="left")
        ax.legend(loc="best", fontsize=8)
    return fig


def _mark_changes(ax, points: tuple[TrendPoint, ...]) -> None:
    for i, p in enumerate(points):
        if p.significant and p.change is not None:
            color = "#c0392b" if p.change > 0 else "#1e8449"
            ax.scatter([i], [p.median_s], s=90, facecolors="none", edgecolors=color, linewidths=2, zorder=5)
            ax.annotate(f"{p.change:+.0%}", (i, p.median_s), xytext=(0, 9), textcoords="offset points",
                        ha="center", fontsize=8, color=color)  # fmt: skip


def _mark_versions(ax, points: tuple[TrendPoint, ...]) -> None:
    for i in range(1, len(points)):
        if points[i].versions != points[i - 1].versions:
            ax.axvline(i - 0.5, color="0.5", ls=":", lw=1)
            label = " ".join(f"{k} {v}" for k, v in points[i].versions)
            ax.annotate(visible(label), (i - 0.5, 1), xycoords=("data", "axes fraction"), rotation=90, va="top",
                        ha="right", fontsize=6, color="0.4")  # fmt: skip


def save_png(fig, path: Path) -> Path:
    """The figure as a PNG at ``path``, written atomically (:func:`kbench.core.files.atomic_write`); an unwritable
    place is a :class:`~kbench.core.errors.ReportWriteError` naming the fix."""
    from kbench.present.figures import to_png

    data = to_png(fig)
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the figure to {visible(path)}: {exc.strerror}; pass --plot to a "
                               "writable file or --no-plot") from None  # fmt: skip
    return path


def check_plot_path(path: Path) -> None:
    """Refuse a --plot that is a folder or whose folder cannot be written, before any run is read."""
    why = unwritable(path)
    if why == "is a folder":
        raise ReportWriteError(f"--plot {visible(path)} is a folder; pass a file path such as "
                               f"{visible(path / 'history.png')}")  # fmt: skip
    if why is not None:
        raise ReportWriteError(f"cannot write the figure to {visible(path)}: {why}; pass --plot to a "
                               "writable file or --no-plot")  # fmt: skip


def default_plot_path(reports: Path, t: Trend) -> Path:
    """``<reports>/history-<model>-<path>.png``, with characters a file name should not hold replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._@=-]+", "_", f"history-{t.model}-{t.path}")[:120]
    return reports / f"{safe}.png"
