"""Where the time goes, the arithmetic: each Keras row's median split into compute, dispatch, the conversions and
the framework around them, from the reference callables every process timed (:mod:`kbench.measure.decompose`); a
serving runtime's row from its own call's three steps (:func:`runtime_columns`).

``overhead = path - floor - conversion_in - conversion_out`` (:func:`decompose`; each a pooled median), and the
floor (the model compiled, on resident inputs) is split in two: **compute**, the backend's kernels, and
**dispatch**, the rest of the floor. Compute comes from the backend's profiler where it has one (TensorFlow: the
``profiled_<floor>`` references, ``compute_from`` ``profiler``), else from wall clocks as the floor less a trivial
compiled call on the same backend (``floor-dispatch``; ``benchmarks/profile_check.py`` holds both against the
profiler); where neither was timed (torch), compute is the floor itself (``floor``). On a small cell the floor is mostly dispatch:
calling it "kernel" told a user the time was the math when it was the runtime's per-call cost. The overhead's
uncertainty comes from the medians' 95% CIs: each CI side is read as ~1.96 standard errors and the sides that push
the overhead the same way are added in quadrature, so ``overhead_low`` uses the path's low side and the references'
high sides. An overhead below zero is only shown as "within noise" when ``overhead_high`` is still >= 0; the parts
then add up to the path by construction. :func:`annotate` adds the columns (:data:`COLUMNS`) to a cell's rows;
``conversion_in_s`` and ``conversion_out_s`` give every Keras row of a GPU cell its transfer cost in one number (the
``h2d``/``d2h`` rows stay, for ``--resident`` runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from kbench.core import stats
from kbench.measure.callpaths import PATHS
from kbench.backends.base import (BASE, DISPATCH, DISPATCH_XLA, KERNEL, KERNEL_COMPILE, KERNEL_XLA, PROFILED,
                                  RUNTIME_PARTS, TO_BACKEND, TO_NUMPY)  # fmt: skip
from kbench.measure.decompose import decomposable

COLUMNS = ("floor_s", "floor_name", "compute_s", "compute_from", "dispatch_s", "conversion_in_s", "conversion_out_s",
           "overhead_s", "overhead_low_s", "overhead_high_s")  # fmt: skip
_PARTS = ("median_s", "floor_s", "conversion_in_s", "conversion_out_s", "overhead_s", "overhead_low_s",
          "overhead_high_s")  # fmt: skip  (a Decomposition's fields, in order)
FROM_PROFILER, FROM_DISPATCH, FROM_FLOOR = "profiler", "floor-dispatch", "floor"  # compute_from: how compute_s was had
FLOOR_NAMES = {"tensorflow": "tf.function", "jax": "jax.jit", "torch": "torch.jit.trace", KERNEL_COMPILE: "torch.compile"}


@dataclass(frozen=True)
class Estimate:
    """A median with its 95% CI, in seconds."""

    median: float
    low: float
    high: float

    @property
    def below(self) -> float:
        return max(self.median - self.low, 0.0)

    @property
    def above(self) -> float:
        return max(self.high - self.median, 0.0)


@dataclass(frozen=True)
class Decomposition:
    """One path's median as floor (compute + dispatch) + conversion in + conversion out + overhead (seconds)."""

    path_s: float
    floor_s: float
    conversion_in_s: float
    conversion_out_s: float
    overhead_s: float
    overhead_low_s: float
    overhead_high_s: float
    dispatch_s: float = math.nan  # the part of floor_s a trivial compiled call costs (nan: not measured)
    profiled_s: float = math.nan  # the floor's kernels by the backend's profiler (nan: none)

    @property
    def conversion_s(self) -> float:
        return self.conversion_in_s + self.conversion_out_s

    @property
    def dispatch_part_s(self) -> float:
        """Dispatch as a part of the floor, never below 0 nor above it: the floor less the profiled kernels where
        they were profiled, else the trivial call's median (0 when neither was measured)."""
        floor = max(self.floor_s, 0.0)
        if self.profiled:
            return floor - min(max(self.profiled_s, 0.0), floor)
        return 0.0 if math.isnan(self.dispatch_s) else min(max(self.dispatch_s, 0.0), floor)

    @property
    def compute_s(self) -> float:
        """The floor less its dispatch part (the floor itself where dispatch was not measured); >= 0."""
        return max(self.floor_s, 0.0) - self.dispatch_part_s

    @property
    def profiled(self) -> bool:
        return not math.isnan(self.profiled_s)

    @property
    def has_dispatch(self) -> bool:
        return self.profiled or not math.isnan(self.dispatch_s)

    @property
    def compute_from(self) -> str:
        return FROM_PROFILER if self.profiled else FROM_DISPATCH if self.has_dispatch else FROM_FLOOR

    @property
    def within_noise(self) -> bool:
        """The overhead's CI reaches zero: it cannot be told apart from none."""
        return self.overhead_low_s <= 0.0 <= self.overhead_high_s

    def shares(self) -> dict[str, float]:
        """Each part as a share of the path's median: compute, dispatch (0 where not measured: compute then holds
        it), conversion, overhead. An overhead below zero (within noise) counts as none, and the shares are then of
        the floor and the conversion together, so they never pass 100%."""
        parts = {"compute": self.compute_s, "dispatch": self.dispatch_part_s, "conversion": max(self.conversion_s, 0.0),
                 "overhead": max(self.overhead_s, 0.0)}  # fmt: skip
        total = sum(parts.values())
        return {k: v / total if total > 0 else math.nan for k, v in parts.items()}


