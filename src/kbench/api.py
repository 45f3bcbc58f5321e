"""The Python API. The CLI is a thin layer over these functions; each returns data, never prints.

    >>> from kbench import api
    >>> plan = api.plan(["dense"], sizes={"batch": "1,32"})
    >>> result = api.run(plan)            # RunResult: .results (a pandas DataFrame), .samples, .run_dir, .ok
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from kbench import errors
from kbench.envinfo import host_fingerprint
from kbench.plan import MAX_CELLS, Plan, make_cells, parse_backends, parse_duration, parse_paths, parse_size_list
from kbench.results import RunWriter, SAMPLE_COLUMNS, cell_rows, frame
from kbench.paths import paths_for
from kbench.runner import describe_exit, stream
from kbench.spec import ModelSpec, available_models, load_model, load_model_file, model_dirs
from kbench.timer import TimerConfig

QUICK = TimerConfig(budget_s=1.0, min_samples=5, target_ci=0.05, min_sample_s=0.002, warmup_s=0.02)

EventHook = Callable[[dict], None]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path | None
    results: pd.DataFrame
    samples: pd.DataFrame
    meta: dict = field(default_factory=dict)
    failures: tuple[str, ...] = ()  # worker failures that were not the user's input
    interrupted: bool = False  # Ctrl-C: the finished cells are kept, the rest recorded as not run

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
    models: Iterable[str],
    paths: Iterable[str] | None = None,
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
    backends: Iterable[str] | None = None,
    device: str = "cpu",
    precision: str = "default",
    resident: bool | None = None,
) -> Plan:
    """Validate a request and return the plan; raises a :class:`kbench.errors.UsageError` on bad input."""
    names = [m.strip() for item in models for m in item.split(",") if m.strip()]
    if not names:
        raise errors.UnknownModelError("no model given; pass --model NAME (see `kbench list`)")
    if seed < 0:
        raise errors.BadOptionError(f"--seed {seed} must be 0 or more")
    dirs = tuple(models_dirs)
    specs = [load_model(n, dirs) for n in dict.fromkeys(names)]
    selected = parse_paths(paths)
    chosen = parse_backends(backends)
    if "jax" in chosen and dtype == "float64" and os.environ.get("JAX_ENABLE_X64", "").lower() not in ("1", "true"):
        raise errors.DtypeError("float64 on the jax backend needs 64-bit mode; set JAX_ENABLE_X64=1 or use float32")
    size_lists = {k: parse_size_list(k, v) for k, v in (sizes or {}).items() if v is not None}
    budget_s = parse_duration(run_budget)
    cells, skipped = make_cells(specs, size_lists, dict(options or {}), dtype, len(selected), mem_available, max_cells,
                                sweep, force)  # fmt: skip
    if device not in ("cpu", "gpu", "auto"):
        raise errors.DeviceError(f"unknown --device {device!r}; use cpu, gpu or auto")
    if precision not in ("default", "highest"):
        raise errors.DeviceError(f"unknown --precision {precision!r}; use default or highest")
    return Plan(cells, selected, seed, timer or TimerConfig(), backend=chosen[0], mode=mode, command=command,
                run_budget_s=budget_s, skipped=skipped, backends=chosen, device=device, precision=precision,
                resident=resident)


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


def run(
    plan: Plan,
    out_dir: str | Path | None = "reports",
    on_event: EventHook | None = None,
    cell_timeout_s: float | None = None,
) -> RunResult:
    """Run a plan in a worker process. With ``out_dir`` (the default ``reports``) results are written to a new
    run folder as each cell finishes; the folder is created only once the first cell has finished.

    A worker that crashes or hangs (no cell finished within ``cell_timeout_s``, default
    :func:`default_cell_timeout`) is stopped; the cell it was on and the ones after it are recorded as failed with
    the reason, and every finished cell is kept. Ctrl-C does the same and returns with ``interrupted`` set.
    Raises a :class:`kbench.errors.UsageError` when the worker finds a bad model (after saving finished cells).
    """
    if out_dir is not None:
        check_out_dir(out_dir)
    specs = {c.model_file: load_model_file(c.model_file) for c in plan.cells}
    hook = on_event or (lambda event: None)
    peak_figures = None
    if plan.mode == "run":
        from kbench import peak

        hook({"event": "phase", "index": 0, "phase": "machine peak (cached after the first run)"})
        peak_figures, _ = peak.load_or_measure()
    meta: dict[str, Any] = {
        "command": plan.command,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "backend": ",".join(plan.backends),
        "backends": list(plan.backends),
        "mode": plan.mode,
        "plan": {"paths": plan.paths, "seed": plan.seed, "timer": plan.timer.__dict__,
                 "cells": [{"model": c.model, "sizes": c.label, "options": c.options_dict, "dtype": c.dtype}
                           for c in plan.cells]},
        "env": {"host": host_fingerprint()},
        "peak": None if peak_figures is None else peak_figures.__dict__,
        "skipped": [{"model": m, "sizes": z, "reason": r} for m, z, r in plan.skipped],
        "failed_cells": [],
    }  # fmt: skip
    rows: list[dict] = []
    samples: list[dict] = []
    failures: list[str] = []
    user_error: errors.UsageError | None = None
    writer: RunWriter | None = None
    run_dir = _new_run_dir(Path(out_dir), plan) if out_dir is not None else None
    meta.update(imports={}, runtime_init_s={}, worker_pid={})
    meta["env"]["backends"] = {}
    tmp = Path(tempfile.mkdtemp(prefix="kbench-"))
    finished = interrupted = False
    timeout = default_cell_timeout(plan) if cell_timeout_s is None else cell_timeout_s
    backend = plan.backends[0]
    settled: set[int] = set()  # this backend's finished or skipped cells

    def fail_cell(index: int, reason: str) -> None:
        cell = plan.cells[index]
        meta["failed_cells"].append({"model": cell.model, "sizes": cell.label, "backend": backend, "reason": reason})
        settled.add(index)

    def fail_rest(why: str) -> None:
        for i in range(len(plan.cells)):
            if i not in settled:
                fail_cell(i, why)

    try:
        finished = True
        for backend in plan.backends:  # one worker per backend, one after the other
            sub = replace(plan, backend=backend, paths=paths_for(backend, plan.paths, resident=True))
            settled = set()
            backend_failed, backend_done = False, False
            for event in stream(sub, tmp / f"worker-{backend}.log", timeout):
                event = {**event, "backend": backend}
                hook(event)
                kind = event["event"]
                if kind == "import":
                    meta["imports"][backend] = {"numpy": event["numpy_import_s"], "backend": event["backend_import_s"]}
                    meta["env"]["backends"][backend] = event["env"]
                    meta["worker_pid"][backend] = event.get("pid")
                elif kind == "init":
                    meta["runtime_init_s"][backend] = event["runtime_init_s"]
                elif kind == "cell":
                    cell = plan.cells[event["index"]]
                    spec = specs[cell.model_file]
                    new_rows, new_samples = cell_rows(run_id_of(run_dir), backend, cell, spec.flops(cell.sizes_dict),
                                                      event, meta["imports"][backend], array_bytes(spec, cell),
                                                      peak_figures)  # fmt: skip
                    rows += new_rows
                    samples += new_samples
                    settled.add(event["index"])
                    if run_dir is not None:
                        if writer is None:
                            writer = RunWriter(run_dir, {"run_id": run_dir.name, **meta})
                        writer.add(new_rows, new_samples)
                elif kind == "skip":
                    cell = plan.cells[event["index"]]
                    meta["skipped"].append({"model": cell.model, "sizes": cell.label, "backend": backend,
                                            "reason": event["reason"]})  # fmt: skip
                    settled.add(event["index"])
                    if writer is not None:
                        writer.update_meta(skipped=meta["skipped"])
                elif kind == "error":
                    if event.get("user"):
                        cls = getattr(errors, event["kind"], errors.UsageError)
                        user_error = cls(event["message"]) if issubclass(cls, errors.UsageError) else errors.UsageError(event["message"])
                    else:
                        where = plan.cells[event["index"]]
                        failures.append(f"{backend}: {where.model} {where.label}: {event['message']}")
                        fail_cell(event["index"], event["message"])
                        backend_failed = True
                elif kind == "timeout":
                    index = min(event["index"], len(plan.cells) - 1)
                    reason = f"hung: no cell finished within {event['after_s']:g} s (--cell-timeout), so the worker was killed"
                    failures.append(f"{backend}: {plan.cells[index].model} {plan.cells[index].label}: {reason}")
                    fail_cell(index, reason)
                    backend_failed = True
                elif kind == "done":
                    backend_done = True
                elif kind == "exit" and not backend_done and user_error is None and not backend_failed:
                    if len(settled) < len(plan.cells):
                        index = min(set(range(len(plan.cells))) - settled)
                        tail = f"; its last words: {event['stderr_tail']}" if event["stderr_tail"] else ""
                        reason = (f"the {backend} worker {describe_exit(event['returncode'])} "
                                  f"(see worker-{backend}.log){tail}")  # fmt: skip
                        failures.append(f"{backend}: {plan.cells[index].model} {plan.cells[index].label}: {reason}")
                        fail_cell(index, reason)
                        backend_failed = True
            if user_error is not None:
                break
            if backend_failed:  # the other backends go on
                fail_rest(f"not run: the {backend} worker stopped before it")
            finished = finished and backend_done
    except KeyboardInterrupt:
        interrupted = True
        fail_rest("not run: interrupted (Ctrl-C)")
    finally:
        if writer is not None:
            for log in tmp.glob("worker-*.log"):
                shutil.copy(log, writer.run_dir / log.name)
        shutil.rmtree(tmp, ignore_errors=True)
    status = "interrupted" if interrupted else "complete" if finished else "failed"
    meta["status"] = status
    if writer is not None:
        writer.finish(status, finished=_dt.datetime.now().isoformat(timespec="seconds"), failures=failures,
                      failed_cells=meta["failed_cells"])  # fmt: skip
        meta = writer.meta
    if user_error is not None:
        raise user_error
    return RunResult(
        writer.run_dir if writer else None,
        frame(rows) if rows else frame([]),
        pd.DataFrame(samples, columns=SAMPLE_COLUMNS),
        meta,
        tuple(failures),
        interrupted,
    )


def array_bytes(spec: ModelSpec, cell) -> int:
    """Bytes of the cell's inputs, weights and output in its dtype: what any path must read or write at least once."""
    import math

    import numpy as np

    sizes = cell.sizes_dict
    elements = sum(math.prod(t.resolve(sizes)) for t in (*spec.inputs, *spec.weights)) + math.prod(spec.output_shape(sizes))
    return elements * np.dtype(cell.dtype).itemsize


def run_id_of(run_dir: Path | None) -> str:
    return run_dir.name if run_dir is not None else ""


def environment() -> dict:
    """The host fingerprint plus the backend's, read from a worker (the parent never imports the backend)."""
    p = Plan(cells=(), paths=(), mode="env")
    out: dict[str, Any] = {"host": host_fingerprint()}
    with tempfile.TemporaryDirectory(prefix="kbench-") as tmp:
        for event in stream(p, Path(tmp) / "worker.log"):
            if event["event"] == "import":
                out["backend"] = event["env"]
                out["imports"] = {"numpy_s": event["numpy_import_s"], "backend_s": event["backend_import_s"]}
            elif event["event"] == "exit" and "backend" not in out:
                raise errors.WorkerError(f"the backend worker failed to start: {event['stderr_tail'] or 'no output'}")
    return out
