"""Planning: turn what the user asked for into validated cells, before anything is allocated or spawned.

A *cell* is one (model, sizes, options, dtype) point; every selected call path is measured in every cell. All
input checks live here so that a bad request fails in the parent, in milliseconds, with nothing written.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from kbench.core.errors import BadOptionError, BadSizeError, DtypeError, MemoryLimitError, UnknownPathError
from kbench.measure.callpaths import BASELINE, DEFAULT_PATHS, PATHS, RUNTIMES, path_groups, paths_for
from kbench.measure.protocol import Cell
from kbench.model.spec import ModelSpec
from kbench.measure.timer import TimerConfig
from kbench.orchestrate.memory import MEMORY_SHARE, available_memory, check_stored_weights, estimate_bytes
from kbench.model.weights import SUPPORTED_DTYPES

MAX_SIZE = 2**40
MAX_CELLS = 200  # default --max-cells: a grid bigger than this is refused, with its size


@dataclass(frozen=True)
class Shard:
    """``--shard K/N``: the K-th of N parts of a plan's cells, for a CI job matrix (:mod:`kbench.orchestrate.shard` selects the
    cells, round-robin by their index in the full plan, and merges the shards' run folders)."""

    index: int  # K, from 1
    count: int  # N
    plan_cells: int = 0  # cells in the full, unsharded plan (0 until the cells are selected)
    cells: tuple[int, ...] = ()  # this shard's cells: their indices in the full plan, from 0
    plan_digest: str = ""  # the full plan's identity (cells and settings), equal in every shard of one plan

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Plan:
    """The user's request, validated: cells, paths, backends and how to time them. One worker process's share of
    it is a :class:`kbench.measure.protocol.Job`."""

    cells: tuple[Cell, ...]
    paths: tuple[str, ...]
    seed: int = 0
    timer: TimerConfig = field(default_factory=TimerConfig)
    mode: str = "run"  # "run" (cold + parity + steady) or "parity"
    command: str = ""
    run_budget_s: float | None = None  # whole-run budget shared by the cells (the worker skips what will not fit)
    backends: tuple[str, ...] = ("tensorflow",)  # one worker each (times processes), in this order
    device: str = "cpu"  # cpu | gpu | auto
    precision: str = "default"  # default | highest (full float32 matmuls, no TF32)
    resident: bool | None = None  # time device-resident paths and transfers too; None: only on a GPU
    skipped: tuple[tuple[str, str, str], ...] = ()  # (model, sizes, reason) refused by the memory guard
    processes: int = 1  # worker processes per backend, one after the other; they share each cell's budget
    cell_timeout_s: float | None = None  # a worker with no finished cell for this long is hung (None: the default)
    shard: Shard | None = None  # --shard K/N: ``cells`` are this shard's share of the full plan's cells
    gaps: tuple[float, ...] = ()  # --gap: idle gaps (s) before single calls, besides back to back (kbench.measure.latency)
    threads: tuple[int, ...] = ()  # --threads: one set of worker processes per count; (): the backends' defaults
    rate: float | None = None  # --rate: open-loop Poisson arrivals per second, queueing included; None: off
    cell_goal_s: float | None = None  # the default run's time goal per cell, backend and thread setting (no skip)
    fork: bool = True  # fork the worker processes from one that imported the backend (False: spawn each, --spawn)
    unavailable: tuple[tuple[str, str], ...] = ()  # (path, why): serving runtimes asked for but not installed

    @property
    def thread_settings(self) -> tuple[int | None, ...]:
        """The ``threads`` of each set of worker processes per backend: (None,) for the default."""
        return self.threads or (None,)

    def path_groups(self, backend: str) -> tuple[tuple[str, ...], ...]:
        """``backend``'s paths as its worker processes share them (each serving runtime in processes of its own)."""
        return path_groups(paths_for(backend, self.paths, resident=True))


MIN_PROCESS_S = 5.0  # what one worker process costs at least: the backend's import and the first cold start


