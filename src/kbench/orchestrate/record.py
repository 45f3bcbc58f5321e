"""What a run's ``run.json`` says, in typed parts: :class:`RunStart` (known before the first worker starts),
:class:`RunRecord` (what the workers report as they go) and :func:`run_json`, the one place that assembles the two
into run.json's object (:class:`kbench.store.results.RunMeta` declares its fields)."""

from __future__ import annotations

import datetime as _dt
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from kbench.machine.fingerprint import host_fingerprint
from kbench.measure.protocol import Cell
from kbench.model.loader import load_model_file
from kbench.orchestrate import shard as shard_mod
from kbench.orchestrate.planning import Plan


@dataclass(frozen=True)
class RunStart:
    """run.json's fields known before the first worker starts: the command, the plan, the host and the machine."""

    command: str
    started: str  # ISO 8601 local time, to the second
    backends: tuple[str, ...]
    mode: str
    processes: int
    plan: dict  # paths, seed, timer, processes, gaps, threads, rate and cells, as run.json records them
    host: dict  # the host fingerprint (kbench.machine.fingerprint)
    models: dict  # model name -> {"summary", "file"}
    machine: tuple[str, ...] = ()  # the machine check's lines
    machine_findings: tuple[dict, ...] = ()
    peak: dict | None = None  # the machine peak's figures
    skipped: tuple[dict, ...] = ()  # cells the memory guard refused: model, sizes, reason
    shard: dict | None = None  # --shard K/N (kbench.orchestrate.shard.shard_json)
    unavailable: tuple[dict, ...] = ()  # serving runtimes asked for but not installed: path, reason

    @classmethod
    def of(cls, plan: Plan, peak_figures: Any, machine_lines: Iterable[str], findings: Iterable[dict]) -> RunStart:
        """The start of a run of ``plan``, now (model files are read once more, cheaply, for their summaries)."""
        return cls(
            command=plan.command,
            started=_dt.datetime.now().isoformat(timespec="seconds"),
            backends=tuple(plan.backends),
            mode=plan.mode,
            processes=plan.processes,
            plan=plan_json(plan),
            host=host_fingerprint(),
            models=_models(plan),
            machine=tuple(machine_lines),
            machine_findings=tuple(findings),
            peak=None if peak_figures is None else asdict(peak_figures),
            skipped=tuple({"model": m, "sizes": z, "reason": r} for m, z, r in plan.skipped),
            shard=None if plan.shard is None else shard_mod.shard_json(plan.shard),
            unavailable=tuple({"path": p, "reason": r} for p, r in plan.unavailable),
        )

    def to_json(self) -> dict[str, Any]:
        """These fields as run.json writes them, in its order (lists as lists)."""
        return {
            "command": self.command,
            "started": self.started,
            "backend": ",".join(self.backends),
            "backends": list(self.backends),
            "mode": self.mode,
            "processes": self.processes,
            "plan": self.plan,
            "env": {"host": self.host},
            "models": self.models,
            "machine": list(self.machine),
            "machine_findings": list(self.machine_findings),
            "peak": self.peak,
            "skipped": list(self.skipped),
            "failed_cells": [],
            "unavailable_paths": list(self.unavailable),
            **({} if self.shard is None else {"shard": self.shard}),
        }


def plan_json(plan: Plan) -> dict[str, Any]:
    """run.json's ``plan``: what the cells are and how they are timed."""
    return {"paths": list(plan.paths), "seed": plan.seed, "timer": asdict(plan.timer), "processes": plan.processes,
            "gaps": list(plan.gaps), "threads": list(plan.threads),
            "rate": plan.rate, "run_budget_s": plan.run_budget_s, "cell_goal_s": plan.cell_goal_s,
            "workers": "forked" if plan.fork else "spawned", "cells": [{"model": c.model, "sizes": c.label, "options": c.options_dict, "dtype": c.dtype}
                      for c in plan.cells]}  # fmt: skip


def _models(plan: Plan) -> dict[str, dict[str, str]]:
    """Each model's summary and file, as the report shows them."""
    specs = {c.model: c.model_file for c in plan.cells}
    return {name: {"summary": load_model_file(f).summary, "file": str(f)} for name, f in specs.items()}


@dataclass(frozen=True)
class CellFailure:
    """A cell that a worker did not finish: a failure, a hang, an interrupt, or a stop before it."""

    model: str
    sizes: str
    backend: str
    reason: str
    process: int | None = None  # the worker process that failed on it; None: every process

    def to_json(self) -> dict[str, Any]:
        entry = {"model": self.model, "sizes": self.sizes, "backend": self.backend, "reason": self.reason}
        return entry if self.process is None else {**entry, "process": self.process}


