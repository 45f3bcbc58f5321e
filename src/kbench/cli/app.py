"""The ``kbench`` command: a thin typer layer over :mod:`kbench.api`.

Exit codes: 0 all good; 1 a measurement failed (parity mismatch, worker failure); 2 bad input; 130 interrupted by
Ctrl-C (SIGINT); 143 stopped by SIGTERM (finished cells are kept either way).
Bad input always prints exactly one line on stderr and no traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

from kbench import api
from kbench.cli import merge
from kbench.core import errors, fmt
from kbench.present import terminal


class _OneLineErrors(TyperGroup):
    """Turn click's usage errors and kbench's typed errors into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            rv = super().main(args=args, prog_name=prog_name or "kbench", complete_var=complete_var,
                              standalone_mode=False, **extra)  # fmt: skip
        except typer.TyperException as exc:  # typer's (vendored click's) usage errors: bad flag, bad value
            ctx = getattr(exc, "ctx", None)
            cmd = ctx.command_path if ctx is not None else "kbench"
            _fail(f"{errors.one_line(exc.format_message())} (see `{cmd} --help`)", getattr(exc, "exit_code", 2))
        except errors.KbenchError as exc:
            _fail(errors.one_line(exc), exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            _fail("interrupted; finished cells are kept in the run folder", 130)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, code: int) -> None:
    typer.echo(f"kbench: error: {message}" if code == 2 else f"kbench: {message}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Measure what each Keras call path costs next to a hand-written NumPy twin.",
)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _pairs(items: Optional[List[str]], flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise errors.BadOptionError(f"{flag} {item!r} is not KEY=VALUE; write e.g. {flag} activation=relu")
        out[key.strip()] = value.strip()
    return out


def _sizes(batch, features, units, n, size) -> dict[str, Any]:
    sizes = {k: v for k, v in (("batch", batch), ("features", features), ("units", units), ("n", n)) if v is not None}
    sizes.update(_pairs(size, "--size"))
    return sizes


ModelOpt = typer.Option(..., "--model", "-m", help="Model name(s), repeatable or comma-separated (see `kbench list`).")
PathOpt = typer.Option(None, "--path", "-p", help="Call path(s), repeatable or comma-separated; numpy is always added.")
BatchOpt = typer.Option(None, "--batch", help="Batch sizes, e.g. 1,32,1024.")
FeaturesOpt = typer.Option(None, "--features", help="Input features, e.g. 128.")
UnitsOpt = typer.Option(None, "--units", help="Dense units, e.g. 128.")
NOpt = typer.Option(None, "--n", help="Matrix size for matmul, e.g. 100.")
SizeOpt = typer.Option(None, "--size", help="Any model size as NAME=LIST, e.g. --size batch=1,8.")
OptionOpt = typer.Option(None, "--option", "-o", help="Model option KEY=VALUE, e.g. -o activation=relu.")
DtypeOpt = typer.Option("float32", "--dtype", help="float32 or float64.")
SeedOpt = typer.Option(0, "--seed", help="Seed of the shared weights and inputs.")
DirsOpt = typer.Option(None, "--models-dir", help="Extra folder of model files (they are Python and run as code).")
BackendOpt = typer.Option(None, "--backend", "-b", help="Keras backend(s): tensorflow, jax, torch; repeatable or comma-separated [default: tensorflow].")
DeviceOpt = typer.Option("cpu", "--device", help="cpu, gpu (an error when none is visible) or auto.")
PrecisionOpt = typer.Option("default", "--precision", help="default, or highest: full float32 matmuls (no TF32 on GPUs).")
ResidentOpt = typer.Option(None, "--resident/--host-only", help="Also time device-resident paths and the transfers apart [default: on a GPU only].")


def _argv() -> list[str]:
    return sys.argv[1:] if sys.argv and Path(sys.argv[0]).name in ("kbench", "__main__.py") else []


@app.command()
def run(
    model: List[str] = ModelOpt,
    path: Optional[List[str]] = PathOpt,
    batch: Optional[str] = BatchOpt,
    features: Optional[str] = FeaturesOpt,
    units: Optional[str] = UnitsOpt,
    n: Optional[str] = NOpt,
    size: Optional[List[str]] = SizeOpt,
    option: Optional[List[str]] = OptionOpt,
    dtype: str = DtypeOpt,
    seed: int = SeedOpt,
    sweep: bool = typer.Option(False, "--sweep", help="Use each model's sweep preset (e.g. batch 2**0..2**14) instead of its defaults."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Whole-run budget shared by the cells, e.g. 90s, 5m; cells that would not fit are skipped."),
    cell_budget: Optional[float] = typer.Option(None, "--cell-budget", help="Seconds of steady-state sampling per cell, shared by its paths [default: 4, --quick: 1]."),
    max_cells: int = typer.Option(200, "--max-cells", help="Refuse size grids with more cells than this."),
    cell_timeout: Optional[float] = typer.Option(None, "--cell-timeout", help="Seconds without a finished cell before the worker counts as hung and is killed [default: 120 + 20 x cell budget]."),
    force: bool = typer.Option(False, "--force", help="Run cells even when their memory estimate is over the guard."),
    min_samples: Optional[int] = typer.Option(None, "--min-samples", help="Samples per path before the stopping rule applies [default: 10, --quick: 5]."),
    target_ci: Optional[float] = typer.Option(None, "--target-ci", help="Stop when the median's 95% CI is within ± this fraction [default: 0.02, --quick: 0.05]."),
    quick: bool = typer.Option(False, "--quick", help="A fast, rougher run: smaller budget, fewer samples, looser CI."),
    processes: Optional[int] = typer.Option(None, "--processes", help="Worker processes per backend, one after the other; they share each cell's budget and their spread goes into the CI [default: 3]."),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder that receives the run folder."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report (regenerate it later with `kbench report`)."),
    backend: Optional[List[str]] = BackendOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    resident: Optional[bool] = ResidentOpt,
    models_dir: Optional[List[Path]] = DirsOpt,
    shard: Optional[str] = typer.Option(None, "--shard", help="Run only the K-th of N parts of the cells, e.g. 2/4 (one CI job each; join them with `kbench merge`)."),
    gap: Optional[str] = typer.Option(None, "--gap", help="Also time single calls after each idle gap, e.g. 0,1ms,20ms (latency at low request rates)."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Also send each path Poisson arrivals at this rate, e.g. 50/s, served one at a time (latency includes queueing)."),
    threads: Optional[str] = typer.Option(None, "--threads", help="Run the workers once per thread count, e.g. 1,2 (BLAS, OpenMP, the backend's thread pools, XLA) [default: the backends' own]."),
) -> int:
    """Check parity, then time every call path against the NumPy twin; write reports/<run-id>/."""
    plan = api.plan(
        model, path, _sizes(batch, features, units, n, size), _pairs(option, "--option"), dtype, seed,
        models_dirs=models_dir or (), command="kbench " + " ".join(_argv() or ["run", *[f"--model={m}" for m in model]]),
        sweep=sweep, run_budget=budget, max_cells=max_cells, force=force, backends=backend, device=device,
        precision=precision, resident=resident, processes=processes, quick=quick, cell_budget=cell_budget,
        min_samples=min_samples, target_ci=target_ci, cell_timeout=cell_timeout, shard=shard, gaps=gap,
        threads=threads, rate=rate,
    )  # fmt: skip
    api.check_out_dir(out)
    console, err = _console(), _console(stderr=True)
    if plan.shard is not None:
        err.print(f"shard {plan.shard.label}: {len(plan.cells)} of the plan's {plan.shard.plan_cells} cells", markup=False)
    started = time.perf_counter()
    with _sigterm_as_interrupt():
        result = _with_progress(err, plan, lambda hook: api.run(plan, out, on_event=hook))
    for item in terminal.run_view(result.results, result.meta):  # rich Text and tables: nothing parsed as markup
        console.print(item, soft_wrap=True)
    for failure in result.failures:
        err.print(f"kbench: worker failure: {fmt.visible(failure)}", markup=False, style="red", soft_wrap=True)
    not_run = [f for f in result.meta.get("failed_cells", []) if f["reason"].startswith("not run")]
    if not_run:
        err.print(f"kbench: {len(not_run)} cell(s) not run: {not_run[0]['reason'].removeprefix('not run: ')}",
                  markup=False, style="red", soft_wrap=True)  # fmt: skip
    for line in terminal.parity_failure_lines(result.results):
        err.print(f"kbench: {line}", style="bold red", markup=False, soft_wrap=True)
    if result.interrupted:
        done = result.results["sizes"].nunique() if not result.results.empty else 0
        if result.run_dir is not None and not no_report:
            _write_report(result.run_dir)
        where = f"kept in {result.run_dir} (report marked partial)" if result.run_dir else "none had finished"
        err.print(f"kbench: interrupted ({result.signal}); {done} finished cell(s) {where}", markup=False, soft_wrap=True)
        return 143 if result.signal == "SIGTERM" else 130
    if result.results.empty and result.meta.get("skipped"):
        err.print("kbench: no cell was measured: every cell was skipped (see above); raise --budget", style="red")
        return 1
    if result.run_dir is not None:
        console.print(f"results: {result.run_dir}  ({time.perf_counter() - started:.1f} s)", markup=False)
        if not no_report:
            t = time.perf_counter()
            path = _write_report(result.run_dir)
            console.print(f"report:  {path}  ({time.perf_counter() - t:.1f} s)", markup=False)
    return 0 if result.ok else 1


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a service manager, `timeout`, `kill`) stops a run like Ctrl-C: finished cells are kept."""
    from kbench.run.session import Interrupted

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


def _write_report(run_dir: Path) -> Path:
    from kbench.present import report
    from kbench.store.results import load_run

    return report.write_report(load_run(run_dir))


def _with_progress(console, plan, fn):
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from kbench.measure import protocol

    total = len(plan.cells) * len(plan.backends) * plan.processes
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} cells"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                  transient=True) as progress:  # fmt: skip
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


@app.command()
def parity(
    model: List[str] = ModelOpt,
    path: Optional[List[str]] = PathOpt,
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
) -> int:
    """Check every call path's output against the float64 reference and the NumPy twin; no timing, nothing written."""
    plan = api.plan(model, path, _sizes(batch, features, units, n, size), _pairs(option, "--option"), dtype, seed,
                    models_dirs=models_dir or (), mode="parity", backends=backend, device=device,
                    precision=precision, resident=resident)  # fmt: skip
    console = _console()
    result = _with_progress(_console(stderr=True), plan, lambda hook: api.run(plan, None, on_event=hook))
    for table in terminal.parity_view(result.results, result.meta):
        console.print(table, soft_wrap=True)
    for line in terminal.parity_failure_lines(result.results):
        console.print(f"kbench: {line}", style="bold red", markup=False, soft_wrap=True)
    for failure in result.failures:
        console.print(f"kbench: worker failure: {fmt.visible(failure)}", markup=False, style="red")
    return 0 if result.ok else 1


@app.command("report")
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


@app.command()
def peak(refresh: bool = typer.Option(False, "--refresh", help="Measure again even when this machine is cached.")) -> int:
    """Measure (or read the cached) GEMM GFLOP/s of every engine (NumPy's BLAS, each installed backend's matmul on
    the CPU; the best is the peak) and memory copy bandwidth; show what pins NumPy's BLAS, if anything."""
    from kbench.machine import check
    from kbench.machine import peak as peak_mod

    p, cached = peak_mod.load_or_measure(refresh)
    for line in peak_mod.describe_lines(p):
        typer.echo(line)
    typer.echo(f"{'cached' if cached else 'measured'} {p.measured} for machine {p.fingerprint} ({peak_mod.cache_dir()})")
    for line in check.detail_lines(check.blas_check(p)):
        typer.echo(line)
    return 0


@app.command("list")
def list_(models_dir: Optional[List[Path]] = DirsOpt) -> int:
    """The models (with sizes, defaults and options) and the call paths (with what each timed region contains)."""
    for line in terminal.list_lines(api.list_models(models_dir or ())):
        typer.echo(line)
    return 0


@app.command()
def env(
    check: bool = typer.Option(False, "--check", help="Instead: check the machine for what makes figures wrong or noisy (BLAS pins, load, governor, cores, threads); exit 0 even with warnings."),
    backend: Optional[List[str]] = BackendOpt,
) -> int:
    """The environment fingerprint recorded with every run (starts a worker per backend to read its side)."""
    if check:
        from kbench.machine import check as machine_check, peak

        for line in machine_check.detail_lines(machine_check.check(peak.load_cached())):
            typer.echo(line)
        return 0
    for line in terminal.env_lines(api.environment(backend)):
        typer.echo(line)
    return 0


from kbench.cli import compare  # noqa: E402  (registers `kbench compare`)

compare.register(app)
from kbench.cli import history  # noqa: E402  (registers `kbench history` and `kbench results`)
history.register(app)


merge.register(app)

from kbench.cli import newmodel  # noqa: E402  (registers `kbench new-model`)
newmodel.register(app)
from kbench.cli import export  # noqa: E402  (registers `kbench export`)
export.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
