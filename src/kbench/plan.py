"""Planning: turn what the user asked for into validated cells, before anything is allocated or spawned.

A *cell* is one (model, sizes, options, dtype) point; every selected call path is measured in every cell. All
input checks live here so that a bad request fails in the parent, in milliseconds, with nothing written.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from kbench.errors import BadOptionError, BadSizeError, DtypeError, MemoryLimitError, UnknownPathError
from kbench.paths import BASELINE, PATHS
from kbench.spec import ModelSpec
from kbench.timer import TimerConfig
from kbench.weights import SUPPORTED_DTYPES

MEMORY_SHARE = 0.5  # refuse a cell whose estimate exceeds this share of available memory
MAX_SIZE = 2**40


@dataclass(frozen=True)
class Cell:
    model: str
    model_file: str
    sizes: tuple[tuple[str, int], ...]
    options: tuple[tuple[str, Any], ...]
    dtype: str

    @property
    def sizes_dict(self) -> dict[str, int]:
        return dict(self.sizes)

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.sizes)


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    paths: tuple[str, ...]
    seed: int = 0
    timer: TimerConfig = field(default_factory=TimerConfig)
    backend: str = "tensorflow"
    mode: str = "run"  # "run" (cold + parity + steady) or "parity"
    command: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        cells = tuple(
            Cell(c["model"], c["model_file"], tuple(map(tuple, c["sizes"])), tuple(map(tuple, c["options"])), c["dtype"])
            for c in d["cells"]
        )
        return cls(cells, tuple(d["paths"]), d["seed"], TimerConfig(**d["timer"]), d["backend"], d["mode"], d["command"])


def parse_size_list(name: str, text: str | int | Iterable[int]) -> tuple[int, ...]:
    """``"1,32,1024"`` -> (1, 32, 1024): positive integers, sorted small to large, duplicates dropped."""
    items = [text] if isinstance(text, (str, int)) else list(text)
    parts = [p.strip() for item in items for p in str(item).split(",")]
    values = []
    for p in parts:
        if p.startswith("-") and p[1:].isascii() and p[1:].isdigit():
            raise BadSizeError(f"--{name} {p} must be positive; give sizes of 1 or more")
        if not p:
            raise BadSizeError(f"--{name} has an empty entry; give sizes such as --{name} 1,32")
        if not (p.isascii() and p.isdigit()):
            raise BadSizeError(f"--{name} {p!r} is not an integer; give positive whole numbers such as --{name} 1,32")
        v = int(p)
        if v <= 0:
            raise BadSizeError(f"--{name} {v} must be positive; give sizes of 1 or more")
        if v > MAX_SIZE:
            raise BadSizeError(f"--{name} {v} is absurdly large (over 2**40); give a size that fits in memory")
        values.append(v)
    if not values:
        raise BadSizeError(f"--{name} is empty; give one or more sizes such as --{name} 1,32")
    return tuple(sorted(set(values)))


def parse_paths(names: Iterable[str] | None) -> tuple[str, ...]:
    """Selected paths in registry order; the NumPy baseline is always included (ratios are taken against it)."""
    if not names:
        return tuple(PATHS)
    wanted = {n.strip() for item in names for n in item.split(",") if n.strip()}
    if not wanted:
        raise UnknownPathError(f"--path is empty; name one or more of {', '.join(PATHS)}")
    for n in sorted(wanted):
        if n not in PATHS:
            close = difflib.get_close_matches(n, list(PATHS), n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            raise UnknownPathError(f"unknown path {n!r}; {hint}known paths: {', '.join(PATHS)}")
    wanted.add(BASELINE)
    return tuple(p for p in PATHS if p in wanted)


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


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def estimate_bytes(spec: ModelSpec, sizes: Mapping[str, int], n_paths: int) -> int:
    """Weights + inputs + output, 8 bytes each (the float64 reference), times (paths + 3) copies: one output per
    path, the run-dtype arrays, the float64 reference arrays and Keras' own copy of the weights."""
    elements = sum(math.prod(t.resolve(sizes)) for t in (*spec.weights, *spec.inputs))
    elements += math.prod(spec.output_shape(sizes))
    return elements * 8 * (n_paths + 3)


def make_cells(
    specs: list[ModelSpec],
    sizes: Mapping[str, tuple[int, ...]],
    options: Mapping[str, str],
    dtype: str,
    n_paths: int,
    mem_available: int | None = None,
) -> tuple[Cell, ...]:
    check_dtype(dtype)
    for name in sizes:
        if not any(name in s.sizes for s in specs):
            have = "; ".join(f"{s.name}: {', '.join(s.sizes)}" for s in specs)
            raise BadSizeError(f"no selected model has size {name!r} ({have}); drop --{name} or pick another model")
    opts = parse_options(specs, options)
    limit = (available_memory() if mem_available is None else mem_available) * MEMORY_SHARE
    cells = []
    for s in specs:
        grid = {k: sizes.get(k, v) for k, v in s.sizes.items()}
        # the last size varies fastest; the product is small to large along every axis
        for combo in itertools.product(*grid.values()):
            point = dict(zip(grid, combo))
            need = estimate_bytes(s, point, n_paths)
            if need > limit:
                raise MemoryLimitError(
                    f"{s.name} at {' '.join(f'{k}={v}' for k, v in point.items())} needs about {need / 2**30:.1f} GiB "
                    f"((weights+inputs+output) x 8 B x {n_paths + 3} copies), over {MEMORY_SHARE:.0%} of the "
                    f"{limit / MEMORY_SHARE / 2**30:.1f} GiB available; choose smaller sizes"
                )
            cells.append(Cell(s.name, s.source, tuple(point.items()), tuple(opts[s.name].items()), dtype))
    return tuple(cells)


def reproduce_command(argv: list[str]) -> str:
    return "kbench " + " ".join(shlex.quote(a) for a in argv)