def make_timer(base: TimerConfig, cell_budget: float | None = None, min_samples: int | None = None,
               target_ci: float | None = None) -> TimerConfig:  # fmt: skip
    """``base`` with the user's overrides, each checked (one line naming the flag and the fix)."""
    if cell_budget is not None and not cell_budget > 0:
        raise BadSizeError(f"--cell-budget {cell_budget} must be more than 0 seconds")
    if min_samples is not None and min_samples < 1:
        raise BadSizeError(f"--min-samples {min_samples} must be at least 1")
    if target_ci is not None and not 0 < target_ci < 1:
        raise BadSizeError(f"--target-ci {target_ci} must be a fraction between 0 and 1, e.g. 0.02")
    overrides = {k: v for k, v in (("budget_s", cell_budget), ("min_samples", min_samples), ("target_ci", target_ci))
                 if v is not None}  # fmt: skip
    return replace(base, **overrides, max_samples=max(base.max_samples, overrides.get("min_samples", 0)))


def check_processes(processes: int, timer: TimerConfig, run_budget_s: float | None, n_backends: int) -> None:
    """Refuse a process count below 1, or one whose share of a cell's budget or of the run budget cannot hold
    even the minimum (``min_samples`` samples; a worker's import and first cold start, ~:data:`MIN_PROCESS_S`)."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise BadSizeError(f"--processes {processes} must be a whole number of 1 or more, e.g. --processes 3")
    share = timer.budget_s / processes
    need = timer.min_samples * timer.min_sample_s
    if share < need:
        raise BadSizeError(
            f"--processes {processes} leaves each process {share:.3g} s of the {timer.budget_s:g} s cell budget, less "
            f"than {timer.min_samples} samples of {timer.min_sample_s * 1e3:g} ms; use fewer processes or a larger "
            "--cell-budget"
        )
    workers = processes * n_backends
    if run_budget_s is not None and workers * MIN_PROCESS_S > run_budget_s:
        raise BadSizeError(
            f"--processes {processes} cannot fit --budget {run_budget_s:g}s: {workers} worker process(es) need about "
            f"{MIN_PROCESS_S:g} s each for the backend import and cold start; use fewer processes or a larger --budget"
        )


_NUMBER = re.compile(r"(\d+)(?:\*\*(\d+))?")
MAX_RANGE_VALUES = 10_000  # a hard stop before expanding a range; the run's --max-cells applies after the grid


def _value_base_exponent(name: str, text: str) -> tuple[int, int | None, int | None]:
    """One size as (value, base, exponent): ``"64"`` -> (64, None, None); ``"2**6"`` -> (64, 2, 6)."""
    m = _NUMBER.fullmatch(text) if text.isascii() else None
    if m is None:
        if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
            raise BadSizeError(f"--{name} {text} must be positive; give sizes of 1 or more")
        raise BadSizeError(
            f"--{name} {text!r} is not an integer; give positive whole numbers such as --{name} 1,32 or 2**0..2**10"
        )
    if m.group(2) is None:
        return int(m.group(1)), None, None
    base, exp = int(m.group(1)), int(m.group(2))
    if base < 2 or exp > 64:
        raise BadSizeError(f"--{name} {text}: use a base of 2 or more and an exponent up to 64")
    return base**exp, base, exp


def _expand(name: str, item: str) -> list[int]:
    if ".." not in item:
        return [_value_base_exponent(name, item)[0]]
    lo_text, _, rest = item.partition("..")
    hi_text, _, step_text = rest.partition(":")
    if not lo_text or not hi_text:
        raise BadSizeError(f"--{name} {item!r} is an empty range; give both ends, e.g. --{name} 1..64")
    lo, lo_base, lo_exp = _value_base_exponent(name, lo_text)
    hi, hi_base, hi_exp = _value_base_exponent(name, hi_text)
    if lo > hi:
        raise BadSizeError(f"--{name} {item!r} is reversed; write it small to large, e.g. {hi_text}..{lo_text}")
    geometric = lo_base is not None and lo_base == hi_base and not step_text
    count = (hi_exp - lo_exp + 1) if geometric else None
    if not geometric:
        step = _value_base_exponent(name, step_text)[0] if step_text else 1
        if step < 1:
            raise BadSizeError(f"--{name} {item!r} has step {step}; use a step of 1 or more")
        count = (hi - lo) // step + 1
    if count > MAX_RANGE_VALUES:
        raise BadSizeError(f"--{name} {item!r} expands to {count} sizes (limit {MAX_RANGE_VALUES}); use a coarser range")
    if geometric:
        return [lo_base**e for e in range(lo_exp, hi_exp + 1)]
    return list(range(lo, hi + 1, step))


def parse_size_list(name: str, text: str | int | Iterable[int]) -> tuple[int, ...]:
    """Sizes, sorted small to large, duplicates dropped. Items are comma-separated: ``1,32,1024``; powers
    ``2**10``; ranges ``8..64`` (every integer), ``8..64:8`` (a step), ``2**0..2**14`` (every power of 2)."""
    items = [text] if isinstance(text, (str, int)) else list(text)
    parts = [p.strip() for item in items for p in str(item).split(",")]
    values = []
    for p in parts:
        if not p:
            raise BadSizeError(f"--{name} has an empty entry; give sizes such as --{name} 1,32")
        for v in _expand(name, p):
            if v <= 0:
                raise BadSizeError(f"--{name} {v} must be positive; give sizes of 1 or more")
            if v > MAX_SIZE:
                raise BadSizeError(f"--{name} {v} is absurdly large (over 2**40); give a size that fits in memory")
            values.append(v)
    if not values:
        raise BadSizeError(f"--{name} is empty; give one or more sizes such as --{name} 1,32")
    return tuple(sorted(set(values)))


def parse_paths(names: Iterable[str] | None, runtimes: Iterable[str] | None = None) -> tuple[str, ...]:
    """Selected paths in registry order; the NumPy baseline is always included (ratios are taken against it).
    Without ``names``, every path but the serving runtimes; ``runtimes`` (``--runtime``: names or ``all``) adds
    those."""
    wanted = {n.strip() for item in names or () for n in item.split(",") if n.strip()}
    if names and not wanted:
        raise UnknownPathError(f"--path is empty; name one or more of {', '.join(PATHS)}")
    for n in sorted(wanted):
        if n not in PATHS:
            close = difflib.get_close_matches(n, list(PATHS), n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            raise UnknownPathError(f"unknown path {n!r}; {hint}known paths: {', '.join(PATHS)}")
    if not names:
        wanted = set(DEFAULT_PATHS)
    wanted |= parse_runtimes(runtimes) | {BASELINE}
    return tuple(p for p in PATHS if p in wanted)


def parse_runtimes(names: Iterable[str] | None) -> set[str]:
    """``--runtime onnxruntime,litert`` or ``--runtime all``: the serving runtimes asked for."""
    if names is None:
        return set()
    wanted = {n.strip() for item in names for n in item.split(",") if n.strip()}
    if not wanted:
        raise UnknownPathError(f"--runtime is empty; name one or more of {', '.join(RUNTIMES)}, or all")
    if "all" in wanted:
        return set(RUNTIMES)
    for n in sorted(wanted):
        if n not in RUNTIMES:
            close = difflib.get_close_matches(n, list(RUNTIMES), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownPathError(f"unknown runtime {n!r}; {hint}known runtimes: {', '.join(RUNTIMES)}, or all")
    return wanted


def installed_paths(selected: tuple[str, ...], backends: tuple[str, ...] = ("tensorflow",),
                    ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:  # fmt: skip
    """(the selected paths whose runtime is installed and run by one of ``backends``, (path, why not) for each
    serving runtime that is not): a missing runtime is skipped with one line, never the run's failure. Found
    without importing anything."""
    from kbench.backends.runtimes import missing

    def why_not(p: str) -> str | None:
        if not any(PATHS[p].available(b) for b in backends):
            return "a path of the TensorFlow worker (Keras exports from TensorFlow); add tensorflow to --backend"
        return missing(p)

    gone = tuple((p, why) for p in selected if PATHS[p].runtime and (why := why_not(p)) is not None)
    dropped = {p for p, _ in gone}
    return tuple(p for p in selected if p not in dropped), gone


def parse_backends(names: Iterable[str] | None) -> tuple[str, ...]:
    """``["tensorflow,jax"]`` -> ("tensorflow", "jax"); each must be in :data:`kbench.backends.BACKENDS` and
    installed (found without importing it: the parent never imports a backend)."""
    import importlib.util

    from kbench.backends import BACKENDS
    from kbench.core.errors import BackendError

    wanted = tuple(dict.fromkeys(n.strip() for item in (names or ["tensorflow"]) for n in item.split(",") if n.strip()))
    if not wanted:
        raise BackendError(f"--backend is empty; name one or more of {', '.join(BACKENDS)}")
    for b in wanted:
        if b not in BACKENDS:
            close = difflib.get_close_matches(b, list(BACKENDS), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BackendError(f"unknown backend {b!r}; {hint}use one of {', '.join(BACKENDS)}")
        if importlib.util.find_spec(BACKENDS[b].module) is None:
            raise BackendError(f"backend {b!r} is not installed; {BACKENDS[b].install}")
    return wanted


def check_dtype(dtype: str) -> str:
    if dtype not in SUPPORTED_DTYPES:
        raise DtypeError(f"unsupported dtype {dtype!r}; use one of {', '.join(SUPPORTED_DTYPES)}")
    return dtype


def parse_options(specs: list[ModelSpec], raw: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{"activation": "relu"}`` -> per model, the full option dict (defaults filled in, values typed)."""
    for key in raw:
        if not any(key in s.options for s in specs):
            known = sorted({k for s in specs for k in s.options})
            raise BadOptionError(
                f"no selected model has option {key!r}; options: {', '.join(known) or 'none'} (see `kbench list`)"
            )
    out = {}
    for s in specs:
        opts = s.default_options
        for key, text in raw.items():
            if key not in s.options:
                continue
            allowed = s.options[key]
            match = [v for v in allowed if str(v).lower() == str(text).strip().lower()]
            if not match:
                raise BadOptionError(
                    f"option {key}={text!r} is not allowed for model {s.name!r}; use one of {', '.join(map(str, allowed))}"
                )
            opts[key] = match[0]
        out[s.name] = opts
    return out


