"""Step 4 of a cell (:mod:`kbench.measure.cellrun`), after the cold start: the steady state, then latency as a
server sees it.

- **References.** :mod:`kbench.measure.decompose`'s reference callables (floor, dispatch, conversions) and each
  serving runtime's three steps (bind, run, fetch), each called once before the steady state so that tracing and
  compilation stay out of it; after it, each floor under the backend's profiler where it has one
  (``profiled_<floor>``).
- **Steady state.** Every path and every backend reference (named ``ref:<name>``) in one interleaved
  :class:`kbench.measure.timer.Timer` run; a reference gets a smaller share of the budget
  (:data:`kbench.measure.decompose.REFERENCE_WEIGHT`). A serving runtime's three steps are timed after it, in a
  run of their own with the same share each: interleaved with the runtime's call, they slowed it (every visit to
  it then followed a switch, and often a quiesce wait that let the runtime's threads fall asleep; OpenVINO at dense
  batch 32 read 94-97 µs against 76-91 µs with the steps apart, in alternating runs).
- **Latency** (:mod:`kbench.measure.latency`). Per path: single calls back to back and after each ``--gap``, open-loop
  arrivals at ``--rate``, then memory over a few more calls (process 0 only).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from kbench.backends.base import Served
from kbench.backends.host import to_host
from kbench.measure.cellinputs import CellInputs
from kbench.measure.coldstart import Cold
from kbench.measure.protocol import Job, Reference
from kbench.measure.timer import Measurement, Timer

REF_PREFIX = "ref:"  # a reference callable's name in the steady state's timer (paths never contain ":")
Phase = Callable[[str], None]  # announces a step of the cell (kbench.measure.protocol.Phase)


def steady_state(inputs: CellInputs, cold: list[Cold], job: Job, budget_s: float | None, rng: random.Random,
                 phase: Phase) -> tuple[dict[str, Measurement], tuple[Reference, ...]]:  # fmt: skip
    """(the paths' measurements, the references' timings): the references made, then one interleaved run."""
    from kbench.measure.decompose import profiled

    refs = references(inputs, cold, job.backend, phase)
    measured, timed = split_references(steady(cold, job, budget_s, rng, refs, phase))
    if refs and job.mode == "run" and job.runs_extras:  # under the time goal, like the single calls: process 0
        phase("profile")
        medians = {r.name: statistics.median(r.samples) for r in timed if r.samples}
        timed += profiled(job.backend, refs, medians)
    return measured, timed


def references(inputs: CellInputs, cold: list[Cold], backend: str, phase: Phase) -> dict[str, Callable[[], Any]]:
    """The decomposition's reference callables, each called once: the backend's, when a Keras host path runs in
    the cell, and each serving runtime's steps (``<path>.bind``, ``.run``, ``.fetch``)."""
    refs = {f"{c.path.name}.{step}": fn for c in cold if isinstance(c.bind, Served) and c.bind.parts is not None
            for step, fn in c.bind.parts(inputs.inputs).items()}  # fmt: skip
    refs.update(backend_references(inputs, cold, backend))
    if refs:
        phase("references")
    for fn in refs.values():
        fn()
    return refs


def backend_references(inputs: CellInputs, cold: list[Cold], backend: str) -> dict[str, Callable[[], Any]]:
    """The backend's reference callables (floor, dispatch, conversions); none when no Keras host path runs."""
    from kbench.measure import decompose

    keras_paths = {c.path.name for c in cold if decompose.decomposable(c.path)}
    if not keras_paths:
        return {}
    model_inputs = [inputs.inputs[t.name] for t in inputs.spec.inputs]
    output = inputs.twin  # an array of the output's shape and dtype; without a twin, a Keras path's
    if output is None:
        output = next(to_host(c.output) for c in cold if not c.path.transfer)
    return decompose.reference_fns(backend, inputs.ctx, inputs.build_keras, model_inputs,
                                   np.ascontiguousarray(output), with_xla="xla" in keras_paths)  # fmt: skip


