"""The run request: what the user asked for, as given (:class:`RunRequest`), and its one validation into a
:class:`~kbench.orchestrate.planning.Plan` (:func:`make_plan`).

The CLI builds a request from its options, the API from its keyword arguments; both go through :func:`make_plan`, so
they refuse the same input with the same one-line message. Strings such as ``"1,32"``, ``"2**0..2**10"`` or ``"5m"``
are accepted where the CLI takes them, as are plain numbers and lists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from kbench.core import errors
from kbench.measure.callpaths import RUNTIMES
from kbench.measure.timer import TimerConfig
from kbench.model.loader import load_model
from kbench.orchestrate import shard as shard_mod
from kbench.orchestrate.latency_options import check_gaps, check_rate, parse_gaps, parse_rate, parse_threads
from kbench.orchestrate.planning import (MAX_CELLS, Plan, check_processes, make_cells, make_timer, parse_backends, parse_duration,
                                 parse_paths, parse_shard, parse_size_list, installed_paths)  # fmt: skip

QUICK = TimerConfig(budget_s=1.0, min_samples=5, target_ci=0.05, min_sample_s=0.002, warmup_s=0.02)
DEFAULT_PROCESSES = 3
# --rigorous (pyperf's name): a run to report or gate on. Back to back, two default runs agree within ±5% on only
# 22-78% of rows: each worker process settles in its own state (memory layout, thread placement), and the process
# medians of one row spread by about 10% (sd of their logs), so 3 processes leave the mean of a run uncertain by
# ~6%. More processes, not longer ones: 10 spawned processes, each sampling a cell for 1.5 s of the 15 s cell
# budget. No time goal. 15 of them agreed within ±5% on 97% of rows back to back but took 322 s on 2 cores slowed to
# 73 GFLOP/s (15 imports of ~9 s and 15 cold starts of ~9 s there), past the 5 minutes --rigorous must keep on the
# slowest machine; 10 keep about 9 rows in 10 by the 1/sqrt(N) of that spread.
# Spawned, not forked: workers forked from one import share its address-space layout, so a run's processes agree
# with each other more than with another run's (with 8 forked processes the run's level moved by 2.7% sd between
# runs against 1.2% spawned, interleaved in the same minutes), and the run's CI misses that part of the spread.
RIGOROUS = TimerConfig(budget_s=15.0, min_samples=30, target_ci=0.01)
RIGOROUS_PROCESSES = 10
# The time goal of a run given no --budget and no --cell-budget, per cell, backend and thread setting: 45 s for the
# default run's three cells. Workers share it as a run budget that never skips a cell: on a slow machine each cell
# samples for less (down to kbench.measure.budget.FLOOR_S, and never fewer than the minimum samples); on a fast one
# the cell budget is reached first and the goal changes nothing. The run says when it trimmed.
GOAL_PER_CELL_S = 15.0


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for, unchecked: the fields of :func:`kbench.api.plan`, in its order.

    ``timer`` is a complete :class:`TimerConfig`; otherwise the defaults (or :data:`QUICK` with ``quick``, or
    :data:`RIGOROUS` with ``rigorous``, which also makes :data:`RIGOROUS_PROCESSES` the default process count) with
    ``cell_budget`` (seconds of steady-state sampling per cell, all processes together), ``min_samples`` and
    ``target_ci`` applied. ``processes`` worker processes per backend (default :data:`DEFAULT_PROCESSES`) share each
    cell's budget. ``shard`` (``"K/N"``) keeps the K-th of N round-robin parts of the cells (:mod:`kbench.orchestrate.shard`).
    ``gaps`` (``"0,1ms,20ms"``) adds single calls after each idle gap and ``threads`` (``"1,2"``) runs the worker
    processes once per thread count; ``rate`` (``"50/s"``) adds open-loop Poisson arrivals, queueing included
    (:mod:`kbench.orchestrate.latency_options`). ``spawn`` starts every worker as a fresh interpreter that imports the
    backend itself, instead of forking the workers from one process that imported it once (``None``: only for
    ``rigorous``). ``runtimes`` (``"onnxruntime,litert"`` or ``"all"``) adds the serving runtimes
    (:mod:`kbench.backends.runtimes`), never timed by default. Lists are kept as tuples and mappings as read-only
    copies."""

    models: Iterable[str] | str
    paths: Iterable[str] | str | None = None
    sizes: Mapping[str, Any] | None = None
    options: Mapping[str, str] | None = None
    dtype: str = "float32"
    seed: int = 0
    timer: TimerConfig | None = None
    models_dirs: Iterable[str | Path] = ()
    mode: str = "run"
    command: str = ""
    mem_available: int | None = None
    sweep: bool = False
    run_budget: str | float | None = None
    max_cells: int = MAX_CELLS
    force: bool = False
    backends: Iterable[str] | str | None = None
    device: str = "cpu"
    precision: str = "default"
    resident: bool | None = None
    processes: int | None = None
    quick: bool = False
    cell_budget: float | None = None
    min_samples: int | None = None
    target_ci: float | None = None
    cell_timeout: float | None = None
    shard: str | tuple[int, int] | None = None
    gaps: str | Iterable[str | float] | None = None
    threads: str | int | Iterable[str | int] | None = None
    rate: str | float | None = None
    spawn: bool | None = None  # None: spawned for --rigorous, else forked
    rigorous: bool = False
    runtimes: Iterable[str] | str | None = None  # --runtime: serving runtimes to time too (names, or "all")

    def __post_init__(self) -> None:
        for name in ("models", "paths", "sizes", "options", "models_dirs", "backends", "gaps", "threads", "runtimes"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


def _frozen(value: Any) -> Any:
    """A list (or any iterable but a string) as a tuple, a mapping as a read-only copy; anything else as given."""
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    if isinstance(value, (str, bytes, tuple)) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def make_plan(request: RunRequest) -> Plan:
    """Validate ``request`` and return its plan; raises a :class:`kbench.core.errors.UsageError` on bad input (the
    checks run in a fixed order, so the first problem is the one reported)."""
    wanted_shard = parse_shard(request.shard)
    names = _model_names(request.models)
    _check_settings(request)
    timer = request.timer or make_timer(_base_timer(request), request.cell_budget, request.min_samples,
                                        request.target_ci)  # fmt: skip
    specs = [load_model(n, tuple(request.models_dirs)) for n in dict.fromkeys(names)]
    asked = parse_paths(listify(request.paths), listify(request.runtimes))
    chosen = parse_backends(listify(request.backends))
    selected, unavailable = installed_paths(asked, chosen)
    _check_backends(chosen, request.dtype)
    size_lists = {k: parse_size_list(k, v) for k, v in (request.sizes or {}).items() if v is not None}
    budget_s = parse_duration(request.run_budget)
    n_processes = request.processes if request.processes is not None else \
        RIGOROUS_PROCESSES if request.rigorous else DEFAULT_PROCESSES  # fmt: skip
    gaps, threads = parse_gaps(request.gaps), parse_threads(request.threads)
    check_gaps(gaps, timer.budget_s)
    rate = parse_rate(request.rate)
    check_rate(rate, timer.budget_s)
    if request.mode == "run":
        check_processes(n_processes, timer, budget_s, len(chosen) * max(len(threads), 1))
    cells, skipped = make_cells(specs, size_lists, dict(request.options or {}), request.dtype, len(selected),
                                request.mem_available, request.max_cells, request.sweep, request.force)  # fmt: skip
    goal = _cell_goal(request, selected)
    full = Plan(cells, selected, request.seed, _within_goal(timer, goal), mode=request.mode, command=request.command,
                run_budget_s=budget_s, skipped=skipped, backends=chosen, device=request.device,
                precision=request.precision, resident=request.resident,
                processes=n_processes if request.mode == "run" else 1, cell_timeout_s=request.cell_timeout, gaps=gaps,
                threads=threads, rate=rate, cell_goal_s=goal, fork=not _spawned(request),
                unavailable=unavailable)  # fmt: skip
    return full if wanted_shard is None else shard_mod.apply(full, wanted_shard)


def _within_goal(timer: TimerConfig, goal: float | None) -> TimerConfig:
    """Under the time goal the samples stay short on a shared CPU too (``shared_sample_s`` 0): 50 ms samples took a
    default run on 2 cores slowed to 87 GFLOP/s from 49 s to 76 s, past its minute. Its rows are still flagged
    ``contended``; a run with a time of its own (``--rigorous``, ``--cell-budget``) samples longer there."""
    return timer if goal is None else replace(timer, shared_sample_s=0.0)


def _spawned(request: RunRequest) -> bool:
    """Whether the workers are spawned: as asked, else for ``--rigorous`` only (see :data:`RIGOROUS`)."""
    return request.rigorous if request.spawn is None else request.spawn


def _base_timer(request: RunRequest) -> TimerConfig:
    """The timer the user's overrides apply to: :data:`QUICK`, :data:`RIGOROUS` or the defaults."""
    if request.quick and request.rigorous:
        raise errors.BadOptionError("--quick and --rigorous ask for opposite runs; pass one of them")
    return QUICK if request.quick else RIGOROUS if request.rigorous else TimerConfig()


def _cell_goal(request: RunRequest, selected: tuple[str, ...] = ()) -> float | None:
    """:data:`GOAL_PER_CELL_S` for a run that chose none of its own time (no --budget, --cell-budget, timer or
    --rigorous) and times no serving runtime (their export and load take seconds per cell and process: under the
    goal they would leave the cell almost no sampling)."""
    chosen = (request.run_budget, request.cell_budget, request.timer)
    own_time = request.rigorous or any(c is not None for c in chosen) or bool(set(selected) & set(RUNTIMES))
    return GOAL_PER_CELL_S if request.mode == "run" and not own_time else None


def _model_names(models: Iterable[str] | str) -> list[str]:
    """``"dense,dot"`` and ``["dense", "dot"]`` alike; refuses an empty list."""
    names = [m.strip() for item in listify(models) or [] for m in item.split(",") if m.strip()]
    if not names:
        raise errors.UnknownModelError("no model given; pass --model NAME (see `kbench list`)")
    return names


def _check_settings(request: RunRequest) -> None:
    """The plain settings: seed, cell limit, cell timeout, device and precision."""
    if request.seed < 0:
        raise errors.BadOptionError(f"--seed {request.seed} must be 0 or more")
    if request.max_cells < 1:
        raise errors.UsageError(f"--max-cells {request.max_cells} must be at least 1")
    if request.cell_timeout is not None and not request.cell_timeout > 0:
        raise errors.UsageError(f"--cell-timeout {request.cell_timeout} must be more than 0 seconds")
    if request.device not in ("cpu", "gpu", "auto"):
        raise errors.DeviceError(f"unknown --device {request.device!r}; use cpu, gpu or auto")
    if request.precision not in ("default", "highest"):
        raise errors.DeviceError(f"unknown --precision {request.precision!r}; use default or highest")


def listify(value: Iterable[str] | str | None) -> list[str] | None:
    """``"dense,dot"`` and ``["dense", "dot"]`` alike (a bare string is one item, not its characters)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _check_backends(chosen: tuple[str, ...], dtype: str) -> None:
    """Each backend's own check of the request (e.g. float64 on JAX needs JAX_ENABLE_X64)."""
    from kbench.backends import get as get_backend

    for name in chosen:
        get_backend(name).check_dtype(dtype, os.environ)
