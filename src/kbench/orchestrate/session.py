"""A run session: start the worker processes of a plan one after another and handle their events, one handler each.

For each backend, ``plan.processes`` worker processes run in turn (never two at once: they would compete for the
cores). Each does its own imports and cold start and samples every cell with its share of the cell budget; the
rows of a cell are rebuilt from every process that has finished it (:mod:`kbench.orchestrate.output`) and written at once,
so a crash or Ctrl-C keeps everything finished so far. A process that fails stops its backend (the failure would
repeat); the other backends go on. What run.json says is kept in :mod:`kbench.orchestrate.record`.
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from kbench.core import errors
from kbench.measure import protocol
from kbench.measure.protocol import CellDone, CellSkipped, Done, Exited, Failed, Imported, Job, Phase, RuntimeInit, Timeout
from kbench.orchestrate.output import RunOutput
from kbench.orchestrate.planning import Plan
from kbench.orchestrate.record import RunRecord, RunStart, WorkerSkip, run_json
from kbench.orchestrate.runner import ForkServer, describe_exit, stream


@dataclass(frozen=True)
class RunResult:
    """What a run returns: its rows and samples, run.json's content, and how it ended."""

    run_dir: Path | None
    results: pd.DataFrame
    samples: pd.DataFrame
    meta: Any = field(default_factory=dict)  # RunMeta with a run folder, else run.json's object as a dict
    failures: tuple[str, ...] = ()  # worker failures that were not the user's input
    interrupted: bool = False  # Ctrl-C or SIGTERM: the finished cells are kept, the rest recorded as not run
    signal: str = ""  # what interrupted it: "Ctrl-C" or "SIGTERM"

    @property
    def parity_ok(self) -> bool:
        return bool(self.results.empty or self.results["parity_ok"].astype(bool).all())

    @property
    def ok(self) -> bool:
        return self.parity_ok and not self.failures and not self.interrupted


@dataclass(frozen=True)
class Progress:
    """What the progress hook receives: a worker event and which worker sent it."""

    backend: str
    process: int  # 0-based
    processes: int
    event: protocol.Event


@dataclass
class WorkerRun:
    """Bookkeeping of one worker process while its events arrive."""

    job: Job
    settled: set[int] = field(default_factory=set)  # cells finished, skipped or failed
    failed: bool = False
    done: bool = False


