"""Terminal rendering: the presentation model (:mod:`kbench.present.presentation`) laid out as rich renderables. Nothing here
prints and nothing here computes a figure.

Every string that reaches rich is a :class:`rich.text.Text` (titles, cells and lines alike), so nothing from a model
file, an option, a size name, a path or the environment is ever parsed as markup; :mod:`kbench.present.presentation` has already
spelled out its control characters, so an ANSI escape is shown, not interpreted.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import pandas as pd
from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from kbench.present import presentation
from kbench.present.decompose import Breakdown
from kbench.core.fmt import clip, visible
from kbench.backends import BACKENDS
from kbench.measure.callpaths import PATHS
from kbench.present.presentation import Presentation, by_backend  # noqa: F401  (by_backend: kept importable from here)
from kbench.present.screen import Grid, GridCell
from kbench.model.spec import ModelSpec

VALUE_LIMIT = 80  # characters of one option value shown in the terminal (the report shows all of it)
TITLE_LIMIT = 1000  # characters of a whole title or line from a model file
OK, FAIL = Text("✓", style="green"), Text("✗ FAIL", style="bold red")
HINT = "more (where the time goes, single calls, cold start): the report, or --details"


def view(results: pd.DataFrame, meta: dict) -> Presentation:
    """The presentation of a run, built once."""
    return presentation.build(presentation.prepare(results), meta)


def run_view(results: pd.DataFrame, meta: dict, details: bool = False, width: int = 80) -> list[RenderableType]:
    """What ``kbench run`` shows about its results. By default one screen: per model a grid of paths by sizes
    (chunked to ``width`` columns), single calls only when the run asked for them (``--gap``, ``--rate``), then the
    verdicts, the precision reached and the warnings a user can act on. With ``details``: the machine check, one
    table per cell with where the time goes, the sweep tables, single calls, imports and peak, then the same ending
    with the stability notes. Print each item with ``soft_wrap=True``."""
    p = view(results, meta)
    if details:
        body = [*lines(p.machine), *with_breakdowns(p, results_tables(p)), *sweep_tables(p), *latency_view(p),
                *lines([*p.imports, *([p.peak] if p.peak else [])])]  # fmt: skip
        return [*body, *lines(ending(p, details=True))]
    body = [t for g in p.screen.grids for t in grid_tables(g, width)]
    body += latency_view(p) if p.latency_asked else []
    return [*body, *lines(ending(p, details=False))]


def ending(p: Presentation, details: bool) -> list[str]:
    """After the tables: the verdicts, the precision reached, then (``--details``) the stability notes, the
    warnings, and by default where the rest is."""
    out = [*p.screen.verdicts, *(line for line in (p.precision, p.time_plan) if line)]
    if details:
        headlines = [h for h in p.headlines if h not in p.screen.verdicts]
        return [*headlines, *out, *p.notes, *(w for w in p.warnings if not w.startswith("warning: machine:"))]
    return [*out, *p.warnings, HINT]


def parity_view(results: pd.DataFrame, meta: dict | None = None) -> list[RenderableType]:
    """What ``kbench parity`` shows: one parity table per cell."""
    return parity_tables(view(results, meta or {}))


def lines(texts: Iterable[str]) -> list[Text]:
    """Plain lines as Text: shown as they are, never parsed as markup."""
    return [Text(t) for t in texts]


def _table(title: str) -> Table:
    return Table(title=Text(clip(title, TITLE_LIMIT)), title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 pad_edge=False)  # fmt: skip


def _columns(t: Table, columns: Iterable[tuple[str, str]], no_wrap: bool = True) -> None:
    for name, justify in columns:
        t.add_column(Text(name), justify=justify, no_wrap=no_wrap)  # type: ignore[arg-type]


def results_tables(p: Presentation) -> list[Table]:
    """One table per cell: median (IQR), ratio to NumPy, parity, first-call and retrace cost per path."""
    tables = []
    for cell in p.cells:
        t = _table(cell.title(VALUE_LIMIT))
        _columns(t, (("path", "left"), ("median (IQR)", "right"), ("×NumPy", "right"), ("ok", "left"),
                     ("1st call", "right"), ("retrace", "right"), ("n×loops", "right")))  # fmt: skip
        for r in cell.rows:
            t.add_row(Text(clip(r.path, 40)), Text(r.median), Text(r.ratio, style="dim" if r.baseline else ""),
                      OK if r.ok else FAIL, Text(r.first_call), Text(r.retrace), Text(r.samples),
                      style=None if r.ok else "red")  # fmt: skip
        tables.append(t)
    return tables


def _grid_text(c: GridCell | None, widths: tuple[int, int], baseline: bool) -> Text:
    if c is None:
        return Text("—")
    t = Text(f"{c.median:>{widths[0]}} ")
    t.append(f"{c.ratio:>{widths[1]}}", style="dim" if baseline else "")
    t.append(" ✓" if c.ok else " ✗", style="green" if c.ok else "bold red")
    return t


def _chunks(g: Grid, widths: list[tuple[int, int]], width: int) -> list[list[int]]:
    """The grid's columns in groups that fit ``width`` characters (at least one column a group)."""
    room = width - max([len("path"), *(min(len(r.path), 40) for r in g.rows)])
    chunks: list[list[int]] = [[]]
    used = 0
    for i, (name, (wm, wr)) in enumerate(zip(g.columns, widths)):
        need = max(len(name), wm + wr + 3) + 2
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(i)
        used += need
    return chunks


