"""One cell in the worker, step by step: prepare, cold start, parity, steady state, retrace.

Runs inside the worker process only (it imports Keras). Per path, in a shuffled order, each on a fresh model
instance so that no path warms another's caches:

1. ``prepare``     the shared weights and inputs, the float64 reference, the terms' magnitudes, the NumPy twin
                   (:mod:`kbench.measure.cellinputs`);
2. ``cold_start``  build (construct the Keras model and wrap it for the path, no call), then the first call at the
                   cell's sizes (tracing and compilation happen here), its output kept for parity
                   (:mod:`kbench.measure.coldstart`);
3. ``parity``      every output against the reference, the twin and the other paths (:func:`kbench.measure.parity.check_all`);
4. ``steady``      all paths together, interleaved (:class:`kbench.measure.timer.Timer`), then latency as a server
                   sees it (:mod:`kbench.measure.steady`);
5. ``retrace``     the first call at batch+1 after the steady state (models with a ``batch`` size only).

:class:`CellRunner` runs the steps in that order and turns what they found into the cell's
:class:`kbench.measure.protocol.CellDone`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from kbench.measure.callpaths import BASELINE, PATHS, CallPath, paths_for
from kbench.measure.cellinputs import CellInputs, prepare
from kbench.measure.coldstart import Cold, check_parity, cold_start
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import CellDone, Job, PathResult, Phase, Reference, RuntimeInit
from kbench.measure.steady import serve_latency, steady_state
from kbench.measure.timer import Measurement, time_once
from kbench.model.spec import ModelSpec
from kbench.model.weights import make_inputs


FIRST_PROCESS_ONLY = "single calls and the retrace check ran in the first process only (the time goal)"


@dataclass
class WorkerState:
    """What a worker process keeps between cells (instead of module globals)."""

    backend: str
    device: str = "cpu"  # the device in use, after set-up
    precision: str = "float32"  # the matmul precision in effect ("tf32" on GPUs by default)
    runtime_warm: bool = False  # the process-wide lazy set-up has been paid
    specs: dict[str, ModelSpec] = field(default_factory=dict)

    def spec(self, model_file: str) -> ModelSpec:
        from kbench.model.loader import load_model_file

        if model_file not in self.specs:
            self.specs[model_file] = load_model_file(model_file)
        return self.specs[model_file]


class CellRunner:
    """Cell ``index`` of ``job``, run once by :meth:`run`; ``emit`` sends the worker's events to the parent."""

    def __init__(self, job: Job, index: int, state: WorkerState, emit: Callable[[Any], None]) -> None:
        self.job, self.index, self.state, self.emit = job, index, state, emit
        self.cell = job.cells[index]
        self.rng = random.Random(f"{job.seed}:{index}:{job.slot}")  # each process shuffles its own way

    def run(self, budget_s: float | None = None) -> CellDone:
        job, cell = self.job, self.cell
        inputs = prepare(cell, self.state.spec(cell.model_file), job.seed, self.state.precision)
        paths = [PATHS[p] for p in paths_for(job.backend, job.paths, self._resident())
                 if p != BASELINE or inputs.spec.forward is not None]  # no twin: the Keras paths only
        self.warm_runtime(inputs, paths)
        order = paths[:]
        self.rng.shuffle(order)
        unavailable: dict[str, str] = {}  # serving runtimes that could not take the model: path -> reason
        cold = cold_start(inputs, order, job.backend, self._phase, unavailable)
        checks = check_parity(inputs, cold, cell.label, lambda: inputs.build(PATHS["call"], job.backend)(inputs.inputs)())
        measured: dict[str, Measurement] = {}
        retraced: dict[str, tuple[float, int]] = {}
        references: tuple[Reference, ...] = ()
        served: dict[str, dict[str, Any]] = {}
        if job.mode == "run":
            measured, references = steady_state(inputs, cold, job, budget_s, self.rng, self._phase)
            if job.runs_extras:
                served = serve_latency(cold, measured, job, self.rng, self._phase)
                retraced = self.retrace(inputs, cold)
            else:
                served = {c.path.name: {"latency_note": FIRST_PROCESS_ONLY} for c in cold}
        results = tuple(self._result(c, checks[c.path.name], measured.get(c.path.name), retraced.get(c.path.name))
                        for c in cold)  # fmt: skip
        results = tuple(replace(r, **served.get(r.path, {})) for r in results)
        return CellDone(self.index, results, tuple(c.path.name for c in cold), references,
                        unavailable=tuple(sorted(unavailable.items())))

    def _resident(self) -> bool:
        return self.job.resident if self.job.resident is not None else self.state.device == "gpu"

    def _phase(self, phase: str) -> None:
        self.emit(Phase(self.index, phase))

    def warm_runtime(self, inputs: CellInputs, paths: list[CallPath]) -> None:
        """Once per process, before the first cold start: a throwaway pass over every path pays the process-wide
        lazy set-up (op registration, primitive caches, tracing machinery), so no path is charged for it."""
        if self.state.runtime_warm or self.job.mode != "run":
            return
        self._phase("runtime init")
        t = time.perf_counter()
        for path in paths:
            impl = path.impl(self.job.backend)
            if impl is not None and impl.warm is not None:
                impl.warm()  # a serving runtime: its imports, no export
            else:
                inputs.build(path, self.job.backend)(inputs.inputs)()
        self.emit(RuntimeInit(time.perf_counter() - t))
        self.state.runtime_warm = True
        freeze_heap()

    def retrace(self, inputs: CellInputs, cold: list[Cold]) -> dict[str, tuple[float, int]]:
        """Per path, (the first call at batch+1 on its cold-started model, that batch); none without a batch size."""
        if not inputs.spec.has_batch:
            return {}
        self._phase("retrace")
        sizes = {**self.cell.sizes_dict, "batch": self.cell.sizes_dict["batch"] + 1}
        batch_inputs = make_inputs(inputs.spec, sizes, self.cell.dtype, self.job.seed)
        return {c.path.name: (time_once(c.bind(batch_inputs))[0], sizes["batch"]) for c in cold}

    def _result(self, c: Cold, check: ParityResult, m: Measurement | None,
                retraced: tuple[float, int] | None) -> PathResult:  # fmt: skip
        keras_side = (c.path.uses_keras and not c.path.runtime) or c.path.transfer
        result = PathResult(
            path=c.path.name, order=c.order, build_s=c.build_s if c.path.uses_keras else None,
            first_call_s=c.first_call_s, parity=check,
            device=self.state.device if keras_side else "cpu", placement=c.path.placement,
            precision=self.state.precision if c.path.uses_keras else "float32",
            retrace_s=retraced[0] if retraced else None, retrace_batch=retraced[1] if retraced else None,
            export_s=c.export_s, load_s=c.load_s, runtime=c.runtime, exporter=c.exporter, runtime_options=c.settings,
        )  # fmt: skip
        if m is None:
            return result
        return replace(result, samples=tuple(m.samples), loops=m.loops, stop_reason=m.stop_reason,
                       loop_overhead_s=m.per_loop_overhead_s, fixed_overhead_s=m.fixed_overhead_s,
                       switch_warmup_calls=getattr(m, "switch_warmup_calls", 0),
                       others_cpu=None if math.isnan(m.others_cpu) else m.others_cpu, shared=m.shared)  # fmt: skip


def freeze_heap() -> None:
    """Move every object alive now (the backend's modules, graphs, caches) out of the garbage collector's reach.

    A full collection in a process that has imported TensorFlow walks ~400k objects and takes ~0.2 s; kbench
    collects before every cold call and at the start of every steady state, so without this a cell spent seconds
    in the collector (measured: ~4 s of a 10 s cell). Objects made later (per cell) are still collected."""
    import gc

    gc.collect()
    gc.freeze()
