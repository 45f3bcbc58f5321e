"""``kbench history`` and ``kbench results``: the typer layer over :mod:`kbench.analysis.history`,
:mod:`kbench.analysis.trend` (figure: :mod:`kbench.present.history_plot`) and :mod:`kbench.present.formats`.

:func:`register` adds both commands to the ``kbench`` app. Every string that comes from a run (folder names, run
ids, models, options, versions) reaches the terminal as a rich ``Text`` or with ``markup=False``, its control
characters spelled out; errors are typed (:mod:`kbench.core.errors`) and the app's error handler prints them in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kbench.core.errors import BadOptionError, BadSizeError

ReportsOpt = typer.Option(Path("reports"), "--reports", help="The folder of run folders (the --out of `kbench run`).")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _int_size(flag: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadSizeError(f"{flag} {text!r} is not one whole number; history follows one cell, e.g. {flag} 32") from None
    return value


def _pairs(items: Optional[List[str]], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadOptionError(f"{flag} {item!r} is not NAME=VALUE; write e.g. {flag} "
                                 f"{'batch=32' if flag == '--size' else 'activation=relu'}")  # fmt: skip
        out.append((key.strip(), value.strip()))
    return out


def _filter(model, path, backend, dtype, batch, features, units, n, size, option, threads=None):
    from kbench.analysis.trend import CellFilter

    named = [(k, v) for k, v in (("batch", batch), ("features", features), ("units", units), ("n", n)) if v is not None]
    sizes = [(k, _int_size(f"--{k}", str(v))) for k, v in named]
    sizes += [(k, _int_size(f"--size {k}", v)) for k, v in _pairs(size, "--size")]
    return CellFilter(model, path, backend, dtype, tuple(sizes), tuple(_pairs(option, "--option")), threads)


def history(
    reports: Path = ReportsOpt,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Follow this model's cell (with the other filters)."),
    path: Optional[str] = typer.Option(None, "--path", "-p", help="The call path to follow, e.g. compiled."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="The Keras backend, when runs measured several."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 or float64, when runs measured both."),
    batch: Optional[str] = typer.Option(None, "--batch", help="The cell's batch size, e.g. 32."),
    features: Optional[str] = typer.Option(None, "--features", help="The cell's input features."),
    units: Optional[str] = typer.Option(None, "--units", help="The cell's Dense units."),
    n: Optional[str] = typer.Option(None, "--n", help="The cell's matrix size (matmul)."),
    size: Optional[List[str]] = typer.Option(None, "--size", help="Any size as NAME=VALUE, e.g. --size batch=32."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", help="A model option KEY=VALUE the cell ran with."),
    threads: Optional[int] = typer.Option(None, "--threads", help="The --threads the cell ran with, when runs measured several."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the trend figure here [default: <reports>/history-<model>-<path>.png]."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Do not draw the trend figure."),
) -> int:
    """List every run in the reports folder (oldest first); with filters, one cell's trend across runs."""
    from kbench.analysis.history import scan
    from kbench.analysis.trend import trend
    from kbench.present import history_plot

    filt = _filter(model, path, backend, dtype, batch, features, units, n, size, option, threads)
    if plot is not None and not no_plot:
        history_plot.check_plot_path(plot)
    hist = scan(reports)
    out, err = _console(), _console(stderr=True)
    if not filt.active:
        _print_list(out, hist)
        _print_skipped(err, hist.skipped)
        return 0
    t = trend(hist, filt)
    _print_trend(out, t)
    _print_skipped(err, hist.skipped + t.skipped)
    if not no_plot and len(t.points):
        target = plot or history_plot.default_plot_path(reports, t)
        history_plot.save_png(history_plot.trend_figure(t), target)
        out.print(f"figure: {target}", markup=False, soft_wrap=True)
    return 0


def _print_skipped(err, skipped) -> None:
    for s in skipped:
        err.print(f"kbench: {s.line()}", markup=False, soft_wrap=True)


def _print_list(console, hist) -> None:
    from kbench.core.fmt import visible

    if not hist.runs:
        console.print(f"no runs under {visible(hist.reports)}; run `kbench run --model dense --out "
                      f"{visible(hist.reports)}` first", markup=False, soft_wrap=True)  # fmt: skip
        return
    console.print(_list_table(hist), soft_wrap=True)