def grid_tables(g: Grid, width: int = 80) -> list[Table]:
    """One model's grid: paths as rows, sizes as columns, each cell ``median ×NumPy ✓``; split into several tables
    when its columns do not fit ``width``."""
    cols = range(len(g.columns))
    widths = [(max((len(r.cells[i].median) for r in g.rows if r.cells[i]), default=1),
               max((len(r.cells[i].ratio) for r in g.rows if r.cells[i]), default=1)) for i in cols]  # fmt: skip
    tables = []
    for chunk in _chunks(g, widths, width):
        t = _table(g.title)
        _columns(t, (("path", "left"), *((g.columns[i], "right") for i in chunk)))
        for r in g.rows:
            ok = all(c is None or c.ok for c in r.cells)
            t.add_row(Text(clip(r.path, 40)), *(_grid_text(r.cells[i], widths[i], r.baseline) for i in chunk),
                      style=None if ok else "red")  # fmt: skip
        tables.append(t)
    return tables


def with_breakdowns(p: Presentation, tables: list[Table]) -> list[RenderableType]:
    """Each cell's table, followed by its "where the time goes" table and sentence when the cell has one."""
    out: list[RenderableType] = []
    for i, table in enumerate(tables):
        out.append(table)
        b = p.breakdowns[i] if i < len(p.breakdowns) else None
        if b is not None and b.rows:
            out += [breakdown_table(b), Text(b.sentence)]
    return out


def breakdown_table(b: Breakdown) -> Table:
    """Per Keras path: compute, dispatch, conversion (in + out) and framework overhead with its 95% interval, and
    the split as a bar (█ compute, ▓ dispatch, ▒ conversion, ░ overhead; the sentence under the table says the
    shares in words); the floors and NumPy's time in the title. 80 columns wide."""
    floors = " · ".join(dict.fromkeys(f"{r.path}: jit_compile=True" if r.floor == "xla" else r.floor for r in b.rows))
    t = _table(f"where the time goes (floor: {floors}; numpy {b.numpy})")
    t.padding = (0, 1, 0, 0)  # with the box's blank separator, two spaces between columns: 80 columns hold it
    _columns(t, (("path", "left"), ("compute", "right"), ("dispatch", "right"), ("conv.", "right"),
                 ("overhead", "right"), ("95% CI", "right"), ("█▓▒░", "left")))  # fmt: skip
    for r in b.rows:
        cells = (clip(r.path, 16), r.compute, r.dispatch or "—", r.conversion, r.overhead, r.overhead_ci, r.bar)
        t.add_row(*(Text(v) for v in cells))
    return t