def steady(cold: list[Cold], job: Job, budget_s: float | None, rng: random.Random,
           refs: dict[str, Callable[[], Any]], phase: Phase) -> dict[str, Measurement]:  # fmt: skip
    """Every path and every reference in one interleaved run, the timer seeded from ``rng``; ``budget_s`` (None:
    the timer's own) is the cell's sampling budget."""
    from kbench.measure.decompose import REFERENCE_WEIGHT

    phase("steady state")
    timer = job.timer
    config = replace(timer, seed=rng.randrange(2**31), budget_s=timer.budget_s if budget_s is None else budget_s)
    apart = {REF_PREFIX + n: fn for n, fn in refs.items() if "." in n}  # a serving runtime's steps
    fns = {c.path.name: c.fn for c in cold}
    fns.update({REF_PREFIX + n: fn for n, fn in refs.items() if REF_PREFIX + n not in apart})
    weights = {n: REFERENCE_WEIGHT if n.startswith(REF_PREFIX) else 1.0 for n in fns}
    total = sum(weights.values()) + REFERENCE_WEIGHT * len(apart)
    if not total:  # every path of the process left out (a runtime that could not take the model)
        return {}
    share = sum(weights.values()) / total
    timed = Timer(replace(config, budget_s=config.budget_s * share)).run(fns, weights)
    if apart:  # after the call, in a run of their own: interleaved, they slowed the call they take apart
        steps = replace(config, seed=rng.randrange(2**31), budget_s=config.budget_s * (1 - share))
        timed.update(Timer(steps).run(apart, {n: 1.0 for n in apart}))
    return timed


def split_references(timed: dict[str, Measurement]) -> tuple[dict[str, Measurement], tuple[Reference, ...]]:
    """(the paths' measurements, the references' timings) out of one steady-state run."""
    paths = {n: m for n, m in timed.items() if not n.startswith(REF_PREFIX)}
    refs = tuple(Reference(n[len(REF_PREFIX):], tuple(m.samples), m.loops)
                 for n, m in timed.items() if n.startswith(REF_PREFIX))  # fmt: skip
    return paths, refs


def serve_latency(cold: list[Cold], measured: dict[str, Measurement], job: Job, rng: random.Random,
                  phase: Phase) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per path, the :class:`kbench.measure.protocol.PathResult` fields of its latency: single calls back to back
    and after each ``--gap``, arrivals at ``--rate``, then memory over a few more calls (in process 0 only). Paths
    too short to time alone get a note instead."""
    from kbench.measure import latency

    phase("latency")
    call_s = {n: m.median for n, m in measured.items() if m.samples}
    fns = {c.path.name: c.fn for c in cold}
    fastest = {n: m.min for n, m in measured.items() if m.samples}
    series = latency.measure_paths(fns, call_s, job.gaps, job.latency_processes, [c.path.name for c in cold],
                                   job.latency_s, fastest)  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for c in cold:
        name = c.path.name
        out[name] = {"latency": series[name]} if name in series else {"latency_note": latency.TOO_SHORT}
        if job.rate is not None and name in series:
            n = max(math.ceil(latency.GAP_CALLS / job.latency_processes), 1)
            out[name]["arrivals"] = (latency.open_loop(c.fn, job.rate, n, random.Random(rng.random())),)
        if job.process == 0 and name in call_s:
            calls = 1 if call_s[name] > latency.SLOW_CALL_S else latency.MEM_CALLS
            latency.reset_device_peak(job.backend, c.path.placement)
            mem = latency.measure_memory(c.fn, calls)
            out[name].update(mem_rss_growth_b=mem.rss_growth_b, mem_py_peak_b=mem.py_peak_b,
                             mem_device_peak_b=latency.device_peak_bytes(job.backend, c.path.placement))
    return out
