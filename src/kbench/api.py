"""The Python API. The CLI is a thin layer over these functions; each returns data, never prints.

    >>> import kbench
    >>> plan = kbench.plan(["dense"], sizes={"batch": "1,32"}, processes=3)
    >>> result = kbench.run(plan)          # RunResult: .results (a pandas DataFrame), .samples, .run_dir, .ok
    >>> saved = kbench.load_run("latest")  # RunData: .meta (RunMeta), .results, .samples

Every input check lives here (and in :mod:`kbench.run.planning`), so the CLI and the API refuse the same input with the
same one-line message. Strings such as ``"1,32"``, ``"2**0..2**10"`` or ``"5m"`` are accepted where the CLI
takes them, as are plain numbers and lists.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from kbench.core import errors
from kbench.measure import latency
from kbench.run import shard as shard_mod
from kbench.machine.fingerprint import host_fingerprint
from kbench.run.planning import (MAX_CELLS, Plan, make_cells, make_timer, check_processes, parse_backends, parse_duration,
                         parse_paths, parse_shard, parse_size_list)  # fmt: skip
from kbench.run.session import Progress, RunSession
from kbench.model.spec import ModelSpec, available_models, load_model, load_model_file, model_dirs
from kbench.measure.timer import TimerConfig

QUICK = TimerConfig(budget_s=1.0, min_samples=5, target_ci=0.05, min_sample_s=0.002, warmup_s=0.02)
DEFAULT_PROCESSES = 3


@dataclass(frozen=True)
class RunResult:
    run_dir: Path | None
    results: pd.DataFrame
    samples: pd.DataFrame
    meta: Any = field(default_factory=dict)
    failures: tuple[str, ...] = ()  # worker failures that were not the user's input
    interrupted: bool = False  # Ctrl-C or SIGTERM: the finished cells are kept, the rest recorded as not run
    signal: str = ""  # what interrupted it: "Ctrl-C" or "SIGTERM"

    @property
    def parity_ok(self) -> bool:
        return bool(self.results.empty or self.results["parity_ok"].astype(bool).all())

    @property
    def ok(self) -> bool:
        return self.parity_ok and not self.failures and not self.interrupted


def list_models(models_dirs: Iterable[str | Path] = ()) -> list[ModelSpec]:
    """Every model in the user folders and the built-in folder (this imports each model file)."""
    return [load_model_file(p) for p in available_models(model_dirs(tuple(models_dirs))).values()]


def plan(
    models: Iterable[str] | str,
    paths: Iterable[str] | str | None = None,
    sizes: Mapping[str, Any] | None = None,
    options: Mapping[str, str] | None = None,
    dtype: str = "float32",
    seed: int = 0,
    timer: TimerConfig | None = None,
    models_dirs: Iterable[str | Path] = (),
    mode: str = "run",
    command: str = "",
    mem_available: int | None = None,
    sweep: bool = False,
    run_budget: str | float | None = None,
    max_cells: int = MAX_CELLS,
    force: bool = False,
    backends: Iterable[str] | str | None = None,
    device: str = "cpu",
    precision: str = "default",
    resident: bool | None = None,
    processes: int | None = None,
    quick: bool = False,
    cell_budget: float | None = None,
    min_samples: int | None = None,
    target_ci: float | None = None,
    cell_timeout: float | None = None,
    shard: str | tuple[int, int] | None = None,
    gaps: str | Iterable[str | float] | None = None,
    threads: str | int | Iterable[str | int] | None = None,
    rate: str | float | None = None,
) -> Plan:
    """Validate a request and return the plan; raises a :class:`kbench.core.errors.UsageError` on bad input.

    ``timer`` is a complete :class:`TimerConfig`; otherwise the defaults (or :data:`QUICK` with ``quick``) with
    ``cell_budget`` (seconds of steady-state sampling per cell, all processes together), ``min_samples`` and
    ``target_ci`` applied. ``processes`` worker processes per backend (default :data:`DEFAULT_PROCESSES`) share
    each cell's budget. ``shard`` (``"K/N"``) keeps the K-th of N round-robin parts of the cells
    (:mod:`kbench.run.shard`). ``gaps`` (``"0,1ms,20ms"``) adds single calls after each idle gap and ``threads``
    (``"1,2"``) runs the worker processes once per thread count; ``rate`` (``"50/s"``) adds open-loop Poisson
    arrivals, queueing included (:mod:`kbench.measure.latency`)."""
    wanted_shard = parse_shard(shard)
    models, paths, backends = _listify(models), _listify(paths), _listify(backends)
    names = [m.strip() for item in models for m in item.split(",") if m.strip()]
    if not names:
        raise errors.UnknownModelError("no model given; pass --model NAME (see `kbench list`)")
    if seed < 0:
        raise errors.BadOptionError(f"--seed {seed} must be 0 or more")
    if max_cells < 1:
        raise errors.UsageError(f"--max-cells {max_cells} must be at least 1")
    if cell_timeout is not None and not cell_timeout > 0:
        raise errors.UsageError(f"--cell-timeout {cell_timeout} must be more than 0 seconds")
    if device not in ("cpu", "gpu", "auto"):
        raise errors.DeviceError(f"unknown --device {device!r}; use cpu, gpu or auto")
    if precision not in ("default", "highest"):
        raise errors.DeviceError(f"unknown --precision {precision!r}; use default or highest")
    timer = timer or make_timer(QUICK if quick else TimerConfig(), cell_budget, min_samples, target_ci)
    dirs = tuple(models_dirs)
    specs = [load_model(n, dirs) for n in dict.fromkeys(names)]
    selected = parse_paths(paths)
    chosen = parse_backends(backends)
    _check_backends(chosen, dtype)
    size_lists = {k: parse_size_list(k, v) for k, v in (sizes or {}).items() if v is not None}
    budget_s = parse_duration(run_budget)
    n_processes = DEFAULT_PROCESSES if processes is None else processes
    gap_list, thread_list = latency.parse_gaps(gaps), latency.parse_threads(threads)
    latency.check_gaps(gap_list, timer.budget_s)
    rate_per_s = latency.parse_rate(rate)
    latency.check_rate(rate_per_s, timer.budget_s)
    if mode == "run":
        check_processes(n_processes, timer, budget_s, len(chosen) * max(len(thread_list), 1))
    cells, skipped = make_cells(specs, size_lists, dict(options or {}), dtype, len(selected), mem_available, max_cells,
                                sweep, force)  # fmt: skip
    full = Plan(cells, selected, seed, timer, mode=mode, command=command, run_budget_s=budget_s, skipped=skipped,
                backends=chosen, device=device, precision=precision, resident=resident,
                processes=n_processes if mode == "run" else 1, cell_timeout_s=cell_timeout, gaps=gap_list,
                threads=thread_list, rate=rate_per_s)  # fmt: skip
    return full if wanted_shard is None else shard_mod.apply(full, wanted_shard)


def _listify(value: Iterable[str] | str | None) -> list[str] | None:
    """``"dense,dot"`` and ``["dense", "dot"]`` alike (a bare string is one item, not its characters)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _check_backends(chosen: tuple[str, ...], dtype: str) -> None:
    """Each backend's own check of the request (e.g. float64 on JAX needs JAX_ENABLE_X64)."""
    from kbench.backends import get as get_backend

    for name in chosen:
        get_backend(name).check_dtype(dtype, os.environ)