class Interrupted(KeyboardInterrupt):
    """Raised by a signal handler (SIGTERM) so the session stops like on Ctrl-C."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class RunSession:
    def __init__(self, plan: Plan, run_dir: Path | None, start: RunStart, hook: Callable[[Progress], None],
                 cell_timeout_s: float, peak: Any = None) -> None:  # fmt: skip
        self.plan, self.start, self.hook, self.timeout = plan, start, hook, cell_timeout_s
        self.record = RunRecord()
        self.output = RunOutput(plan, run_dir, peak)
        self.user_error: errors.KbenchError | None = None
        self.interrupted = ""  # the signal's name once interrupted
        self.started = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="kbench-"))
        self.overheads: dict[tuple[str, int | None], list[float]] = {}  # per worker set: cells' time outside sampling

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run every worker, write the run's end into run.json and return the result; raise the user's error (a bad
        model found by a worker) once what was finished is saved."""
        status = self._run_workers()
        meta = self._finish(status)
        if self.user_error is not None:
            raise self.user_error
        results, samples = self.output.frames()
        return RunResult(self.output.writer.run_dir if self.output.writer else None, results, samples, meta,
                         tuple(self.record.failures), bool(self.interrupted), self.interrupted)  # fmt: skip

    def _run_workers(self) -> str:
        """Run every worker; return the status: complete, failed or interrupted."""
        complete = True
        try:
            for backend in self.plan.backends:  # plan.processes per --threads setting and path group
                complete = all(self._run_threads(backend, t) for t in self.plan.thread_settings) and complete
                if self.user_error is not None:
                    break
        except KeyboardInterrupt as exc:
            self.interrupted = getattr(exc, "signal_name", "Ctrl-C")
            for backend in self.plan.backends:
                self._fail_cells(backend, self._unsettled(backend), f"not run: interrupted ({self.interrupted})")
        finally:
            self.output.keep_logs(self.tmp)
            shutil.rmtree(self.tmp, ignore_errors=True)
        return "interrupted" if self.interrupted else "complete" if complete else "failed"

    def _run_threads(self, backend: str, threads: int | None) -> bool:
        """``plan.processes`` workers per group of the backend's paths (each serving runtime apart: ``path_groups``)."""
        groups = self.plan.path_groups(backend)
        with ForkServer(backend, self.plan.device, threads) as server:
            launch = server.stream if self.plan.fork else stream
            for group in range(max(len(groups), 1)):
                for process in range(self.plan.processes):
                    seen = self.overheads.setdefault((backend, threads), [])
                    job = worker_job(self.plan, backend, process, threads, time.perf_counter() - self.started,
                                     statistics.median(seen) if seen else None, group)  # fmt: skip
                    if not self._run_worker(WorkerRun(job), launch):
                        return False
        return True

    def _run_worker(self, run: WorkerRun, launch: Callable[..., Any]) -> bool:
        """One worker process; False when the next should not start (the user's error, or a failure that repeats)."""
        job = run.job
        for event in launch(job, self.tmp / worker_log(job), self.timeout):
            self.hook(Progress(job.backend, job.slot, job.processes * len(self.plan.path_groups(job.backend)), event))
            self.handle(run, event)
        if run.failed and self.user_error is None:  # it would repeat in the next process: keep what was finished
            self._fail_cells(job.backend, self._unsettled(job.backend), f"not run: the {job.backend} worker stopped before it")
        return not run.failed and self.user_error is None

    def _finish(self, status: str) -> Any:
        """Write the run's end into run.json; return run.json's content (a RunMeta once there is a run folder)."""
        meta = run_json(self.start, self.record, status)
        if self.output.writer is None:
            return meta
        self.output.writer.finish(**meta, finished=_dt.datetime.now().isoformat(timespec="seconds"))
        return self.output.writer.meta

    # -- one handler per event -----------------------------------------------------------------------------------
    def handle(self, run: WorkerRun, event: protocol.Event) -> None:
        match event:
            case Imported():
                self.on_imported(run, event)
            case RuntimeInit():
                self.record.runtime_started(run.job.backend, event.runtime_init_s)
            case CellDone():
                self.on_cell(run, event)
            case CellSkipped():
                self.on_skip(run, event)
            case Failed():
                self.on_failed(run, event)
            case Timeout():
                self.on_timeout(run, event)
            case Done():
                run.done = True
            case Exited():
                self.on_exit(run, event)
            case Phase():
                pass

    def on_imported(self, run: WorkerRun, e: Imported) -> None:
        self.record.worker_started(run.job.backend, e.env, e.pid, e.numpy_import_s, e.backend_import_s, e.fork_server)

    def on_cell(self, run: WorkerRun, e: CellDone) -> None:
        run.settled.add(e.index)
        if e.budget_s is not None:
            self.record.cell_budgets_s.append(e.budget_s)
        if e.overhead_s is not None:
            self.overheads.setdefault((run.job.backend, run.job.threads), []).append(e.overhead_s)
        for path, reason in e.unavailable:
            self.record.path_unavailable(run.job.backend, self.plan.cells[e.index], path, reason)
        imports = self.record.imports[run.job.backend]
        self.output.add_cell(run.job, e, imports, lambda: run_json(self.start, self.record))

    def on_skip(self, run: WorkerRun, e: CellSkipped) -> None:
        run.settled.add(e.index)
        cell = self.plan.cells[e.index]
        self.record.skipped.append(WorkerSkip(cell.model, cell.label, run.job.backend, run.job.process, e.reason))
        self.output.update_meta(skipped=run_json(self.start, self.record)["skipped"])

    def on_failed(self, run: WorkerRun, e: Failed) -> None:
        if e.user:
            self.user_error = errors.from_data(e.kind, e.message, e.exit_code)
        else:
            self._worker_failed(run, e.index, e.message)

    def on_timeout(self, run: WorkerRun, e: Timeout) -> None:
        reason = f"hung: no cell finished within {e.after_s:g} s (--cell-timeout), so the worker was killed"
        self._worker_failed(run, min(e.index, len(self.plan.cells) - 1), reason)

    def on_exit(self, run: WorkerRun, e: Exited) -> None:
        if run.done or run.failed or self.user_error is not None or len(run.settled) >= len(self.plan.cells):
            return
        backend = run.job.backend
        tail = f"; its last words: {e.stderr_tail}" if e.stderr_tail else ""
        log = worker_log(run.job)
        reason = f"the {backend} worker {describe_exit(e.returncode)} (see {log}){tail}"
        self._worker_failed(run, min(set(range(len(self.plan.cells))) - run.settled), reason)

    # -- failures ------------------------------------------------------------------------------------------------
    def _worker_failed(self, run: WorkerRun, index: int, reason: str) -> None:
        cell = self.plan.cells[index]
        where = f" (process {run.job.process + 1} of {run.job.processes})" if run.job.processes > 1 else ""
        self.record.failures.append(f"{run.job.backend}: {cell.model} {cell.label}{where}: {reason}")
        self._fail_cells(run.job.backend, {index}, reason, run.job.process)
        run.settled.add(index)
        run.failed = True

    def _unsettled(self, backend: str) -> set[int]:
        """The cells of ``backend`` that no process has finished and none is recorded as failed."""
        failed = {i for i, c in enumerate(self.plan.cells) if self.record.failed(backend, c)}
        return set(range(len(self.plan.cells))) - self.output.finished(backend) - failed

    def _fail_cells(self, backend: str, indices: set[int], reason: str, process: int | None = None) -> None:
        self.record.fail_cells(backend, [self.plan.cells[i] for i in sorted(indices)], reason, process)