def latency_view(p: Presentation) -> list[RenderableType]:
    """Per cell with single-call figures: a compact table (p50, p99, their ratio, the p50 over the hot loop's
    median; the p99 after each ``--gap``, or else memory), its verdict sentence, and the paths too short to time."""
    out: list[RenderableType] = []
    for lt in p.latency:
        t = _table(clip(lt.title, TITLE_LIMIT))
        extra = tuple((f"p99 @{g}", "right") for g in lt.gaps) or (("RSS · py mem", "right"),)
        extra += ((f"p99 @{lt.rate}", "right"),) if lt.rate else ()
        _columns(t, (("path", "left"), ("p50", "right"), ("p99", "right"), ("p99/p50", "right"),
                     ("vs loop", "right"), *extra))  # fmt: skip
        for r in lt.rows:
            cells = (clip(r.path, 16), r.p50, r.p99, r.tail, r.loop, *(r.gaps or (r.memory,)),
                     *((r.rate,) if lt.rate else ()))  # fmt: skip
            t.add_row(*(Text(v) for v in cells))
        out += [t, *lines(x for x in (lt.sentence, lt.short) if x)]
    return out


def parity_tables(p: Presentation) -> list[Table]:
    """One table per cell: errors against the float64 reference and the NumPy twin, and the tolerance."""
    tables = []
    for cell in p.cells:
        t = _table(f"{cell.title(VALUE_LIMIT)} · tolerance {cell.tolerance} × max|ref|")
        _columns(t, (("path", "left"), ("max abs err", "left"), ("/ max|ref|", "left"), ("vs twin", "left"),
                     ("ok", "left")))  # fmt: skip
        for r in sorted(cell.rows, key=lambda r: r.ok):  # failures first
            t.add_row(Text(clip(r.path, 40)), Text(r.abs_err), Text(r.rel_err), Text(r.twin_err), OK if r.ok else FAIL)
        tables.append(t)
    return tables


def sweep_tables(p: Presentation) -> list[Table]:
    """Per sweep: each Keras path's crossover against NumPy and its fitted overhead and throughput."""
    tables = []
    for s in p.sweeps:
        t = _table(f"{s.title}: crossover against NumPy; fit of time = overhead + FLOPs / throughput")
        _columns(t, (("path", "left"), (f"NumPy = Keras at {clip(s.swept, 40)}", "left"), ("overhead", "right"),
                     ("GFLOP/s", "right"), (f"vs {clip(s.smallest, 40)}", "right"), ("fit err", "right")),
                 no_wrap=False)  # fmt: skip
        for r in s.rows:
            cells = (clip(r.path, 40), r.crossover, r.overhead, r.gflops, r.vs_smallest, r.fit_err)
            t.add_row(*(Text(v) for v in cells))
        tables.append(t)
    return tables


def parity_failure_lines(results: pd.DataFrame) -> list[str]:
    """One line per row that failed parity, with its error (print with ``markup=False``)."""
    return list(presentation.parity_failure_lines(by_backend(results)))


def _list_model(s: ModelSpec) -> list[str]:
    sizes = " ".join(f"{visible(k)}={','.join(map(str, v))}" for k, v in s.sizes.items())
    opts = " ".join(f"{visible(k)}={'|'.join(clip(visible(x), VALUE_LIMIT) for x in v)}" for k, v in s.options.items())
    return [f"  {visible(s.name):<10} {sizes}" + (f"   options: {clip(opts, TITLE_LIMIT)}" if opts else ""),
            f"  {'':<10} {clip(visible(s.summary), TITLE_LIMIT)}", f"  {'':<10} file: {visible(s.source)}"]  # fmt: skip


def list_lines(specs: Iterable[ModelSpec]) -> list[str]:
    """``kbench list``: models with sizes, defaults and options; call paths with what each timed region holds.
    Plain text with every character visible (print it without markup)."""
    lines_ = ["models (sizes list their defaults; an option's first value is its default):"]
    for s in specs:
        lines_ += _list_model(s)
    lines_ += ["", "call paths (every timed region is NumPy in -> NumPy out):"]
    for p in PATHS.values():
        lines_.append(f"  {p.name:<17} timed: {p.timed_region}")
        for backend in BACKENDS:
            impl = p.impl(backend)
            if impl is None:
                lines_.append(f"  {'':<17} {backend:<10} — (not on this backend)")
            else:
                lines_ += [f"  {'':<17} {backend:<10} runs: {impl.runs}", f"  {'':<17} {'':<10} recompiles: {impl.recompiles}"]
    return lines_


def env_lines(env: dict[str, Any]) -> list[str]:
    """The fingerprint as JSON (which spells out every control character)."""
    return json.dumps(env, indent=2, default=str).splitlines()
