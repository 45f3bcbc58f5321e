"""A run session: start the worker processes of a plan one after another and handle their events, one handler each.

For each backend, ``plan.processes`` worker processes run in turn (never two at once: they would compete for the
cores). Each does its own imports and cold start and samples every cell with its share of the cell budget; the
rows of a cell are rebuilt from every process that has finished it (:mod:`kbench.run.rows`) and written at once, so
a crash or Ctrl-C keeps everything finished so far. A process that fails stops its backend (the failure would
repeat); the other backends go on.
"""

from __future__ import annotations

import datetime as _dt
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
from kbench.measure.callpaths import paths_for
from kbench.run.planning import Plan
from kbench.measure.protocol import CellDone, CellSkipped, Done, Exited, Failed, Imported, Job, Phase, RuntimeInit, Timeout
from kbench.run.rows import CellFacts, cell_rows
from kbench.run.runner import describe_exit, stream


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
    def __init__(self, plan: Plan, run_dir: Path | None, meta: dict, hook: Callable[[Progress], None],
                 cell_timeout_s: float, peak: Any = None) -> None:  # fmt: skip
        self.plan, self.run_dir, self.meta, self.hook = plan, run_dir, meta, hook
        self.timeout, self.peak = cell_timeout_s, peak
        self.specs = {c.model_file: _load_spec(c.model_file) for c in plan.cells}
        self.done: dict[tuple, dict[int, CellDone]] = {}  # (backend, cell[, threads]) -> process -> record
        self.rows: dict[tuple, tuple[list[dict], list[dict]]] = {}
        self.failures: list[str] = []
        self.user_error: errors.KbenchError | None = None
        self.interrupted = ""  # the signal's name once interrupted
        self.writer = None
        self.started = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="kbench-"))
        for key in ("imports", "runtime_init_s", "worker_pid"):
            meta.setdefault(key, {})
        meta["env"].setdefault("backends", {})

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self) -> str:
        """Run every worker; return the status: complete, failed or interrupted."""
        complete = True
        try:
            for backend in self.plan.backends:
                complete = self._run_backend(backend) and complete
                if self.user_error is not None:
                    break
        except KeyboardInterrupt as exc:
            self.interrupted = getattr(exc, "signal_name", "Ctrl-C")
            self._fail_unsettled(f"not run: interrupted ({self.interrupted})")
        finally:
            self._keep_logs()
        return "interrupted" if self.interrupted else "complete" if complete else "failed"

    def _run_backend(self, backend: str) -> bool:
        """Every worker process of ``backend``: ``plan.processes`` of them per ``--threads`` setting."""
        return all(self._run_threads(backend, threads) for threads in self.plan.thread_settings)

    def _run_threads(self, backend: str, threads: int | None) -> bool:
        for process in range(self.plan.processes):
            run = WorkerRun(replace(self.job(backend, process, threads), threads=threads))
            for event in stream(run.job, self.tmp / _log_name(backend, process, threads), self.timeout):
                self.hook(Progress(backend, process, self.plan.processes, event))
                self.handle(run, event)
            if self.user_error is not None:
                return False
            if run.failed:  # the failure would repeat in the next process: keep what was finished, stop here
                self._fail_cells(backend, set(range(len(self.plan.cells))) - self._settled(backend),
                                 f"not run: the {backend} worker stopped before it")  # fmt: skip
                return False
        return True

    def job(self, backend: str, process: int, threads: int | None = None) -> Job:
        """Process ``process`` of ``backend`` (at ``threads``): its share of the cell budget and of the run budget
        left."""
        plan, timer = self.plan, self.plan.timer
        settings = plan.thread_settings
        sets_left = (len(plan.backends) - plan.backends.index(backend)) * len(settings) - settings.index(threads)
        workers_left = sets_left * plan.processes - process
        run_budget = None
        if plan.run_budget_s is not None:
            run_budget = max(plan.run_budget_s - (time.perf_counter() - self.started), 0.0) / workers_left
        return Job(plan.cells, paths_for(backend, plan.paths, resident=True), backend, plan.seed,
                   replace(timer, budget_s=timer.budget_s / plan.processes), plan.mode, plan.device, plan.precision,
                   plan.resident, run_budget, process, plan.processes, plan.gaps, threads,
                   rate=plan.rate)  # fmt: skip

    # -- one handler per event -----------------------------------------------------------------------------------
    def handle(self, run: WorkerRun, event: protocol.Event) -> None:
        match event:
            case Imported():
                self.on_imported(run, event)
            case RuntimeInit():
                self._per_process("runtime_init_s", run, event.runtime_init_s)
            case CellDone():
                self.on_cell(run, event)
            case CellSkipped():
                self.on_skip(run, event)
            case Failed():
                self.on_failed(run, event)
            case Timeout():
                reason = f"hung: no cell finished within {event.after_s:g} s (--cell-timeout), so the worker was killed"
                self._worker_failed(run, min(event.index, len(self.plan.cells) - 1), reason)
            case Done():
                run.done = True
            case Exited():
                self.on_exit(run, event)
            case Phase():
                pass

    def on_imported(self, run: WorkerRun, e: Imported) -> None:
        backend = run.job.backend
        self._per_process("imports", run, {"numpy": e.numpy_import_s, "backend": e.backend_import_s})
        self.meta["env"]["backends"].setdefault(backend, e.env)
        self.meta["worker_pid"][backend] = e.pid

    def on_cell(self, run: WorkerRun, e: CellDone) -> None:
        backend = run.job.backend
        run.settled.add(e.index)
        key = _cell_key(backend, e.index, run.job.threads)
        self.done.setdefault(key, {})[run.job.process] = e
        cell = self.plan.cells[e.index]
        spec = self.specs[cell.model_file]
        imports = self.meta["imports"][backend]
        facts = CellFacts(self.run_id, backend, cell, spec.flops(cell.sizes_dict), _array_bytes(spec, cell),
                          {"numpy": imports["numpy"], "backend": imports["backend"]}, self.peak,
                          run.job.threads, self.plan.timer.target_ci)  # fmt: skip
        self.rows[key] = cell_rows(facts, self.done[key])
        self._write_cell(key)

    def on_skip(self, run: WorkerRun, e: CellSkipped) -> None:
        run.settled.add(e.index)
        cell = self.plan.cells[e.index]
        self.meta["skipped"].append({"model": cell.model, "sizes": cell.label, "backend": run.job.backend,
                                     "process": run.job.process, "reason": e.reason})  # fmt: skip
        if self.writer is not None:
            self.writer.update_meta(skipped=self.meta["skipped"])

    def on_failed(self, run: WorkerRun, e: Failed) -> None:
        if e.user:
            self.user_error = errors.from_data(e.kind, e.message, e.exit_code)
        else:
            self._worker_failed(run, e.index, e.message)

    def on_exit(self, run: WorkerRun, e: Exited) -> None:
        if run.done or run.failed or self.user_error is not None or len(run.settled) >= len(self.plan.cells):
            return
        backend = run.job.backend
        tail = f"; its last words: {e.stderr_tail}" if e.stderr_tail else ""
        log = _log_name(backend, run.job.process, run.job.threads)
        reason = f"the {backend} worker {describe_exit(e.returncode)} (see {log}){tail}"
        self._worker_failed(run, min(set(range(len(self.plan.cells))) - run.settled), reason)

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.run_dir.name if self.run_dir is not None else ""

    def _per_process(self, key: str, run: WorkerRun, value: Any) -> None:
        """Per backend: the median over its processes so far (what rows and tables show), and every value."""
        backend = run.job.backend
        seen = self.meta.setdefault(f"{key}_per_process", {}).setdefault(backend, [])
        seen.append(value)
        if isinstance(value, dict):
            self.meta[key][backend] = {k: statistics.median(v[k] for v in seen) for k in value}
        else:
            self.meta[key][backend] = statistics.median(seen)

    def _worker_failed(self, run: WorkerRun, index: int, reason: str) -> None:
        cell = self.plan.cells[index]
        where = f" (process {run.job.process + 1} of {run.job.processes})" if run.job.processes > 1 else ""
        self.failures.append(f"{run.job.backend}: {cell.model} {cell.label}{where}: {reason}")
        self._fail_cells(run.job.backend, {index}, reason, run.job.process)
        run.settled.add(index)
        run.failed = True

    def _settled(self, backend: str) -> set[int]:
        failed = {i for i, c in enumerate(self.plan.cells) for f in self.meta["failed_cells"]
                  if f["backend"] == backend and f["model"] == c.model and f["sizes"] == c.label}  # fmt: skip
        return {k[1] for k in self.done if k[0] == backend} | failed

    def _fail_cells(self, backend: str, indices: set[int], reason: str, process: int | None = None) -> None:
        for i in sorted(indices):
            cell = self.plan.cells[i]
            entry = {"model": cell.model, "sizes": cell.label, "backend": backend, "reason": reason}
            self.meta["failed_cells"].append(entry if process is None else {**entry, "process": process})

    def _fail_unsettled(self, why: str) -> None:
        for backend in self.plan.backends:
            self._fail_cells(backend, set(range(len(self.plan.cells))) - self._settled(backend), why)

    def _write_cell(self, key: tuple[str, int]) -> None:
        if self.run_dir is None:
            return
        from kbench.store.results import RunWriter

        if self.writer is None:
            self.writer = RunWriter(self.run_dir, {"run_id": self.run_dir.name, **self.meta})
        rows, samples = self.rows[key]
        self.writer.put_cell(key, rows, samples)

    def _keep_logs(self) -> None:
        if self.writer is not None:
            for log in self.tmp.glob("worker-*.log"):
                shutil.copy(log, self.writer.run_dir / log.name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self, status: str) -> None:
        self.meta["status"] = status
        self.meta["failures"] = self.failures
        if self.writer is not None:
            self.writer.finish(status, finished=_dt.datetime.now().isoformat(timespec="seconds"),
                               failures=self.failures, failed_cells=self.meta["failed_cells"],
                               imports=self.meta["imports"], runtime_init_s=self.meta["runtime_init_s"],
                               imports_per_process=self.meta.get("imports_per_process", {}),
                               runtime_init_s_per_process=self.meta.get("runtime_init_s_per_process", {}))  # fmt: skip

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        from kbench.store.results import SAMPLE_COLUMNS, frame

        settings = self.plan.thread_settings
        order = {k: (self.plan.backends.index(k[0]), settings.index(k[2] if len(k) > 2 else None), k[1])
                 for k in self.rows}  # fmt: skip
        ordered = [self.rows[k] for k in sorted(self.rows, key=order.__getitem__)]
        rows = [r for rs, _ in ordered for r in rs]
        samples = [s for _, ss in ordered for s in ss]
        return frame(rows), pd.DataFrame(samples, columns=SAMPLE_COLUMNS)


def _cell_key(backend: str, index: int, threads: int | None) -> tuple:
    """A cell's key among the rows: (backend, cell) as before, with the ``--threads`` setting when one is given."""
    return (backend, index) if threads is None else (backend, index, threads)


def _log_name(backend: str, process: int, threads: int | None = None) -> str:
    name = backend if threads is None else f"{backend}-threads{threads}"
    return f"worker-{name}.log" if process == 0 else f"worker-{name}-{process + 1}.log"


def _load_spec(model_file: str):
    from kbench.model.spec import load_model_file

    return load_model_file(model_file)


def _array_bytes(spec, cell) -> int:
    """Bytes of the cell's inputs, weights and output in its dtype: what any path must read or write at least once."""
    import math

    import numpy as np

    sizes = cell.sizes_dict
    elements = sum(math.prod(t.resolve(sizes)) for t in (*spec.inputs, *spec.weights)) + math.prod(spec.output_shape(sizes))
    return elements * np.dtype(cell.dtype).itemsize
