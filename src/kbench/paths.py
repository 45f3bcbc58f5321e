"""The call-path registry: a path name -> how to turn (model, inputs) into a zero-argument callable.

Every timed region is end to end, **NumPy in -> NumPy out**, so all paths stand on the same footing: input
conversion, dispatch, the computation and the copy of the result back into a NumPy array are all inside.
Adding a path is one :class:`CallPath` entry in :data:`PATHS`. Backend modules are imported inside the
``prepare`` functions only, so this module is cheap to import in the parent process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from kbench.spec import ModelSpec

Arrays = Mapping[str, np.ndarray]
Bind = Callable[[Arrays], Callable[[], Any]]


@dataclass(frozen=True)
class PathContext:
    spec: ModelSpec
    weights: Mapping[str, np.ndarray]
    sizes: Mapping[str, int]
    options: Mapping[str, Any]
    dtype: str


@dataclass(frozen=True)
class CallPath:
    name: str
    runs: str  # the exact call
    timed_region: str  # what one timed call contains
    recompiles: str  # what makes it trace or compile again
    uses_keras: bool
    prepare: Callable[[PathContext, Any], Bind]  # (context, keras model or None) -> bind(inputs) -> fn()


def _keras_x(spec: ModelSpec, arrays: Arrays) -> Any:
    xs = [arrays[t.name] for t in spec.inputs]
    return xs[0] if len(xs) == 1 else xs


def _prepare_numpy(ctx: PathContext, model: Any) -> Bind:
    forward, weights, options = ctx.spec.forward, ctx.weights, dict(ctx.options)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        inputs = dict(arrays)
        return lambda: forward(weights, inputs, **options)

    return bind


def _prepare_predict(ctx: PathContext, model: Any) -> Bind:
    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = _keras_x(ctx.spec, arrays)
        n = len(arrays[ctx.spec.inputs[0].name])
        return lambda: model.predict(x, batch_size=n, verbose=0)

    return bind


def _prepare_predict_on_batch(ctx: PathContext, model: Any) -> Bind:
    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = _keras_x(ctx.spec, arrays)
        return lambda: model.predict_on_batch(x)

    return bind


def _prepare_call(ctx: PathContext, model: Any) -> Bind:
    import keras

    to_numpy = keras.ops.convert_to_numpy

    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = _keras_x(ctx.spec, arrays)
        return lambda: to_numpy(model(x, training=False))

    return bind


def _tf_function(ctx: PathContext, model: Any, jit_compile: bool) -> Bind:
    import tensorflow as tf

    signature = [
        tf.TensorSpec((None, *t.resolve(ctx.sizes)[1:]), dtype=ctx.dtype, name=t.name) for t in ctx.spec.inputs
    ]
    multi = len(signature) > 1

    def forward(*xs):
        return model(list(xs) if multi else xs[0], training=False)

    fn = tf.function(forward, input_signature=signature, jit_compile=jit_compile)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        xs = [arrays[t.name] for t in ctx.spec.inputs]
        return lambda: fn(*xs).numpy()

    return bind


def _prepare_compiled(ctx: PathContext, model: Any) -> Bind:
    return _tf_function(ctx, model, jit_compile=False)


def _prepare_xla(ctx: PathContext, model: Any) -> Bind:
    return _tf_function(ctx, model, jit_compile=True)


PATHS: dict[str, CallPath] = {
    p.name: p
    for p in (
        CallPath(
            "numpy",
            "the model file's hand-written NumPy forward, e.g. act(x @ kernel + bias)",
            "one call of the model file's forward(weights, inputs, **options): its NumPy expression plus the Python "
            "call around it (about 0.2 µs on this project's machine); no Keras, no conversion",
            "nothing",
            False,
            _prepare_numpy,
        ),
        CallPath(
            "predict",
            "model.predict(x, batch_size=len(x), verbose=0)",
            "data adapter and epoch iterator set-up, callbacks, one predict step (a tf.function), "
            "concatenation of the outputs into a NumPy array",
            "first call; a new input shape retraces the step function",
            True,
            _prepare_predict,
        ),
        CallPath(
            "predict_on_batch",
            "model.predict_on_batch(x)",
            "one predict step (Keras' tf.function with reduce_retracing) and conversion of the result to NumPy",
            "first call; the first new input shape retraces with a relaxed shape",
            True,
            _prepare_predict_on_batch,
        ),
        CallPath(
            "call",
            "keras.ops.convert_to_numpy(model(x, training=False))",
            "eager execution of the functional model: NumPy -> tensor conversion, each layer's op dispatch, "
            "result copied back to NumPy",
            "nothing (eager)",
            True,
            _prepare_call,
        ),
        CallPath(
            "compiled",
            "tf.function(model, input_signature=[TensorSpec((None, ...))])(x).numpy()",
            "NumPy -> tensor conversion, one graph-function call, result copied back to NumPy",
            "first call only: the batch dimension is relaxed (None) in the input signature",
            True,
            _prepare_compiled,
        ),
        CallPath(
            "xla",
            "tf.function(model, input_signature=[TensorSpec((None, ...))], jit_compile=True)(x).numpy()",
            "NumPy -> tensor conversion, one XLA-compiled call, result copied back to NumPy",
            "first call and every new concrete input shape (XLA compiles per shape)",
            True,
            _prepare_xla,
        ),
    )
}

BASELINE = "numpy"