MIN_SAMPLES_PER_PROCESS = 3  # the least a process's median is taken over
# Over this many processes (--rigorous: 10) the extras (single calls, the retrace check, the profile) run in the first
# only, as under the time goal: their figures need no more, and each process's share of them costs it set-up of its
# own. A --rigorous run of 15 processes on 2 cores slowed to 86 GFLOP/s took 263 s so, 297 s with them spread.
FEW_PROCESSES = 3


def worker_job(plan: Plan, backend: str, process: int, threads: int | None, elapsed_s: float,
               cell_overhead_s: float | None = None, group: int = 0) -> Job:  # fmt: skip
    """Process ``process`` of ``backend`` (at ``threads``), ``elapsed_s`` into the run: its share of the cell budget,
    of the minimum samples (``--min-samples`` counts over all the processes, at least
    :data:`MIN_SAMPLES_PER_PROCESS` each) and of the run budget or time goal left. Under the time goal, single
    calls and the retrace check run in the first process only (they cost ~0.35 s a cell in each process), and
    ``cell_overhead_s`` (a cell's time outside sampling in the processes before) plans the first cell's share."""
    timer, settings = plan.timer, plan.thread_settings
    sets_left = (len(plan.backends) - plan.backends.index(backend)) * len(settings) - settings.index(threads)
    groups = plan.path_groups(backend)  # this process times groups[group] (each serving runtime apart)
    count = max(len(groups), 1)
    workers_left = ((sets_left - 1) * count + count - group) * plan.processes - process
    share = lambda total: None if total is None else max(total - elapsed_s, 0.0) / workers_left  # noqa: E731
    goal = None if plan.cell_goal_s is None else plan.cell_goal_s * len(plan.cells) * len(plan.backends) * len(settings)
    min_samples = max(min(MIN_SAMPLES_PER_PROCESS, timer.min_samples), math.ceil(timer.min_samples / plan.processes))
    timer = replace(timer, budget_s=timer.budget_s / plan.processes, min_samples=min_samples,
                    max_samples=max(timer.max_samples, min_samples))  # fmt: skip
    return Job(plan.cells, groups[group] if groups else (), backend, plan.seed, timer, plan.mode,
               plan.device, plan.precision, plan.resident, share(plan.run_budget_s), process, plan.processes,
               plan.gaps, threads, rate=plan.rate, time_goal_s=share(goal),
               extras_first_only=goal is not None or plan.processes > FEW_PROCESSES, cell_overhead_s=cell_overhead_s,
               group=group)  # fmt: skip


def worker_log(job: Job) -> str:
    """The log file of ``job``'s worker (:func:`log_name`; a serving runtime's group named after it)."""
    return log_name(job.backend, job.process, job.threads, job.paths if job.group else ())


def log_name(backend: str, process: int, threads: int | None = None, group: tuple[str, ...] = ()) -> str:
    """The worker's log file: ``worker-tensorflow.log``, ``worker-tensorflow-2.log``, ``worker-jax-threads1.log``;
    a serving runtime's processes (``group``): ``worker-tensorflow-onnxruntime.log``."""
    name = "-".join((backend, *group)) if threads is None else f"{'-'.join((backend, *group))}-threads{threads}"
    return f"worker-{name}.log" if process == 0 else f"worker-{name}-{process + 1}.log"
