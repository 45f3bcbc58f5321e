"""One cell in the worker, step by step: prepare, cold start, parity, steady state, retrace.

Runs inside the worker process only (it imports Keras). Per path, in a shuffled order, each on a fresh model
instance so that no path warms another's caches:

1. ``prepare``     the shared weights and inputs, the float64 reference, the terms' magnitudes, the NumPy twin;
2. ``cold_start``  build (construct the Keras model and wrap it for the path, no call), then the first call at the
                   cell's sizes (tracing and compilation happen here), its output kept for parity;
3. ``parity``      every output against the reference, the twin and the other paths (:func:`kbench.measure.parity.check_all`);
4. ``steady``      all paths together, interleaved (:class:`kbench.measure.timer.Timer`);
5. ``retrace``     the first call at batch+1 after the steady state (models with a ``batch`` size only).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from kbench.measure import parity
from kbench.core.errors import ModelShapeError
from kbench.measure.callpaths import BASELINE, PATHS, CallPath, PathContext, paths_for
from kbench.measure.protocol import CellDone, Job, PathResult, Phase, Reference
from kbench.model.spec import ModelSpec
from kbench.measure.timer import Measurement, Timer, time_once
from kbench.model.weights import make_inputs, make_weights


@dataclass
class WorkerState:
    """What a worker process keeps between cells (instead of module globals)."""

    backend: str
    device: str = "cpu"  # the device in use, after set-up
    precision: str = "float32"  # the matmul precision in effect ("tf32" on GPUs by default)
    runtime_warm: bool = False  # the process-wide lazy set-up has been paid
    specs: dict[str, ModelSpec] = field(default_factory=dict)

    def spec(self, model_file: str) -> ModelSpec:
        from kbench.model.spec import load_model_file

        if model_file not in self.specs:
            self.specs[model_file] = load_model_file(model_file)
        return self.specs[model_file]


@dataclass(frozen=True)
class Prepared:
    spec: ModelSpec
    ctx: PathContext
    inputs: dict[str, np.ndarray]
    ref: np.ndarray | None  # None (and magnitudes and twin too) for a model without a NumPy twin (spec.no_twin)
    magnitudes: np.ndarray | None
    twin: np.ndarray | None
    tol: float


@dataclass(frozen=True)
class Cold:
    """A path after its cold start: the bound callable and what its first call cost and returned."""

    path: CallPath
    order: int
    build_s: float
    first_call_s: float
    bind: Callable[[Any], Callable[[], Any]]
    fn: Callable[[], Any]
    output: Any


def to_host(out: Any) -> np.ndarray:
    """A path's output as a NumPy array, for parity only (outside every timed region)."""
    if hasattr(out, "detach"):  # a torch tensor, possibly on a GPU
        return out.detach().cpu().numpy()
    return np.asarray(out)