def make_cells(
    specs: list[ModelSpec],
    sizes: Mapping[str, tuple[int, ...]],
    options: Mapping[str, str],
    dtype: str,
    n_paths: int,
    mem_available: int | None = None,
    max_cells: int = MAX_CELLS,
    sweep: bool = False,
    force: bool = False,
) -> tuple[tuple[Cell, ...], tuple[tuple[str, str, str], ...]]:
    """(cells, skipped). Cells over the memory guard are skipped with their reason (kept with ``force``); if every
    cell is, the run is refused. With ``sweep``, each model's ``MODEL.sweep`` preset replaces its defaults."""
    _check_models(specs, sizes, dtype)
    opts = parse_options(specs, options)
    limit = (available_memory() if mem_available is None else mem_available) * MEMORY_SHARE
    check_stored_weights(specs, n_paths, limit, force)
    grids = [(s, _size_grid(s, sizes, sweep)) for s in specs]
    total = sum(math.prod(len(v) for v in g.values()) for _, g in grids)
    if total > max_cells:
        raise BadSizeError(f"these sizes make {total} cells, over --max-cells {max_cells}; narrow the ranges or raise --max-cells")
    cells, skipped, refusals = [], [], []
    for s, grid in grids:
        # the last size varies fastest; the product is small to large along every axis
        for combo in itertools.product(*grid.values()):
            point = dict(zip(grid, combo))
            label = " ".join(f"{k}={v}" for k, v in point.items())
            need = estimate_bytes(s, point, n_paths)
            if need > limit and not force:
                reason = (f"needs about {need / 2**30:.1f} GiB ((weights+inputs+output) x 8 B x {n_paths + 3} copies), "
                          f"over {MEMORY_SHARE:.0%} of the {limit / MEMORY_SHARE / 2**30:.1f} GiB available")  # fmt: skip
                skipped.append((s.name, label, reason))
                refusals.append(f"{s.name} at {label} {reason}; choose smaller sizes")
                continue
            cells.append(Cell(s.name, s.source, tuple(point.items()), tuple(opts[s.name].items()), dtype))
    if not cells and refusals:
        raise MemoryLimitError(refusals[0] + " (or pass --force)")
    return tuple(cells), tuple(skipped)