NO_WRAP = {"median", "change", "×NumPy", "proc", "rows"}  # short figures stay on one line; the rest wraps
MIN_WIDTH = {"run": 21, "started": 10, "versions": 12}


def _columns(table, columns, run_ids) -> None:
    """The columns; the run id's is as wide as the longest id (up to 40), so an id is never folded in the middle."""
    from rich.text import Text

    widths = {**MIN_WIDTH, "run": min(max([len(i) for i in run_ids] + [MIN_WIDTH["run"]]), 40)}
    for name, justify in columns:
        table.add_column(Text(name), justify=justify, no_wrap=name in NO_WRAP, overflow="fold",
                         min_width=widths.get(name))  # fmt: skip


def _versions_text(versions) -> str:
    from kbench.core.fmt import visible

    return "\n".join(visible(f"{k} {v}") for k, v in versions)


def _list_table(hist):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from kbench.core.fmt import clip, visible

    t = Table(title=Text(f"{len(hist.runs)} runs under {visible(hist.reports)} (oldest first)"), title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    _columns(t, (("run", "left"), ("started", "left"), ("models", "left"), ("backends", "left"), ("versions", "left"),
                 ("proc", "right"), ("status", "left"), ("rows", "right")),
             [visible(r.summary.run_id) for r in hist.runs])  # fmt: skip
    for run in hist.runs:
        s = run.summary
        cells = (visible(s.run_id), visible(s.started.replace("T", " ")[:16]), clip(visible(", ".join(s.models)), 60),
                 visible(", ".join(s.backends)), _versions_text(s.versions),
                 str(s.processes), visible(s.status) + (f" (v{s.source_version})" if s.source_version != 2 else ""),
                 str(s.n_rows))  # fmt: skip
        t.add_row(*(Text(c) for c in cells))
    return t


def _print_trend(console, t) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from kbench.core.fmt import DASH, fmt_ratio, fmt_time, visible

    table = Table(title=Text(f"{t.title}: {len(t.points)} runs (oldest first)"), title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    _columns(table, (("run", "left"), ("started", "left"), ("median", "right"), ("95% CI", "left"),
                     ("change", "right"), ("×NumPy", "right"), ("proc", "right"), ("versions", "left")),
             [visible(p.run_id) for p in t.points])  # fmt: skip
    for p in t.points:
        ci = DASH if p.ci_low_s is None else f"{fmt_time(p.ci_low_s)} – {fmt_time(p.ci_high_s)}"
        change = Text(DASH if p.change is None else f"{p.change:+.1%}")
        if p.significant:
            change = Text(f"{'▲' if p.change > 0 else '▼'} {p.change:+.1%}", style="bold red" if p.change > 0 else "bold green")
        table.add_row(Text(visible(p.run_id)), Text(visible(p.started.replace("T", " ")[:16])), Text(fmt_time(p.median_s)),
                      Text(ci), change, Text(fmt_ratio(p.ratio)), Text(str(p.n_processes)),
                      Text(_versions_text(p.versions)))  # fmt: skip
    console.print(table, soft_wrap=True)
    n_sig = sum(p.significant for p in t.points)
    console.print(Text(f"{n_sig} significant change{'s' * (n_sig != 1)} (▲ slower, ▼ faster); {t.rule}"), soft_wrap=True)


def results(
    run: str = typer.Argument("latest", help="A run folder, a run id under --reports, or `latest`."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, markdown (e.g. for $GITHUB_STEP_SUMMARY), json or pyperf."),
    reports: Path = ReportsOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of stdout."),
) -> int:
    """Show or export a saved run's results: a terminal table, GitHub Markdown, JSON, or pyperf's JSON format."""
    from kbench.present import formats
    from kbench.store.results import load_run

    formats.check_format(fmt)
    if out is not None:
        formats.check_writable(out)
    data = load_run(run, reports)
    if fmt == "table" and out is None:
        from kbench.present import terminal

        console = _console()
        for item in terminal.run_view(data.results, data.meta):
            console.print(item, soft_wrap=True)
        return 0
    text = formats.render(data, fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        formats.write(out, text)
        _console(stderr=True).print(f"{fmt}: {out}", markup=False, soft_wrap=True)
    return 0


def register(app: typer.Typer) -> None:
    """Add ``kbench history`` and ``kbench results`` to the ``kbench`` app."""
    app.command("history")(history)
    app.command("results")(results)