class CellRunner:
    def __init__(self, job: Job, index: int, state: WorkerState, emit: Callable[[Any], None]) -> None:
        self.job, self.index, self.state, self.emit = job, index, state, emit
        self.cell = job.cells[index]
        self.rng = random.Random(f"{job.seed}:{index}:{job.process}")  # each process shuffles its own way

    def run(self, budget_s: float | None = None) -> CellDone:
        prepared = self.prepare()
        paths = [PATHS[p] for p in paths_for(self.job.backend, self.job.paths, self._resident())
                 if p != BASELINE or prepared.spec.forward is not None]  # no twin: the Keras paths only
        self.warm_runtime(prepared, paths)
        order = paths[:]
        self.rng.shuffle(order)
        cold = self.cold_start(prepared, order)
        checks = self.parity(prepared, cold)
        measured: dict[str, Measurement] = {}
        retraced: dict[str, tuple[float, int]] = {}
        references: tuple[Reference, ...] = ()
        served: dict[str, dict[str, Any]] = {}
        if self.job.mode == "run":
            refs = self.references(prepared, cold)
            measured, references = _split_references(self.steady(cold, budget_s, refs))
            served = self.serve_latency(cold, measured)
            retraced = self.retrace(prepared, cold)
        results = tuple(self._result(c, checks[c.path.name], measured.get(c.path.name), retraced.get(c.path.name))
                        for c in cold)  # fmt: skip
        results = tuple(replace(r, **served.get(r.path, {})) for r in results)
        return CellDone(self.index, results, tuple(c.path.name for c in cold), references)

    def _resident(self) -> bool:
        return self.job.resident if self.job.resident is not None else self.state.device == "gpu"

    def _phase(self, phase: str) -> None:
        self.emit(Phase(self.index, phase))

    # -- 1. prepare ----------------------------------------------------------------------------------------------
    def prepare(self) -> Prepared:
        spec = self.state.spec(self.cell.model_file)
        sizes, options, dtype = self.cell.sizes_dict, self.cell.options_dict, self.cell.dtype
        weights = self._weights(spec, sizes, dtype)
        inputs = make_inputs(spec, sizes, dtype, self.job.seed)
        tol = parity.tolerance(dtype, spec.reduction(sizes), self.state.precision)
        if spec.forward is None:
            return Prepared(spec, PathContext(spec, weights, sizes, options, dtype), inputs, None, None, None, tol)
        twin = np.asarray(spec.forward(weights, inputs, **options))
        declared = spec.output_shape(sizes)
        if twin.shape != declared:
            raise ModelShapeError(
                f"model {spec.name!r}: the NumPy forward returns shape {twin.shape} but MODEL.output declares "
                f"{declared} at {self.cell.label}; fix forward() or MODEL.output"
            )
        return Prepared(
            spec, PathContext(spec, weights, sizes, options, dtype), inputs,
            parity.reference(spec, weights, inputs, options), parity.magnitude(spec, weights, inputs, options), twin,
            tol,
        )  # fmt: skip

    def _weights(self, spec: ModelSpec, sizes: dict, dtype: str) -> dict[str, np.ndarray]:
        """The seeded weights, or a saved model's own (read from the file once per cell, in the worker)."""
        if spec.own_weights is None:
            return make_weights(spec, sizes, dtype, self.job.seed)
        import keras

        return {k: np.asarray(v) for k, v in spec.own_weights(keras, dtype).items()}

    def _build(self, prepared: Prepared, path: CallPath):
        ctx = prepared.ctx
        if not path.uses_keras:
            return path.prepare(ctx, None, self.job.backend)
        import keras

        model = prepared.spec.build_keras(keras, dict(ctx.weights), dict(ctx.sizes), ctx.dtype, **dict(ctx.options))
        return path.prepare(ctx, model, self.job.backend)

    def warm_runtime(self, prepared: Prepared, paths: list[CallPath]) -> None:
        """Once per process, before the first cold start: a throwaway pass over every path pays the process-wide
        lazy set-up (op registration, primitive caches, tracing machinery), so no path is charged for it."""
        if self.state.runtime_warm or self.job.mode != "run":
            return
        from kbench.measure.protocol import RuntimeInit

        self._phase("runtime init")
        t = time.perf_counter()
        for path in paths:
            self._build(prepared, path)(prepared.inputs)()
        self.emit(RuntimeInit(time.perf_counter() - t))
        self.state.runtime_warm = True
        _freeze_heap()

    # -- 2. cold start -------------------------------------------------------------------------------------------
    def cold_start(self, prepared: Prepared, order: list[CallPath]) -> list[Cold]:
        cold = []
        for i, path in enumerate(order):
            self._phase(f"cold start: {path.name}")
            build_s, bind = time_once(lambda: self._build(prepared, path))
            fn = bind(prepared.inputs)
            first_s, out = time_once(fn)
            cold.append(Cold(path, i, build_s, first_s, bind, fn, out))
        return cold

    # -- 3. parity -----------------------------------------------------------------------------------------------
    def parity(self, prepared: Prepared, cold: list[Cold]) -> dict[str, parity.ParityResult]:
        outputs = {}
        for c in cold:
            if c.path.transfer:  # a copy, not the model: nothing to compare
                continue
            out = to_host(c.output)
            if prepared.twin is not None and out.shape != prepared.twin.shape:
                raise ModelShapeError(
                    f"model {prepared.spec.name!r}: path {c.path.name!r} returns shape {out.shape} but the NumPy twin "
                    f"returns {prepared.twin.shape} at {self.cell.label}; make build_keras() and forward() compute the "
                    "same thing"
                )
            outputs[c.path.name] = out
        if prepared.twin is None:
            checks = parity.check_keras_only(outputs, prepared.tol, prepared.spec.no_twin)
        else:
            checks = parity.check_all(outputs, prepared.ref, prepared.twin, prepared.tol, prepared.magnitudes)
        nan = float("nan")
        for c in cold:
            if c.path.transfer:
                checks[c.path.name] = parity.ParityResult(c.path.name, True, prepared.tol, nan, nan, nan,
                                                          "transfer: no parity")  # fmt: skip
        return checks

    # -- 4. steady state -----------------------------------------------------------------------------------------
    def references(self, prepared: Prepared, cold: list[Cold]) -> dict[str, Callable[[], Any]]:
        """:mod:`kbench.measure.decompose`'s reference callables (kernel floor, conversions), each called once here so that
        tracing and compilation stay out of the steady state; none when no Keras host path runs in this cell."""
        from kbench.measure import decompose

        keras_paths = {c.path.name for c in cold if decompose.decomposable(c.path)}
        if not keras_paths:
            return {}
        self._phase("references")
        import keras

        ctx = prepared.ctx

        def build() -> Any:
            return prepared.spec.build_keras(keras, dict(ctx.weights), dict(ctx.sizes), ctx.dtype, **dict(ctx.options))

        inputs = [prepared.inputs[t.name] for t in prepared.spec.inputs]
        output = prepared.twin  # an array of the output's shape and dtype; without a twin, a Keras path's
        if output is None:
            output = next(to_host(c.output) for c in cold if not c.path.transfer)
        refs = decompose.reference_fns(self.job.backend, ctx, build, inputs, np.ascontiguousarray(output),
                                       with_xla="xla" in keras_paths)  # fmt: skip
        for fn in refs.values():
            fn()
        return refs

    def steady(self, cold: list[Cold], budget_s: float | None,
               refs: dict[str, Callable[[], Any]] | None = None) -> dict[str, Measurement]:
        """Every path and every reference (named ``ref:<name>``) in one interleaved run; a reference gets a smaller
        share of the budget (:data:`kbench.measure.decompose.REFERENCE_WEIGHT`)."""
        from kbench.measure.decompose import REFERENCE_WEIGHT

        self._phase("steady state")
        timer = self.job.timer
        config = replace(timer, seed=self.rng.randrange(2**31), budget_s=timer.budget_s if budget_s is None else budget_s)
        fns = {c.path.name: c.fn for c in cold}
        fns.update({REF_PREFIX + n: fn for n, fn in (refs or {}).items()})
        weights = {n: REFERENCE_WEIGHT if n.startswith(REF_PREFIX) else 1.0 for n in fns}
        return Timer(config).run(fns, weights)

    # -- 4b. latency as a server sees it (kbench.measure.latency): single calls, idle gaps, then memory ------------------
    def serve_latency(self, cold: list[Cold], measured: dict[str, Measurement]) -> dict[str, dict[str, Any]]:
        """Per path: single calls back to back and after each ``--gap``, then memory over a few more calls (in
        process 0 only). Paths too short to time alone get a note instead."""
        from kbench.measure import latency

        self._phase("latency")
        call_s = {n: m.median for n, m in measured.items() if m.samples}
        fns = {c.path.name: c.fn for c in cold}
        fastest = {n: m.min for n, m in measured.items() if m.samples}
        series = latency.measure_paths(fns, call_s, self.job.gaps, self.job.processes, [c.path.name for c in cold],
                                       self.job.latency_s, fastest)  # fmt: skip
        out: dict[str, dict[str, Any]] = {}
        for c in cold:
            name = c.path.name
            out[name] = {"latency": series[name]} if name in series else {"latency_note": latency.TOO_SHORT}
            if self.job.rate is not None and name in series:
                n = max(math.ceil(latency.GAP_CALLS / self.job.processes), 1)
                out[name]["arrivals"] = (latency.open_loop(c.fn, self.job.rate, n, random.Random(self.rng.random())),)
            if self.job.process == 0 and name in call_s:
                calls = 1 if call_s[name] > latency.SLOW_CALL_S else latency.MEM_CALLS
                latency.reset_device_peak(self.job.backend, c.path.placement)
                mem = latency.measure_memory(c.fn, calls)
                out[name].update(mem_rss_growth_b=mem.rss_growth_b, mem_py_peak_b=mem.py_peak_b,
                                 mem_device_peak_b=latency.device_peak_bytes(self.job.backend, c.path.placement))
        return out

    # -- 5. retrace ----------------------------------------------------------------------------------------------
    def retrace(self, prepared: Prepared, cold: list[Cold]) -> dict[str, tuple[float, int]]:
        if not prepared.spec.has_batch:
            return {}
        self._phase("retrace")
        sizes = {**self.cell.sizes_dict, "batch": self.cell.sizes_dict["batch"] + 1}
        inputs = make_inputs(prepared.spec, sizes, self.cell.dtype, self.job.seed)
        return {c.path.name: (time_once(c.bind(inputs))[0], sizes["batch"]) for c in cold}

    def _result(self, c: Cold, check, m: Measurement | None, retraced: tuple[float, int] | None) -> PathResult:
        keras_side = c.path.uses_keras or c.path.transfer
        result = PathResult(
            path=c.path.name, order=c.order, build_s=c.build_s if c.path.uses_keras else None,
            first_call_s=c.first_call_s, parity=check,
            device=self.state.device if keras_side else "cpu", placement=c.path.placement,
            precision=self.state.precision if c.path.uses_keras else "float32",
            retrace_s=retraced[0] if retraced else None, retrace_batch=retraced[1] if retraced else None,
        )  # fmt: skip
        if m is None:
            return result
        return replace(result, samples=tuple(m.samples), loops=m.loops, stop_reason=m.stop_reason,
                       loop_overhead_s=m.per_loop_overhead_s, fixed_overhead_s=m.fixed_overhead_s,
                       switch_warmup_calls=getattr(m, "switch_warmup_calls", 0))  # fmt: skip


REF_PREFIX = "ref:"  # a reference callable's name in the steady state's timer (paths never contain ":")


def _split_references(timed: dict[str, Measurement]) -> tuple[dict[str, Measurement], tuple[Reference, ...]]:
    """(the paths' measurements, the references' timings) out of one steady-state run."""
    paths = {n: m for n, m in timed.items() if not n.startswith(REF_PREFIX)}
    refs = tuple(Reference(n[len(REF_PREFIX):], tuple(m.samples), m.loops)
                 for n, m in timed.items() if n.startswith(REF_PREFIX))  # fmt: skip
    return paths, refs


def _freeze_heap() -> None:
    """Move every object alive now (the backend's modules, graphs, caches) out of the garbage collector's reach.

    A full collection in a process that has imported TensorFlow walks ~400k objects and takes ~0.2 s; kbench
    collects before every cold call and at the start of every steady state, so without this a cell spent seconds
    in the collector (measured: ~4 s of a 10 s cell). Objects made later (per cell) are still collected."""
    import gc

    gc.collect()
    gc.freeze()
