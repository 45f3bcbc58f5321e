"""The HTML report of ``kbench compare``: one self-contained file (the forest figure as a base64 SVG, styles inline,
no script, no network) over :func:`kbench.analysis.compare.compare_runs`' comparison.

Every value from a run is text that Jinja autoescapes; only the package's own stylesheet is marked safe.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kbench.analysis.compare import (Comparison, RowKey, contention, env_headline, fmt_change, fmt_p, gate_lines,
                                     machine_shift, where)  # fmt: skip
from kbench.core.errors import ReportWriteError
from kbench.core.files import atomic_write
from kbench.core.fmt import visible

RATIO_TICKS = ((0.8, 0.9, 1.0, 1.1, 1.25), (0.1, 0.2, 0.5, 0.8, 1.0, 1.25, 2.0, 5.0, 10.0))  # fine, coarse
VERDICT_COLORS = {"slower": "#b3261e", "faster": "#1b7f3b", "same": "#7a8190"}
METHOD = (
    "B is the new run; every ratio is median B / median A (the medians of every sample of every worker process).",
    "The worker process is the unit of replication: samples inside one process are correlated, the process medians "
    "are the independent observations. Everything is on the log scale (timings are multiplicative).",
    "The 95% CI of the ratio is the wider of the interval from the t-test on the log process medians (Welch when "
    "both runs have two processes or more, the pooled t when one has a single process; at least 2 degrees of "
    "freedom), bounded by the range of the ratios between any process of B and any of A, and a floor from each "
    "run's within-process uncertainty (order-statistics CI of its median), combined in quadrature.",
    "p is that t-test's two-sided p-value (Mann-Whitney on the pooled samples only when both runs have one "
    "process each). A row is slower or faster only when p < 0.05 and its CI excludes 1; same otherwise.",
    "--fail-above: a row fails when it is significantly slower and its point ratio is above its path's factor.",
)


def row_label(key: RowKey, backend: bool = True) -> str:
    opts = f" · {key.options_label}" if key.options_label else ""
    opts += f" · threads={key.threads}" if key.threads else ""
    model = f"{visible(key.model)} · {visible(key.backend)}" if backend else visible(key.model)
    return f"{model} · {visible(key.path)} · {visible(key.sizes)}{opts}"


def forest_figure(c: Comparison):
    """One horizontal line per row: the ratio B/A and its 95% CI (log scale), a line at 1 and at each fail factor."""
    import matplotlib
    import matplotlib.ticker as mticker
    from matplotlib.figure import Figure

    from kbench.present import seaborn_import

    sns = seaborn_import.load()

    from kbench.core.fmt import fmt_ratio

    rows = c.rows
    df = pd.DataFrame({"y": range(len(rows)), "ratio": [r.change.ratio for r in rows],
                       "verdict": [r.change.verdict for r in rows]})  # fmt: skip
    with sns.axes_style("whitegrid"), matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        fig = Figure(figsize=(10, 1.4 + 0.26 * max(len(rows), 1)), layout="constrained")
        ax = fig.add_subplot()
        for i, r in enumerate(rows):
            ax.hlines(i, r.change.ci_low, r.change.ci_high, color=VERDICT_COLORS[r.change.verdict], lw=2)
            if r.factor is not None and r.factor != c.factors.default:
                ax.plot([r.factor], [i], marker="|", markersize=12, color="#b3261e")
        sns.scatterplot(df, x="ratio", y="y", hue="verdict", palette=VERDICT_COLORS, ax=ax, zorder=3, s=30,
                        hue_order=[v for v in VERDICT_COLORS if v in set(df["verdict"])])  # fmt: skip
        ax.axvline(1.0, color="black", lw=1)
        if c.factors.default is not None:
            ax.axvline(c.factors.default, color="#b3261e", lw=1, ls="--", label=f"fail above {c.factors.default:g}×")
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ticks = RATIO_TICKS[0] if hi / lo < 1.6 else RATIO_TICKS[1]
        ax.set_xticks([t for t in ticks if lo <= t <= hi] or [1.0])
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: fmt_ratio(v)))
        ax.xaxis.set_minor_locator(mticker.NullLocator())
        several = len({r.key.backend for r in rows}) > 1
        ax.set_yticks(range(len(rows)), [row_label(r.key, several) for r in rows], fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("median B / median A, 95% CI (log scale; right of 1: B is slower)")
        ax.set_ylabel("")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(f"B {visible(c.b.run_id)} against A {visible(c.a.run_id)}", x=0.01, ha="left")
        return fig


def _css() -> str:
    """The run report's styles (one source: templates/report.html.j2's <style> block)."""
    from importlib import resources

    text = resources.files("kbench").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    start, end = text.find("<style>"), text.find("</style>")
    return text[start + len("<style>"):end] if 0 <= start < end else ""


def build_html(c: Comparison) -> str:
    """The compare report as one HTML string: every value from a run is text that Jinja autoescapes; only the
    package's own stylesheet is marked safe."""
    import base64
    from importlib import resources

    import jinja2
    from markupsafe import Markup

    from kbench.core.fmt import fmt_time
    from kbench.present.figures import to_svg

    template = resources.files("kbench").joinpath("templates/compare.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    forest = base64.b64encode(to_svg(forest_figure(c))).decode("ascii") if c.rows else ""
    return env.from_string(template).render(
        c=c, css=Markup(_css()), forest=forest, headline=env_headline(c, limit=6), shift=machine_shift(c),
        contended=contention(c), gate=gate_lines(c),
        counts=c.counts(), visible=visible, fmt_time=fmt_time, fmt_p=fmt_p, fmt_change=fmt_change,
        label=row_label, where=where, method=METHOD,
    )  # fmt: skip


def default_html_path(c: Comparison) -> Path:
    """``<B run folder>/compare-<A id>.html`` (the id made safe for a file name)."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in c.a.run_id) or "A"
    return c.b.run_dir / f"compare-{safe}.html"


def write_html(c: Comparison, out: str | Path | None = None) -> Path:
    """Render, then write atomically: a failure never leaves half a file."""
    path = Path(out) if out is not None else default_html_path(c)
    if path.is_dir():
        raise ReportWriteError(f"--html {path} is a folder; pass a file path such as {path / 'compare.html'}")
    html = build_html(c)
    try:
        atomic_write(path, html)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the compare report to {path}: {exc.strerror}; pass --html to a "
                               "writable file or --no-html") from None  # fmt: skip
    return path
