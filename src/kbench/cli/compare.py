"""``kbench compare A B``: the terminal view of :func:`kbench.analysis.compare.compare_runs`, its HTML report
(:mod:`kbench.present.compare_report`) and its gate (:mod:`kbench.analysis.gate`).

Exit codes: 0 no gate, or no row significantly slower by more than its ``--fail-above`` factor; 1 the gate failed;
2 bad input (an unknown run, a schema that cannot be read, a bad factor, conflicting flags), one line on stderr.
Every string from a run is shown literally: rich ``Text`` objects and ``markup=False``, never parsed as markup.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from kbench.analysis import compare as cmp
from kbench.analysis.gate import parse_factors
from kbench.core.errors import UsageError
from kbench.core.fmt import fmt_time, visible

STYLE = {"slower": "bold red", "faster": "bold green", "same": "dim"}


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _cell_title(key: cmp.RowKey, backends: int) -> str:
    model = f"{visible(key.model)} · {visible(key.backend)}" if backends > 1 else visible(key.model)
    return " · ".join(p for p in (model, visible(key.sizes), key.options_label, visible(key.dtype)) if p)


def _row_tables(c: cmp.Comparison) -> list:
    """One table per matched cell (as the run's own view), one line per path: A, B, B/A [CI], p, verdict."""
    from rich.table import Table
    from rich.text import Text

    backends = len({r.key.backend for r in c.rows})
    cells: dict[str, list[cmp.RowComparison]] = {}
    for r in c.rows:
        cells.setdefault(_cell_title(r.key, backends), []).append(r)
    out = []
    for title, rows in cells.items():
        t = Table(title=Text(title), title_justify="left", box=None, pad_edge=False)
        for name in ("path", "A median", "B median", "B/A [95% CI]", "p (Holm)", "verdict"):
            t.add_column(name, justify="left" if name in ("path", "verdict") else "right", no_wrap=name != "path")
        for r in rows:
            verdict = r.change.verdict + (f" > {r.factor:g}: FAIL" if r.fails else "")
            t.add_row(Text(visible(r.key.path)), Text(fmt_time(r.a.median)), Text(fmt_time(r.b.median)),
                      Text(cmp.fmt_change(r.change)), Text(cmp.fmt_p(r.change.p_adjusted)),
                      Text(verdict, style=STYLE[r.change.verdict]))  # fmt: skip
        out.append(t)
    return out


def _path_table(c: cmp.Comparison):
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text("Per path: geometric mean of B/A over its cells"), title_justify="left", box=None)
    several = len({p.backend for p in c.paths}) > 1
    for name in ("model", "path", "cells", "geomean B/A", "worst", "slower", "faster"):
        t.add_column(name, justify="left" if name in ("model", "path") else "right", no_wrap=name != "model")
    for p in c.paths:
        style = "bold red" if p.slower else "bold green" if p.faster else ""
        model = f"{visible(p.model)} · {visible(p.backend)}" if several else visible(p.model)
        t.add_row(Text(model), Text(visible(p.path)), Text(str(p.cells)),
                  Text(f"{p.geomean:.3g}×", style=style), Text(f"{p.worst:.3g}×"), Text(str(p.slower)),
                  Text(str(p.faster)))  # fmt: skip
    return t


def _unmatched_lines(c: cmp.Comparison) -> list[str]:
    lines = [f"only in A: {cmp.where(k)}" for k in c.only_a] + [f"only in B: {cmp.where(k)}" for k in c.only_b]
    return lines + [f"no samples in {u.missing_in}: {cmp.where(u.key)}" for u in c.untimed]


def _env_lines(c: cmp.Comparison) -> list[str]:
    if not c.env:
        return ["environment: the same (packages, BLAS, threads, CPU, cores, Python, variables)"]
    out = ["environment diff (A → B):"]
    for d in c.env:
        note = "" if d.major else "  (the CLI process's loaded BLAS; times nothing)"
        out.append(f"  {visible(d.key)}: {visible(d.a)} → {visible(d.b)}{note}")
    return out


def show(c: cmp.Comparison, console, err) -> None:
    """The whole terminal view: the environment warning first, then rows, paths, unmatched rows, the env diff."""
    head = cmp.env_headline(c)
    if head:
        console.print(head, style="bold white on red", markup=False, soft_wrap=True)
    console.print(f"A: {visible(c.a.run_id)} ({visible(c.a.started)})   B: {visible(c.b.run_id)} "
                  f"({visible(c.b.started)})", markup=False, soft_wrap=True)  # fmt: skip
    for table in _row_tables(c):
        console.print(table, soft_wrap=True)
    if c.paths:
        console.print(_path_table(c), soft_wrap=True)
    counts = c.counts()
    console.print(f"{len(c.rows)} matched rows: {counts['slower']} slower, {counts['faster']} faster, "
                  f"{counts['same']} the same (p < {c.alpha:g} and a 95% CI that excludes 1)", markup=False)  # fmt: skip
    for line in _unmatched_lines(c) + _env_lines(c):
        console.print(line, markup=False, soft_wrap=True)
    if head:
        console.print(head, style="bold red", markup=False, soft_wrap=True)
    for line in (*cmp.contention(c), cmp.machine_shift(c)):
        if line:
            console.print(f"warning: {line}", style="yellow", markup=False, soft_wrap=True)
    for line in cmp.gate_lines(c):
        err.print(f"kbench: {line}", style="bold red", markup=False, soft_wrap=True)
    if c.factors.active:
        verdict = f"FAILED: {len(c.failures)} row(s)" if c.failures else "passed"
        console.print(f"gate ({c.factors.describe()}): {verdict}", markup=False)


def compare(
    a: str = typer.Argument("previous", help="The old run: a run folder, a run id under --reports, `latest` or `previous`."),
    b: str = typer.Argument("latest", help="The new run, the same ways."),
    reports: Path = typer.Option(Path("reports"), "--reports", help="Where run ids, `latest` and `previous` are looked up."),
    fail_above: Optional[List[str]] = typer.Option(None, "--fail-above", help="Exit 1 when a row is significantly slower by more than this factor, e.g. 1.10; per path: predict=1.5 (repeatable)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the HTML report here [default: <B run folder>/compare-<A id>.html]."),
    no_html: bool = typer.Option(False, "--no-html", help="Skip the HTML report."),
) -> int:
    """Compare run B (new) with run A (old): ratio of medians with a 95% CI, p-value and verdict per matched row,
    a summary per path, unmatched rows and the environment diff; --fail-above gates on significant slowdowns."""
    if html is not None and no_html:
        raise UsageError("--html and --no-html conflict; pass one of them")
    from kbench.store.results import load_run

    factors = parse_factors(fail_above or [])
    run_a, run_b = load_run(a, reports), load_run(b, reports)
    c = cmp.compare_runs(run_a, run_b, factors)
    console, err = _console(), _console(stderr=True)
    show(c, console, err)
    if not no_html:
        from kbench.present.compare_report import write_html

        t = time.perf_counter()
        path = write_html(c, html)
        console.print(f"report:  {path}  ({time.perf_counter() - t:.1f} s)", markup=False, soft_wrap=True)
    return 1 if c.failures else 0


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the ``kbench`` app."""
    app.command("compare")(compare)
