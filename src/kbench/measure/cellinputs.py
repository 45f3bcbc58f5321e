"""Step 1 of a cell (:mod:`kbench.measure.cellrun`): its inputs, shared by every path, and a path built on them.

The seeded weights (or a saved model's own) and inputs, the float64 reference, the terms' magnitudes and the NumPy
twin's output (checked against the shape the model file declares), and the parity tolerance. Every path is built
from them on a fresh model instance, so that no path warms another's caches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kbench.core.errors import ModelShapeError
from kbench.measure import parity
from kbench.backends.base import PathContext
from kbench.measure.callpaths import CallPath
from kbench.measure.protocol import Cell
from kbench.model.spec import ModelSpec
from kbench.model.weights import make_inputs, make_weights


@dataclass(frozen=True)
class CellInputs:
    """What every path of a cell is given (weights, inputs) and checked against (reference, twin, tolerance)."""

    spec: ModelSpec
    ctx: PathContext
    inputs: dict[str, np.ndarray]
    ref: np.ndarray | None  # None (and magnitudes and twin too) for a model without a NumPy twin (spec.no_twin)
    magnitudes: np.ndarray | None
    twin: np.ndarray | None
    tol: float

    def build(self, path: CallPath, backend: str) -> Any:
        """``path`` on a fresh model (none for the NumPy twin): its ``bind(inputs) -> fn``. The cold start times
        this call as the path's build (so the model is built here, not through one more call to :meth:`build_keras`)."""
        ctx = self.ctx
        if not path.uses_keras:
            return path.prepare(ctx, None, backend)
        import keras

        model = self.spec.build_keras(keras, dict(ctx.weights), dict(ctx.sizes), ctx.dtype, **dict(ctx.options))
        return path.prepare(ctx, model, backend)

    def build_keras(self) -> Any:
        """A fresh Keras model of the cell on the shared weights."""
        import keras

        ctx = self.ctx
        return self.spec.build_keras(keras, dict(ctx.weights), dict(ctx.sizes), ctx.dtype, **dict(ctx.options))


def prepare(cell: Cell, spec: ModelSpec, seed: int, precision: str) -> CellInputs:
    """The cell's inputs; a NumPy twin whose output differs from the declared shape is the model file's error."""
    sizes, options, dtype = cell.sizes_dict, cell.options_dict, cell.dtype
    weights = _weights(spec, sizes, dtype, seed)
    inputs = make_inputs(spec, sizes, dtype, seed)
    tol = parity.tolerance(dtype, spec.reduction(sizes), precision)
    if spec.forward is None:
        return CellInputs(spec, PathContext(spec, weights, sizes, options, dtype), inputs, None, None, None, tol)
    twin = np.asarray(spec.forward(weights, inputs, **options))
    declared = spec.output_shape(sizes)
    if twin.shape != declared:
        raise ModelShapeError(
            f"model {spec.name!r}: the NumPy forward returns shape {twin.shape} but MODEL.output declares "
            f"{declared} at {cell.label}; fix forward() or MODEL.output"
        )
    return CellInputs(
        spec, PathContext(spec, weights, sizes, options, dtype), inputs,
        parity.reference(spec, weights, inputs, options), parity.magnitude(spec, weights, inputs, options), twin,
        tol,
    )  # fmt: skip


def _weights(spec: ModelSpec, sizes: dict, dtype: str, seed: int) -> dict[str, np.ndarray]:
    """The seeded weights, or a saved model's own (read from the file once per cell, in the worker)."""
    if spec.own_weights is None:
        return make_weights(spec, sizes, dtype, seed)
    import keras

    return {k: np.asarray(v) for k, v in spec.own_weights(keras, dtype).items()}
