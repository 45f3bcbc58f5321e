"""Steps 2 and 3 of a cell (:mod:`kbench.measure.cellrun`): every path built and called once, cold, and the parity
of those first outputs.

- **Cold start.** Per path, in the cell's shuffled order: the build (construct the Keras model and wrap it for the
  path, no call), then the first call at the cell's sizes (tracing and compilation happen here), each timed once
  with gc held off (:func:`kbench.measure.timer.time_once`); the first output is kept for parity. A serving
  runtime's build also exports the model and loads the file (timed apart by its prepare); one that cannot take the
  model is left out of the cell with its reason, the other paths go on.
- **Parity.** Every first output against the float64 reference, the NumPy twin and the other paths
  (:func:`kbench.measure.parity.check_all`), or the Keras paths against each other for a model without a twin. A
  transfer path times a copy, not the model: nothing to compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kbench.backends.base import Served
from kbench.backends.host import to_host
from kbench.core.errors import ExportError, ModelShapeError
from kbench.measure import parity
from kbench.measure.callpaths import CallPath
from kbench.measure.cellinputs import CellInputs
from kbench.measure.timer import time_once


@dataclass(frozen=True)
class Cold:
    """A path after its cold start: the bound callable and what its first call cost and returned. A serving
    runtime's build is split: ``build_s`` the Keras model, ``export_s`` its file, ``load_s`` the runtime's load."""

    path: CallPath
    order: int
    build_s: float
    first_call_s: float
    bind: Callable[[Any], Callable[[], Any]]
    fn: Callable[[], Any]
    output: Any
    export_s: float | None = None
    load_s: float | None = None
    runtime: str = ""
    exporter: str = ""
    settings: tuple[tuple[str, Any], ...] = ()


def cold_start(inputs: CellInputs, order: list[CallPath], backend: str, phase: Callable[[str], None],
               unavailable: dict[str, str] | None = None) -> list[Cold]:  # fmt: skip
    """Each path of ``order`` built and called once, in that order; ``phase`` announces each. A serving runtime
    that cannot take the model (:class:`ExportError`) is left out, its reason put in ``unavailable``."""
    cold = []
    for i, path in enumerate(order):
        phase(f"cold start: {path.name}")
        try:
            build_s, bind = time_once(lambda: inputs.build(path, backend))
            fn = bind(inputs.inputs)
        except ExportError as exc:
            if unavailable is None:
                raise
            unavailable[path.name] = str(exc)
            continue
        first_s, out = time_once(fn)
        if isinstance(bind, Served):
            cold.append(Cold(path, i, build_s - bind.export_s - bind.load_s, first_s, bind, fn, out, bind.export_s,
                             bind.load_s, bind.runtime, bind.exporter, bind.settings))  # fmt: skip
        else:
            cold.append(Cold(path, i, build_s, first_s, bind, fn, out))
    return cold


def check_parity(inputs: CellInputs, cold: list[Cold], label: str,
                 keras_call: Callable[[], Any] | None = None) -> dict[str, parity.ParityResult]:  # fmt: skip
    """Per path, its first output's parity; a path whose output shape differs from the twin's is the model file's
    error (``label``: the cell's sizes, for the message). Without a twin, serving runtimes alone in their process
    are held against ``keras_call`` (Keras' own call of the model, untimed)."""
    outputs = {}
    for c in cold:
        if c.path.transfer:  # a copy, not the model: nothing to compare
            continue
        out = to_host(c.output)
        if inputs.twin is not None and out.shape != inputs.twin.shape:
            raise ModelShapeError(
                f"model {inputs.spec.name!r}: path {c.path.name!r} returns shape {out.shape} but the NumPy twin "
                f"returns {inputs.twin.shape} at {label}; make build_keras() and forward() compute the same thing"
            )
        outputs[c.path.name] = out
    served_alone = bool(outputs) and all(c.path.runtime for c in cold if not c.path.transfer)
    if inputs.twin is None and served_alone and keras_call is not None:
        checks = parity.check_against_keras(outputs, to_host(keras_call()), inputs.tol, inputs.spec.no_twin)
    elif inputs.twin is None:
        checks = parity.check_keras_only(outputs, inputs.tol, inputs.spec.no_twin)
    else:
        checks = parity.check_all(outputs, inputs.ref, inputs.twin, inputs.tol, inputs.magnitudes)
    nan = float("nan")
    for c in cold:
        if c.path.transfer:
            checks[c.path.name] = parity.ParityResult(c.path.name, True, inputs.tol, nan, nan, nan,
                                                      "transfer: no parity")  # fmt: skip
    return checks