def _new_run_dir(out_dir: Path, plan: Plan) -> Path:
    models = "-".join(dict.fromkeys(c.model for c in plan.cells))
    stem = f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{models}"
    run_dir, i = out_dir / stem, 1
    while run_dir.exists():
        i += 1
        run_dir = out_dir / f"{stem}-{i}"
    return run_dir


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse, before anything runs, an output folder that cannot be created or written."""
    p = Path(out_dir)
    if p.exists() and not p.is_dir():
        raise errors.UsageError(f"--out {p} is a file; pass a folder for the run folders")
    probe = p.absolute()
    while not probe.exists():
        probe = probe.parent
    try:  # try it for real: access() says yes to root even where nothing can be created (/proc)
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        fd, name = tempfile.mkstemp(dir=probe, prefix=".kbench-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise errors.UsageError(f"--out {p} cannot be written ({probe}: {exc.strerror}); pass a writable folder") from None


def default_cell_timeout(plan: Plan) -> float:
    """A cell that has not finished after this long is a hang: two minutes for the backend import and cold start,
    plus 20 times the cell's sampling budget."""
    return 120.0 + 20.0 * plan.timer.budget_s


def _start_meta(plan: Plan, peak_figures: Any, machine_lines: list[str], findings: list[dict]) -> dict:
    return {
        "command": plan.command,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "backend": ",".join(plan.backends),
        "backends": list(plan.backends),
        "mode": plan.mode,
        "processes": plan.processes,
        "plan": {"paths": list(plan.paths), "seed": plan.seed, "timer": asdict(plan.timer), "processes": plan.processes,
                 "gaps": list(plan.gaps), "threads": list(plan.threads),
                 "rate": plan.rate,
                 "cells": [{"model": c.model, "sizes": c.label, "options": c.options_dict, "dtype": c.dtype}
                           for c in plan.cells]},
        "env": {"host": host_fingerprint()},
        "models": _models(plan),
        "machine": machine_lines,
        "machine_findings": findings,
        "peak": None if peak_figures is None else asdict(peak_figures),
        "skipped": [{"model": m, "sizes": z, "reason": r} for m, z, r in plan.skipped],
        "failed_cells": [],
        **({} if plan.shard is None else {"shard": shard_mod.shard_json(plan.shard)}),
    }  # fmt: skip


