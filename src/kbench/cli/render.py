"""What ``kbench run`` and ``kbench parity`` show: the progress bar while the workers run, then a run's tables and
its failures (:mod:`kbench.present.terminal` makes the tables), and how it ended; and the HTML report written after
a run. Nothing here decides an exit code (:mod:`kbench.cli.exitcodes` does)."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Any, Callable

from kbench.core import fmt
from kbench.present import terminal
from kbench.orchestrate.planning import Plan
from kbench.orchestrate.session import Interrupted, RunResult


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a service manager, `timeout`, `kill`) stops a run like Ctrl-C: finished cells are kept."""

    def handler(signum, frame):
        raise Interrupted("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def with_progress(err, plan: Plan, fn: Callable[[Callable[[Any], None]], RunResult]) -> RunResult:
    """``fn(hook)`` with a progress bar on ``err`` that ``hook`` moves: one step per cell, backend and process."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from kbench.measure import protocol

    total = len(plan.cells) * plan.processes * sum(len(plan.path_groups(b)) or 1 for b in plan.backends)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} cells"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as progress:  # fmt: skip  (piped: no bar, and no blank line left)
        task = progress.add_task(f"starting the {plan.backends[0]} worker (importing Keras and the backend)", total=total)

        def hook(p) -> None:
            event = p.event
            if isinstance(event, protocol.Phase):
                c = plan.cells[event.index]
                proc = f" {p.process + 1}/{p.processes}" if p.processes > 1 else ""
                text = f"{p.backend}{proc} · {c.model} {c.label}: {event.phase}"
                progress.update(task, description=escape(text))  # model names and sizes are shown literally
            elif isinstance(event, (protocol.CellDone, protocol.CellSkipped)):
                progress.advance(task)

        return fn(hook)


def show_shard(err, plan: Plan) -> None:
    if plan.shard is not None:
        err.print(f"shard {plan.shard.label}: {len(plan.cells)} of the plan's {plan.shard.plan_cells} cells", markup=False)


def show_unavailable(err, plan: Plan) -> None:
    """One line per serving runtime asked for but not installed: that path is skipped, the run goes on."""
    for path, reason in plan.unavailable:
        err.print(f"kbench: path {path!r} skipped: {fmt.visible(reason)}", markup=False, soft_wrap=True)


def show_failed_exports(err, meta) -> None:
    """One line per serving runtime and reason that could not take a model (its export or load failed): the
    exporter's reason, the cells it held for; those cells went on without the path, and the exit code stays."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for u in meta.get("unavailable_paths", []):
        if "model" in u:
            by_reason.setdefault((u["path"], u["reason"]), []).append(f"{u['model']} {u['sizes']}")
    for (path, reason), cells in by_reason.items():
        where = cells[0] if len(cells) == 1 else f"{len(cells)} cells, e.g. {cells[0]}"
        err.print(f"kbench: path {path!r} left out ({fmt.visible(where)}): {fmt.visible(reason)}", markup=False,
                  style="yellow", soft_wrap=True)  # fmt: skip


def show_run(out, err, result: RunResult, started: float, report: bool, details: bool = False) -> None:
    """A timed run's tables on ``out`` (one screen; with ``details`` every table); its worker failures, cells not
    run and parity failures on ``err``; then how it ended (:func:`show_run_end`)."""
    view = terminal.run_view(result.results, result.meta, details=details, width=out.width)
    for item in view:  # rich Text and tables: nothing parsed as markup
        out.print(item, soft_wrap=True)
    for failure in result.failures:
        err.print(f"kbench: worker failure: {fmt.visible(failure)}", markup=False, style="red", soft_wrap=True)
    not_run = [f for f in result.meta.get("failed_cells", []) if f["reason"].startswith("not run")]
    if not_run:
        err.print(f"kbench: {len(not_run)} cell(s) not run: {not_run[0]['reason'].removeprefix('not run: ')}",
                  markup=False, style="red", soft_wrap=True)  # fmt: skip
    show_failed_exports(err, result.meta)
    for line in terminal.parity_failure_lines(result.results):
        err.print(f"kbench: {line}", style="bold red", markup=False, soft_wrap=True)
    show_run_end(out, err, result, started, report)


def show_run_end(out, err, result: RunResult, started: float, report: bool) -> None:
    """How a timed run ended: interrupted, nothing measured, or where its results (and, with ``report``, its HTML
    report, written now) are."""
    if result.interrupted:
        done = result.results["sizes"].nunique() if not result.results.empty else 0
        if result.run_dir is not None and report:
            write_report(result.run_dir)
        where = f"kept in {result.run_dir} (report marked partial)" if result.run_dir else "none had finished"
        err.print(f"kbench: interrupted ({result.signal}); {done} finished cell(s) {where}", markup=False, soft_wrap=True)
    elif result.results.empty and result.meta.get("skipped"):
        err.print("kbench: no cell was measured: every cell was skipped (see above); raise --budget", style="red")
    elif result.run_dir is not None:
        out.print(f"results: {result.run_dir}  ({time.perf_counter() - started:.1f} s)", markup=False)
        if report:
            t = time.perf_counter()
            path = write_report(result.run_dir)
            out.print(f"report:  {path}  ({time.perf_counter() - t:.1f} s)", markup=False)


def show_parity(out, result: RunResult) -> None:
    """A parity check's tables, then its parity failures and worker failures, all on ``out``."""
    for table in terminal.parity_view(result.results, result.meta):
        out.print(table, soft_wrap=True)
    show_failed_exports(out, result.meta)
    for line in terminal.parity_failure_lines(result.results):
        out.print(f"kbench: {line}", style="bold red", markup=False, soft_wrap=True)
    for failure in result.failures:
        out.print(f"kbench: worker failure: {fmt.visible(failure)}", markup=False, style="red")


def write_report(run_dir: Path) -> Path:
    from kbench.present import report
    from kbench.store.results import load_run

    return report.write_report(load_run(run_dir))
