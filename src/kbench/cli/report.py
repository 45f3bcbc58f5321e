"""``kbench report``: regenerate the HTML report of a saved run (:mod:`kbench.present.report`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``kbench`` app."""
    app.command("report")(report_)


def report_(
    run: str = typer.Argument("latest", help="A run folder, a run id under --reports, or `latest`."),
    reports: Path = typer.Option(Path("reports"), "--reports", help="Where run ids and `latest` are looked up."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the HTML here instead of <run folder>/report.html."),
) -> int:
    """Regenerate the self-contained HTML report of a saved run."""
    from kbench.present import report
    from kbench.store.results import load_run

    t = time.perf_counter()
    if out is not None:
        report.check_writable(out)  # before reading anything: a bad --out is the user's first problem
    path = report.write_report(load_run(run, reports), out)
    typer.echo(f"report: {path}  ({time.perf_counter() - t:.1f} s)")
    return 0