def minus(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with each CI side added in quadrature (a conversion timed as the difference of two calls)."""
    median = a.median - b.median
    return Estimate(median, median - math.hypot(a.below, b.above), median + math.hypot(a.above, b.below))


def conversion(refs: Mapping[str, Estimate], name: str) -> Estimate | None:
    """A conversion's estimate: the reference itself, or minus its ``_base`` when the backend times it as a
    difference (JAX); None when it was not measured."""
    if name not in refs:
        return None
    return minus(refs[name], refs[name + BASE]) if name + BASE in refs else refs[name]


def decompose(path: Estimate, floor: Estimate, conversion_in: Estimate, conversion_out: Estimate,
              dispatch: float = math.nan, profiled: float = math.nan) -> Decomposition:  # fmt: skip
    """The path's median minus the floor and the two conversions, with the CI propagated (module docstring);
    ``dispatch``: the dispatch reference's median (NaN: not measured); ``profiled``: the floor's kernels by the
    backend's profiler, which then set compute (NaN: not profiled)."""
    refs = (floor, conversion_in, conversion_out)
    overhead = path.median - sum(r.median for r in refs)
    down = math.sqrt(path.below**2 + sum(r.above**2 for r in refs))
    up = math.sqrt(path.above**2 + sum(r.below**2 for r in refs))
    return Decomposition(path.median, floor.median, conversion_in.median, conversion_out.median, overhead,
                         overhead - down, overhead + up, dispatch, profiled)  # fmt: skip


def floor_of(backend: str, path: str) -> str:
    """Which reference is the path's floor: ``kernel_xla`` for TensorFlow's ``xla``, else ``kernel``."""
    return KERNEL_XLA if backend == "tensorflow" and path == "xla" else KERNEL


def floor_label(backend: str, path: str) -> str:
    """The floor as the ``floor_name`` column names it: ``tf.function``, ``xla``, ``jax.jit``, ``torch.compile``."""
    return "xla" if floor_of(backend, path) == KERNEL_XLA else FLOOR_NAMES.get(backend, backend)


def dispatch_of(floor: str, refs: Mapping[str, Estimate]) -> Estimate | None:
    """The floor's dispatch reference: ``dispatch_xla`` for the ``xla`` floor, ``dispatch`` for the others; JAX's
    is ``to_backend_base`` (the jitted touch on resident inputs); None when none was timed (torch)."""
    if floor == KERNEL_XLA:
        return refs.get(DISPATCH_XLA)
    return refs.get(DISPATCH) or refs.get(TO_BACKEND + BASE)


def row_columns(backend: str, path: str, measured: Estimate, refs: Mapping[str, Estimate]) -> dict[str, Any]:
    """The decomposition columns of one Keras row; empty when a reference it needs was not measured."""
    floor = floor_of(backend, path)
    floor = KERNEL_COMPILE if floor not in refs and KERNEL_COMPILE in refs else floor
    cin, cout = conversion(refs, TO_BACKEND), conversion(refs, TO_NUMPY)
    if floor not in refs or cin is None or cout is None:
        return {}
    dispatch, kernels = dispatch_of(floor, refs), refs.get(PROFILED + floor)
    d = decompose(measured, refs[floor], cin, cout, dispatch.median if dispatch else math.nan,
                  kernels.median if kernels else math.nan)  # fmt: skip
    label = FLOOR_NAMES[KERNEL_COMPILE] if floor == KERNEL_COMPILE else floor_label(backend, path)
    raw = {FROM_DISPATCH: d.floor_s - d.dispatch_s, FROM_PROFILER: d.profiled_s}  # as measured, even past the floor
    compute = raw.get(d.compute_from, d.compute_s)
    return {"floor_s": d.floor_s, "floor_name": label, "compute_s": compute, "compute_from": d.compute_from,
            "dispatch_s": d.dispatch_s, "conversion_in_s": d.conversion_in_s, "conversion_out_s": d.conversion_out_s,
            "overhead_s": d.overhead_s, "overhead_low_s": d.overhead_low_s,
            "overhead_high_s": d.overhead_high_s}  # fmt: skip


def runtime_columns(path: str, measured: Estimate, refs: Mapping[str, Estimate]) -> dict[str, Any]:
    """The decomposition columns of a serving runtime's row from its three steps (``<path>.bind``, ``.run``,
    ``.fetch``): the run on inputs already bound is the floor, all of it compute (``compute_from`` ``floor``: no
    dispatch reference for a runtime), binding the NumPy inputs and reading the output back are the conversions,
    and the rest of the call is overhead. Empty when a step was not measured."""
    steps = [refs.get(f"{path}.{step}") for step in RUNTIME_PARTS]
    if any(s is None for s in steps):
        return {}
    cin, floor, cout = steps
    d = decompose(measured, floor, cin, cout)
    return {"floor_s": d.floor_s, "floor_name": f"{path} run", "compute_s": d.compute_s, "compute_from": d.compute_from,
            "dispatch_s": d.dispatch_s, "conversion_in_s": d.conversion_in_s, "conversion_out_s": d.conversion_out_s,
            "overhead_s": d.overhead_s, "overhead_low_s": d.overhead_low_s,
            "overhead_high_s": d.overhead_high_s}  # fmt: skip


def _as_float(v: Any) -> float:
    """``v`` as a float; NaN when it is none (None, a string, a missing cell)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def from_row(row: Mapping[str, Any]) -> Decomposition | None:
    """A result row's decomposition, or None when it has none (NumPy, transfers, an older run)."""
    values = [_as_float(row.get(c)) for c in _PARTS]
    if any(math.isnan(v) for v in values):
        return None
    profiled = _as_float(row.get("compute_s")) if row.get("compute_from") == FROM_PROFILER else math.nan
    return Decomposition(*values, dispatch_s=_as_float(row.get("dispatch_s")), profiled_s=profiled)


def _group(name: str) -> str:
    """Whose reference it is: a serving runtime's (``onnxruntime.run`` -> ``onnxruntime``), else the backend's."""
    return name.split(".", 1)[0] if "." in name else ""


def reference_estimates(per_process: Sequence[Sequence[Any]]) -> dict[str, Estimate]:
    """Each reference's pooled median and 95% CI (:func:`kbench.core.stats.summarize`) from every process's
    :class:`kbench.measure.protocol.Reference` records; a reference that some process of its group lacks is left
    out (the backend's references come from the processes that ran the Keras paths, a runtime's from its own), except
    a profiled floor (``profiled_<floor>``), which under the time goal only the first process takes."""
    by_name: dict[str, list[tuple[float, ...]]] = {}
    owners: dict[str, int] = {}  # per group of references, the processes that timed any of them
    for refs in per_process:
        for group in {_group(r.name) for r in refs}:
            owners[group] = owners.get(group, 0) + 1
        for r in refs:
            if r.samples:
                by_name.setdefault(r.name, []).append(tuple(r.samples))
    out = {}
    for name, samples in by_name.items():
        if len(samples) == owners[_group(name)] or name.startswith(PROFILED):
            s = stats.summarize(samples)
            out[name] = Estimate(s.median, s.ci_low, s.ci_high)
    return out


def annotate(rows: list[dict], per_process: Sequence[Sequence[Any]], backend: str) -> None:
    """Add the decomposition columns to every Keras host row of one cell (in place)."""
    refs = reference_estimates(per_process) if per_process else {}
    if not refs:
        return
    for row in rows:
        path = PATHS.get(row["path"])
        median = row.get("median_s")
        if path is None or median is None or not median > 0:
            continue
        measured = Estimate(median, row["ci_low_s"], row["ci_high_s"])
        if path.runtime:
            row.update(runtime_columns(row["path"], measured, refs))
        elif decomposable(path):
            row.update(row_columns(backend, row["path"], measured, refs))