def _models(plan: Plan) -> dict[str, dict[str, str]]:
    """Each model's summary and file, as the report shows them (model files are read once more, cheaply)."""
    specs = {c.model: c.model_file for c in plan.cells}
    return {name: {"summary": load_model_file(f).summary, "file": str(f)} for name, f in specs.items()}


def _machine(plan: Plan, hook: Callable[[Any], None]) -> tuple[Any, list[str], list[dict]]:
    """The machine peak (cached after the first run) and the machine and noise check, for a timed run."""
    if plan.mode != "run":
        return None, [], []
    from kbench.machine import check, peak

    peak_figures, _ = peak.load_or_measure()
    findings = check.check(peak=peak_figures)
    return peak_figures, check.block_lines(findings), [asdict(f) for f in findings]


def run(
    plan: Plan,
    out_dir: str | Path | None = "reports",
    on_event: Callable[[Progress], None] | None = None,
    cell_timeout_s: float | None = None,
) -> RunResult:
    """Run a plan: ``plan.processes`` worker processes per backend, one after the other. With ``out_dir`` (the
    default ``reports``) results are written to a new run folder as each cell finishes; the folder is created only
    once the first cell has finished.

    A worker that crashes or hangs (no cell finished within ``cell_timeout_s``, default ``plan.cell_timeout_s`` or
    :func:`default_cell_timeout`) is stopped; the cell it was on and the ones after it are recorded as failed with
    the reason, and every finished cell is kept. Ctrl-C (or SIGTERM turned into :class:`session.Interrupted`) does
    the same and returns with ``interrupted`` set. Raises a :class:`kbench.core.errors.UsageError` when the worker finds
    a bad model (after saving finished cells).
    """
    if out_dir is not None:
        check_out_dir(out_dir)
    hook = on_event or (lambda event: None)
    peak_figures, machine_lines, findings = _machine(plan, hook)
    timeout = cell_timeout_s or plan.cell_timeout_s or default_cell_timeout(plan)
    run_dir = _new_run_dir(Path(out_dir), plan) if out_dir is not None else None
    session = RunSession(plan, run_dir, _start_meta(plan, peak_figures, machine_lines, findings), hook, timeout,
                         peak_figures)  # fmt: skip
    status = session.run()
    session.finish(status)
    if session.user_error is not None:
        raise session.user_error
    results, samples = session.frames()
    meta = session.writer.meta if session.writer is not None else session.meta
    return RunResult(session.writer.run_dir if session.writer else None, results, samples, meta,
                     tuple(session.failures), bool(session.interrupted), session.interrupted)  # fmt: skip


def environment(backends: Iterable[str] | str | None = None) -> dict:
    """The host fingerprint plus each backend's, read from a worker per backend (the parent never imports one).
    ``backend`` holds the first backend's fingerprint, ``backends`` every one's."""
    from kbench.measure import protocol
    from kbench.run.runner import stream

    out: dict[str, Any] = {"host": host_fingerprint(), "backends": {}}
    for name in parse_backends(_listify(backends)):
        job = protocol.Job((), (), name, 0, TimerConfig(), mode="env")
        with tempfile.TemporaryDirectory(prefix="kbench-") as tmp:
            for event in stream(job, Path(tmp) / "worker.log"):
                if isinstance(event, protocol.Imported):
                    out["backends"][name] = event.env
                    out.setdefault("imports", {"numpy_s": event.numpy_import_s, "backend_s": event.backend_import_s})
                elif isinstance(event, protocol.Failed):
                    raise errors.from_data(event.kind, event.message, event.exit_code)
                elif isinstance(event, protocol.Exited) and name not in out["backends"]:
                    raise errors.WorkerError(f"the {name} worker failed to start: {event.stderr_tail or 'no output'}")
    out["backend"] = next(iter(out["backends"].values()))
    return out