def _check_models(specs: list[ModelSpec], sizes: Mapping[str, tuple[int, ...]], dtype: str) -> None:
    """The dtype is supported (and the one a saved model computes in); every size names a size of some model."""
    check_dtype(dtype)
    for s in specs:  # a saved model computes in the dtype it was saved in
        if s.dtypes and dtype not in s.dtypes:
            raise DtypeError(f"model {s.name!r} computes in {s.dtypes[0]}, not {dtype}; pass --dtype {s.dtypes[0]}")
    for name in sizes:
        if not any(name in s.sizes for s in specs):
            have = "; ".join(f"{s.name}: {', '.join(s.sizes)}" for s in specs)
            raise BadSizeError(f"no selected model has size {name!r} ({have}); drop --{name} or pick another model")


def _size_grid(spec: ModelSpec, sizes: Mapping[str, tuple[int, ...]], sweep: bool) -> dict[str, tuple[int, ...]]:
    """Each of the model's sizes: the values given, else (with ``sweep``) its preset's, else its default."""
    if sweep and not spec.sweep:
        raise BadSizeError(f"model {spec.name!r} has no sweep preset; give ranges instead, e.g. --batch 2**0..2**10")
    preset = {k: parse_size_list(k, v) for k, v in spec.sweep.items()} if sweep else {}
    if sweep and all(k in sizes for k in preset):
        given = " ".join(f"--{k} {','.join(map(str, sizes[k]))}" for k in preset)
        raise BadSizeError(f"--sweep conflicts with {given}: the preset would sweep nothing; drop one of them")
    return {k: sizes.get(k, preset.get(k, v)) for k, v in spec.sizes.items()}


