"""``kbench merge``: join the run folders of ``kbench run --shard K/N`` jobs into one run folder (:mod:`kbench.orchestrate.merge`).

Exit codes: 0 merged (whatever the shards' own statuses: each shard's job already reported its failures); 2 bad
input (one line: an unknown run, shards of different plans, a shard twice or missing, mixed machines, ...).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import List

import typer


def register(app: typer.Typer) -> None:
    """Add the ``merge`` command to the ``kbench`` app."""
    app.command("merge")(merge)


def merge(
    runs: List[str] = typer.Argument(..., help="The shards' run folders (or run ids under --reports), e.g. shards/*."),
    out: Path = typer.Option(..., "--out", help="The merged run folder to create (it must not exist yet)."),
    reports: Path = typer.Option(Path("reports"), "--reports", help="Where run ids are looked up."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Merge shards whose machine or software fingerprints differ (recorded in run.json)."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Merge even when some of the K/N shards are missing (recorded in run.json)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report (write it later with `kbench report`)."),
) -> int:
    """Join shard run folders (`kbench run --shard K/N`) into one run folder, exactly: rows and samples as the shards
    wrote them, metadata combined."""
    from kbench.orchestrate.merge import merge_runs

    command = "kbench merge " + " ".join(shlex.quote(r) for r in runs) + f" --out {shlex.quote(str(out))}" + \
        " --allow-mixed" * allow_mixed + " --allow-partial" * allow_partial  # fmt: skip
    started = time.perf_counter()
    result = merge_runs(runs, out, reports, allow_mixed=allow_mixed, allow_partial=allow_partial, command=command)
    for line in summary_lines(result):
        typer.echo(line, err=line.startswith("kbench:"))
    typer.echo(f"results: {result.run_dir}  ({time.perf_counter() - started:.1f} s)")
    if not no_report:
        from kbench.present import report
        from kbench.store.results import load_run

        t = time.perf_counter()
        typer.echo(f"report:  {report.write_report(load_run(result.run_dir))}  ({time.perf_counter() - t:.1f} s)")
    return 0


def summary_lines(result) -> list[str]:
    """What was merged, then one warning line each for missing shards, mixed machines and unfinished shards."""
    count = result.shards[0].split("/")[1]
    lines = [f"merged {len(result.shards)} of {count} shards: {result.cells} of the plan's {result.plan_cells} cells, "
             f"{result.rows} rows, {result.samples} samples"]  # fmt: skip
    if result.missing:
        lines.append(f"kbench: partial merge: shard(s) {', '.join(result.missing)} missing (--allow-partial)")
    if result.mixed:
        lines.append(f"kbench: mixed machines (--allow-mixed): {', '.join(result.mixed[:5])}"
                     f"{' …' if len(result.mixed) > 5 else ''} differ; see merged.mixed in run.json")  # fmt: skip
    if result.meta.status != "complete":
        bad = [f"{i['shard']} {i['status']}" for i in result.meta.get("merged")["inputs"] if i["status"] != "complete"]
        lines.append(f"kbench: merged run is {result.meta.status}: shard {', '.join(bad)}")
    return lines
