"""``kbench run`` and ``kbench parity``: each reads its options into a :class:`~kbench.orchestrate.request.RunRequest`, plans
and runs it through :mod:`kbench.api`, shows the outcome (:mod:`kbench.cli.render`) and returns it, so that its exit
code comes from :func:`kbench.cli.exitcodes.exit_code`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from kbench import api
from kbench.cli import render
from kbench.cli.options import (BackendOpt, BatchOpt, DeviceOpt, DirsOpt, DtypeOpt, FeaturesOpt, ModelOpt, NOpt, OptionOpt,
                                PathOpt, PrecisionOpt, QuickOpt, ResidentOpt, RigorousOpt, RuntimeOpt, SeedOpt, SizeOpt, UnitsOpt, argv,
                                pairs, sizes)  # fmt: skip
from kbench.orchestrate.request import RunRequest
from kbench.orchestrate.session import RunResult


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``parity`` to the ``kbench`` app."""
    app.command()(run)
    app.command()(parity)


def run(
    model: List[str] = ModelOpt,
    path: Optional[List[str]] = PathOpt, runtime: Optional[List[str]] = RuntimeOpt,
    batch: Optional[str] = BatchOpt,
    features: Optional[str] = FeaturesOpt,
    units: Optional[str] = UnitsOpt,
    n: Optional[str] = NOpt,
    size: Optional[List[str]] = SizeOpt,
    option: Optional[List[str]] = OptionOpt,
    dtype: str = DtypeOpt, seed: int = SeedOpt,
    sweep: bool = typer.Option(False, "--sweep", help="Use each model's sweep preset (e.g. batch 2**0..2**14) instead of its defaults."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Whole-run budget shared by the cells, e.g. 90s, 5m; cells that would not fit are skipped."),
    cell_budget: Optional[float] = typer.Option(None, "--cell-budget", help="Seconds of steady-state sampling per cell, shared by its paths [default: 4, --quick: 1, --rigorous: 15]."),
    max_cells: int = typer.Option(200, "--max-cells", help="Refuse size grids with more cells than this."),
    cell_timeout: Optional[float] = typer.Option(None, "--cell-timeout", help="Seconds without a finished cell before the worker counts as hung and is killed [default: 120 + 20 x cell budget]."),
    force: bool = typer.Option(False, "--force", help="Run cells even when their memory estimate is over the guard."),
    min_samples: Optional[int] = typer.Option(None, "--min-samples", help="Samples per path and cell, over all the processes, before the stopping rule applies [default: 10, --quick: 5, --rigorous: 30]."),
    target_ci: Optional[float] = typer.Option(None, "--target-ci", help="Stop when the median's 95% CI is within ± this fraction [default: 0.02, --quick: 0.05, --rigorous: 0.01]."),
    quick: bool = QuickOpt, rigorous: bool = RigorousOpt,
    processes: Optional[int] = typer.Option(None, "--processes", help="Worker processes per backend, one after the other; they share each cell's budget and their spread goes into the CI [default: 3, --rigorous: 10]."),
    spawn: Optional[bool] = typer.Option(None, "--spawn/--fork", help="Start each worker process as a fresh interpreter that imports the backend itself (--spawn), or fork the workers from one process that imported it once (--fork: faster, one import) [default: --fork, --rigorous: --spawn]."),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder that receives the run folder."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report (regenerate it later with `kbench report`)."),
    details: bool = typer.Option(False, "--details", help="Also print each cell's full table (IQR, first call, retrace, samples), where the time goes, the sweep fits, single calls, imports, the machine check and peak, and the per-row stability notes."),
    backend: Optional[List[str]] = BackendOpt,
    device: str = DeviceOpt, precision: str = PrecisionOpt,
    resident: Optional[bool] = ResidentOpt,
    models_dir: Optional[List[Path]] = DirsOpt,
    shard: Optional[str] = typer.Option(None, "--shard", help="Run only the K-th of N parts of the cells, e.g. 2/4 (one CI job each; join them with `kbench merge`)."),
    gap: Optional[str] = typer.Option(None, "--gap", help="Also time single calls after each idle gap, e.g. 0,1ms,20ms (latency at low request rates)."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Also send each path Poisson arrivals at this rate, e.g. 50/s, served one at a time (latency includes queueing)."),
    threads: Optional[str] = typer.Option(None, "--threads", help="Run the workers once per thread count, e.g. 1,2 (BLAS, OpenMP, the backend's thread pools, XLA) [default: the backends' own]."),
) -> RunResult:
    """Check parity, then time every call path against the NumPy twin; write reports/<run-id>/."""
    plan = api.plan(RunRequest(
        model, path, sizes(batch, features, units, n, size), pairs(option, "--option"), dtype, seed,
        models_dirs=models_dir or (), command="kbench " + " ".join(argv() or ["run", *[f"--model={m}" for m in model]]),
        sweep=sweep, run_budget=budget, max_cells=max_cells, force=force, backends=backend, device=device, rate=rate,
        precision=precision, resident=resident, processes=processes, quick=quick, cell_budget=cell_budget,
        min_samples=min_samples, target_ci=target_ci, cell_timeout=cell_timeout, shard=shard, gaps=gap, threads=threads,
        spawn=spawn, rigorous=rigorous, runtimes=runtime))  # fmt: skip
    api.check_out_dir(out)
    stdout, err = render.console(), render.console(stderr=True)
    render.show_shard(err, plan)
    render.show_unavailable(err, plan)
    started = time.perf_counter()
    with render.sigterm_as_interrupt():
        result = render.with_progress(err, plan, lambda hook: api.run(plan, out, on_event=hook))
    render.show_run(stdout, err, result, started, report=not no_report, details=details)
    return result


def parity(
    model: List[str] = ModelOpt,
    path: Optional[List[str]] = PathOpt,
    runtime: Optional[List[str]] = RuntimeOpt,
    batch: Optional[str] = BatchOpt,
    features: Optional[str] = FeaturesOpt,
    units: Optional[str] = UnitsOpt,
    n: Optional[str] = NOpt,
    size: Optional[List[str]] = SizeOpt,
    option: Optional[List[str]] = OptionOpt,
    dtype: str = DtypeOpt,
    seed: int = SeedOpt,
    backend: Optional[List[str]] = BackendOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    resident: Optional[bool] = ResidentOpt,
    models_dir: Optional[List[Path]] = DirsOpt,
) -> RunResult:
    """Check every call path's output against the float64 reference and the NumPy twin; no timing, nothing written."""
    request = RunRequest(model, path, sizes(batch, features, units, n, size), pairs(option, "--option"), dtype, seed,
                         models_dirs=models_dir or (), mode="parity", backends=backend, device=device,
                         precision=precision, resident=resident, runtimes=runtime)  # fmt: skip
    plan = api.plan(request)
    stdout = render.console()
    render.show_unavailable(render.console(stderr=True), plan)
    result = render.with_progress(render.console(stderr=True), plan, lambda hook: api.run(plan, None, on_event=hook))
    render.show_parity(stdout, result)
    return result