@dataclass(frozen=True)
class WorkerSkip:
    """A cell a worker skipped (it would not fit the run budget left)."""

    model: str
    sizes: str
    backend: str
    process: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "sizes": self.sizes, "backend": self.backend, "process": self.process,
                "reason": self.reason}  # fmt: skip


@dataclass
class RunRecord:
    """What the workers report while the run goes on: per backend its environment, pid, import and runtime-start
    times (each process's, and their median), and the cells skipped or failed with the failures' messages."""

    backend_env: dict[str, dict] = field(default_factory=dict)  # the first process's fingerprint per backend
    worker_pid: dict[str, int] = field(default_factory=dict)  # the latest process's pid per backend
    imports: dict[str, dict[str, float]] = field(default_factory=dict)  # median over the processes so far
    runtime_init_s: dict[str, float] = field(default_factory=dict)  # median over the processes so far
    imports_per_process: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    runtime_init_s_per_process: dict[str, list[float]] = field(default_factory=dict)
    skipped: list[WorkerSkip] = field(default_factory=list)
    failed_cells: list[CellFailure] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cell_budgets_s: list[float] = field(default_factory=list)  # the sampling budget each process gave each cell
    fork_servers: list[int] = field(default_factory=list)  # the pids of the fork servers whose imports are counted
    unavailable: list[dict] = field(default_factory=list)  # serving runtimes that could not take a cell's model

    def worker_started(self, backend: str, env: dict, pid: int, numpy_s: float, backend_s: float,
                       fork_server: int | None = None) -> None:  # fmt: skip
        """A worker's imports: one entry per import, so workers forked from one server count it once."""
        self.backend_env.setdefault(backend, env)
        self.worker_pid[backend] = pid
        seen = self.imports_per_process.setdefault(backend, [])
        if fork_server is not None and fork_server in self.fork_servers:
            return
        if fork_server is not None:
            self.fork_servers.append(fork_server)
        seen.append({"numpy": numpy_s, "backend": backend_s})
        self.imports[backend] = {k: statistics.median(v[k] for v in seen) for k in ("numpy", "backend")}

    def runtime_started(self, backend: str, seconds: float) -> None:
        seen = self.runtime_init_s_per_process.setdefault(backend, [])
        seen.append(seconds)
        self.runtime_init_s[backend] = statistics.median(seen)

    def fail_cells(self, backend: str, cells: Iterable[Cell], reason: str, process: int | None = None) -> None:
        self.failed_cells += [CellFailure(c.model, c.label, backend, reason, process) for c in cells]

    def path_unavailable(self, backend: str, cell: Cell, path: str, reason: str) -> None:
        """A serving runtime could not take ``cell``'s model: recorded once, whichever processes saw it."""
        entry = {"path": path, "reason": reason, "backend": backend, "model": cell.model, "sizes": cell.label}
        if entry not in self.unavailable:
            self.unavailable.append(entry)

    def failed(self, backend: str, cell: Cell) -> bool:
        """Whether ``cell`` is recorded as failed on ``backend``."""
        return any(f.backend == backend and f.model == cell.model and f.sizes == cell.label for f in self.failed_cells)


def run_json(start: RunStart, record: RunRecord, status: str | None = None) -> dict[str, Any]:
    """run.json's object (less ``run_id``, ``finished`` and ``schema_version``, which the run folder adds): the
    start, then what the workers reported; with ``status`` (the run has ended) also the failures."""
    out = start.to_json()
    out["env"]["backends"] = dict(record.backend_env)
    out["skipped"] += [s.to_json() for s in record.skipped]
    out["failed_cells"] = [f.to_json() for f in record.failed_cells]
    out["unavailable_paths"] = out["unavailable_paths"] + list(record.unavailable)
    out.update(imports=dict(record.imports), runtime_init_s=dict(record.runtime_init_s),
               worker_pid=dict(record.worker_pid))  # fmt: skip
    if record.cell_budgets_s:
        out["cell_budgets_s"] = list(record.cell_budgets_s)
    for key in ("imports_per_process", "runtime_init_s_per_process"):
        if getattr(record, key):
            out[key] = {b: list(v) for b, v in getattr(record, key).items()}
    if status is not None:
        out.update(status=status, failures=list(record.failures))
    return out