def parse_duration(text: str | float | None) -> float | None:
    """``"300"``, ``"300s"``, ``"5m"``, ``"1.5h"`` -> seconds; None stays None."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|h|min)?\s*", str(text))
    if m is None:
        raise BadSizeError(f"--budget {text!r} is not a duration; write e.g. --budget 90s, --budget 5m or --budget 1h")
    seconds = float(m.group(1)) * {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    if seconds <= 0:
        raise BadSizeError(f"--budget {text} must be more than 0; write e.g. --budget 5m")
    return seconds


_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str | tuple[int, int] | Shard | None) -> Shard | None:
    """``"2/4"`` (or ``(2, 4)``) -> Shard(2, 4); None stays None. K and N are whole numbers with 1 <= K <= N."""
    if text is None or isinstance(text, Shard):
        return text
    if isinstance(text, tuple) and len(text) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in text):
        k, n = text
    else:
        m = _SHARD.fullmatch(text) if isinstance(text, str) and text.isascii() else None
        if m is None:
            raise BadOptionError(f"--shard {str(text)!r} is not K/N; write e.g. --shard 2/4 for the second of 4 shards")
        k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise BadOptionError(f"--shard {k}/{n}: N must be 1 or more; write e.g. --shard 1/4")
    if not 1 <= k <= n:
        raise BadOptionError(f"--shard {k}/{n}: K must be from 1 to {n}; shards are numbered 1/{n} to {n}/{n}")
    return Shard(k, n)


def reproduce_command(argv: list[str]) -> str:
    return "kbench " + " ".join(shlex.quote(a) for a in argv)
