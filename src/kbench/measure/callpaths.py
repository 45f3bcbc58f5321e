"""The call-path registry: a path name -> per Keras backend, how to turn (model, inputs) into a zero-argument callable.

Every timed region is end to end, **NumPy in -> NumPy out**, so all paths stand on the same footing: input
conversion, dispatch, the computation and the copy of the result back into a NumPy array are all inside.
Paths share a name across backends where the meaning matches (``call``, ``compiled``, ...); each backend's
:class:`Impl` says exactly what it runs and what makes it recompile. Adding a path is one :class:`CallPath` entry
in :data:`PATHS`. Backend modules are imported inside the ``prepare`` functions only, so this module is cheap to
import in the parent process. The device-resident paths and transfers (``call@device``, ``h2d``, ``d2h``) serve
every backend whose :class:`kbench.backends.Backend` has ``resident`` hooks, through those hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from kbench import backends
from kbench.model.spec import ModelSpec

Arrays = Mapping[str, np.ndarray]
Bind = Callable[[Arrays], Callable[[], Any]]
ANY = "*"  # an Impl that serves every backend

BACKENDS = backends.BACKENDS  # backend name -> kbench.backends.Backend (kept here for older importers)


@dataclass(frozen=True)
class PathContext:
    spec: ModelSpec
    weights: Mapping[str, np.ndarray]
    sizes: Mapping[str, int]
    options: Mapping[str, Any]
    dtype: str


@dataclass(frozen=True)
class Impl:
    runs: str  # the exact call
    recompiles: str  # what makes it trace or compile again
    prepare: Callable[[PathContext, Any], Bind]  # (context, keras model or None) -> bind(inputs) -> fn()


@dataclass(frozen=True)
class CallPath:
    name: str
    timed_region: str  # what one timed call contains
    uses_keras: bool
    impls: Mapping[str, Impl] = field(default_factory=dict)
    placement: str = "host"  # "host": NumPy in -> NumPy out; "device": inputs placed once, output synchronised
    transfer: bool = False  # times a copy of the cell's input or output, not the model: no parity, no shape check
    on_device: Callable[[backends.Backend], Impl] | None = None  # the Impl of any backend with device-resident support

    def impl(self, backend: str) -> Impl | None:
        found = self.impls.get(backend) or self.impls.get(ANY)
        if found is None and self.on_device is not None:
            entry = backends.find(backend)
            if entry is not None and entry.resident is not None:
                found = self.on_device(entry)
        return found

    def available(self, backend: str) -> bool:
        return self.impl(backend) is not None

    def prepare(self, ctx: PathContext, model: Any, backend: str = "tensorflow") -> Bind:
        impl = self.impl(backend)
        if impl is None:
            raise KeyError(f"path {self.name!r} has no {backend} implementation")
        return impl.prepare(ctx, model)


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


def _prepare_call_torch(ctx: PathContext, model: Any) -> Bind:
    import keras
    import torch

    to_numpy = keras.ops.convert_to_numpy

    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = _keras_x(ctx.spec, arrays)

        def fn():
            with torch.no_grad():
                return to_numpy(model(x, training=False))

        return fn

    return bind


def _tf_function(ctx: PathContext, model: Any, jit_compile: bool) -> Bind:
    import tensorflow as tf

    signature = [
        tf.TensorSpec((None, *t.resolve(ctx.sizes)[1:]), dtype=t.dtype_for(ctx.dtype), name=t.name)
        for t in ctx.spec.inputs
    ]
    multi = len(signature) > 1

    def forward(*xs):
        return model(list(xs) if multi else xs[0], training=False)

    fn = tf.function(forward, input_signature=signature, jit_compile=jit_compile)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        xs = [arrays[t.name] for t in ctx.spec.inputs]
        return lambda: fn(*xs).numpy()

    return bind


def _prepare_compiled_tf(ctx: PathContext, model: Any) -> Bind:
    return _tf_function(ctx, model, jit_compile=False)


def _prepare_xla(ctx: PathContext, model: Any) -> Bind:
    return _tf_function(ctx, model, jit_compile=True)


def _jax_jitted(ctx: PathContext, model: Any) -> Callable[..., Any]:
    """``f(*xs)``: jax.jit over the model's stateless_call, its variables bound once."""
    import jax

    multi = len(ctx.spec.inputs) > 1
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(tv, ntv, *xs):
        y, _ = model.stateless_call(tv, ntv, list(xs) if multi else xs[0], training=False)
        return y

    return lambda *xs: forward(trainable, non_trainable, *xs)


def _prepare_compiled_jax(ctx: PathContext, model: Any) -> Bind:
    forward = _jax_jitted(ctx, model)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        xs = [arrays[t.name] for t in ctx.spec.inputs]
        # np.asarray waits for the result and copies it to the host: a fresh output each call, nothing cached
        return lambda: np.asarray(forward(*xs))

    return bind


def _torch_callable(ctx: PathContext, model: Any, compiled: bool) -> Callable[[list[Any]], Any]:
    """``f(tensors)`` under torch.no_grad: the eager model, or torch.compile of it."""
    import torch

    target = torch.compile(model) if compiled else model
    multi = len(ctx.spec.inputs) > 1

    def call(ts: list[Any]) -> Any:
        with torch.no_grad():
            return target(ts if multi else ts[0], training=False)

    return call


def _prepare_compiled_torch(ctx: PathContext, model: Any) -> Bind:
    import torch

    call = _torch_callable(ctx, model, compiled=True)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        xs = [arrays[t.name] for t in ctx.spec.inputs]
        return lambda: call([torch.from_numpy(x) for x in xs]).cpu().numpy()

    return bind


PATHS: dict[str, CallPath] = {
    p.name: p
    for p in (
        CallPath(
            "numpy",
            "one call of the model file's forward(weights, inputs, **options): its NumPy expression plus the Python "
            "call around it (about 0.2 µs on this project's machine); no Keras, no conversion",
            False,
            {ANY: Impl("the model file's hand-written NumPy forward, e.g. act(x @ kernel + bias)", "nothing",
                       _prepare_numpy)},  # fmt: skip
        ),
        CallPath(
            "predict",
            "data adapter and epoch iterator set-up, callbacks, one predict step, concatenation of the outputs into a "
            "NumPy array",
            True,
            {
                "tensorflow": Impl("model.predict(x, batch_size=len(x), verbose=0): builds a tf.data pipeline per call",
                                   "first call; a new input shape retraces the step function", _prepare_predict),
                "jax": Impl("model.predict(x, batch_size=len(x), verbose=0): a jax.jit-compiled predict step",
                            "first call; every new input shape (jit compiles per shape)", _prepare_predict),
                "torch": Impl("model.predict(x, batch_size=len(x), verbose=0): eager steps under torch.no_grad",
                              "nothing (eager)", _prepare_predict),
            },  # fmt: skip
        ),
        CallPath(
            "predict_on_batch",
            "one predict step and conversion of the result to NumPy",
            True,
            {
                "tensorflow": Impl("model.predict_on_batch(x): Keras' tf.function with reduce_retracing",
                                   "first call; the first new input shape retraces with a relaxed shape",
                                   _prepare_predict_on_batch),
                "jax": Impl("model.predict_on_batch(x): Keras' jax.jit-compiled predict step",
                            "first call; every new input shape", _prepare_predict_on_batch),
                "torch": Impl("model.predict_on_batch(x): one eager step under torch.no_grad", "nothing (eager)",
                              _prepare_predict_on_batch),
            },  # fmt: skip
        ),
        CallPath(
            "call",
            "eager execution of the functional model: NumPy -> tensor conversion, each layer's op dispatch, result "
            "copied back to NumPy",
            True,
            {
                "tensorflow": Impl("keras.ops.convert_to_numpy(model(x, training=False))", "nothing (eager)",
                                   _prepare_call),
                "jax": Impl("keras.ops.convert_to_numpy(model(x, training=False)), op by op", "nothing (eager)",
                            _prepare_call),
                "torch": Impl("with torch.no_grad(): keras.ops.convert_to_numpy(model(x, training=False))",
                              "nothing (eager)", _prepare_call_torch),
            },  # fmt: skip
        ),
        CallPath(
            "compiled",
            "NumPy -> tensor conversion, one compiled call, result copied back to NumPy",
            True,
            {
                "tensorflow": Impl("tf.function(model, input_signature=[TensorSpec((None, ...))])(x).numpy()",
                                   "first call only: the batch dimension is relaxed (None) in the input signature",
                                   _prepare_compiled_tf),
                "jax": Impl("np.asarray(jax.jit(stateless_call)(trainable, non_trainable, x))",
                            "first call and every new input shape (jit compiles per shape)", _prepare_compiled_jax),
                "torch": Impl("with torch.no_grad(): torch.compile(model)(torch.from_numpy(x), training=False).numpy()",
                              "first call; new shapes recompile (then dynamic shapes) per torch.compile's rules",
                              _prepare_compiled_torch),
            },  # fmt: skip
        ),
        CallPath(
            "xla",
            "NumPy -> tensor conversion, one XLA-compiled call, result copied back to NumPy",
            True,
            {"tensorflow": Impl("tf.function(model, input_signature=[TensorSpec((None, ...))], jit_compile=True)(x)"
                                ".numpy()", "first call and every new concrete input shape (XLA compiles per shape)",
                                _prepare_xla)},  # fmt: skip
        ),
    )
}


def _model_call(ctx: PathContext, model: Any) -> Callable[[list[Any]], Any]:
    multi = len(ctx.spec.inputs) > 1
    return lambda xs: model(xs if multi else xs[0], training=False)


MakeCall = Callable[[PathContext, Any], Callable[[list[Any]], Any]]  # (context, model) -> call(device arrays)


def _resident(backend: str, make_call: MakeCall | None = None) -> Callable[[PathContext, Any], Bind]:
    """Inputs placed on the backend's device once, outside the timed region; the call; the output synchronised.
    ``make_call``: the compiled call (``None``: the eager model call, under the backend's inference wrapper)."""

    def prepare(ctx: PathContext, model: Any) -> Bind:
        ops = backends.get(backend).resident.open()
        call = make_call(ctx, model) if make_call else ops.inference(_model_call(ctx, model))
        sync = ops.sync

        def bind(arrays: Arrays) -> Callable[[], Any]:
            xs = ops.place([arrays[t.name] for t in ctx.spec.inputs])
            return lambda: sync(call(xs))

        return bind

    return prepare


def _h2d(backend: str) -> Callable[[PathContext, Any], Bind]:
    def prepare(ctx: PathContext, model: Any) -> Bind:
        ops = backends.get(backend).resident.open()
        place, sync = ops.place, ops.sync

        def bind(arrays: Arrays) -> Callable[[], Any]:
            xs = [arrays[t.name] for t in ctx.spec.inputs]
            return lambda: sync(place(xs)[-1])

        return bind

    return prepare


def _d2h(backend: str) -> Callable[[PathContext, Any], Bind]:
    """The output's copy back to the host, a fresh copy every call (the backend's ``to_host``)."""

    def prepare(ctx: PathContext, model: Any) -> Bind:
        ops = backends.get(backend).resident.open()
        call, to_host = ops.inference(_model_call(ctx, model)), ops.to_host

        def bind(arrays: Arrays) -> Callable[[], Any]:
            y = ops.sync(call(ops.place([arrays[t.name] for t in ctx.spec.inputs])))
            return lambda: to_host(y)

        return bind

    return prepare


def _jax_compiled_call(ctx: PathContext, model: Any) -> Callable[[list[Any]], Any]:
    jitted = _jax_jitted(ctx, model)
    return lambda xs: jitted(*xs)


def _torch_compiled_call(ctx: PathContext, model: Any) -> Callable[[list[Any]], Any]:
    return _torch_callable(ctx, model, compiled=True)


def _call_on_device(b: backends.Backend) -> Impl:
    r = b.resident
    return Impl(f"{r.call_runs}, then {r.sync_runs}", "nothing (eager)", _resident(b.name))


def _h2d_on_device(b: backends.Backend) -> Impl:
    return Impl(f"{b.resident.place_runs}, synchronised", "nothing", _h2d(b.name))


def _d2h_on_device(b: backends.Backend) -> Impl:
    return Impl(b.resident.to_host_runs, "nothing", _d2h(b.name))


for _p in (
    CallPath("call@device", "inputs already on the device; eager model call; output synchronised on the device, "
             "not copied back", True, placement="device", on_device=_call_on_device),
    CallPath("compiled@device", "inputs already on the device; one compiled call; output synchronised on the device, "
             "not copied back", True, {
                 "jax": Impl("jax.jit(stateless_call)(..., x_device).block_until_ready()",
                             "first call and every new input shape", _resident("jax", _jax_compiled_call)),
                 "torch": Impl("torch.compile(model)(x_device); torch.cuda.synchronize()",
                               "first call; new shapes per torch.compile's rules",
                               _resident("torch", _torch_compiled_call))},
             placement="device"),
    CallPath("h2d", "copy of the cell's inputs from NumPy to the device, synchronised", False, placement="device",
             transfer=True, on_device=_h2d_on_device),
    CallPath("d2h", "copy of the cell's output from the device back to NumPy", True, placement="device", transfer=True,
             on_device=_d2h_on_device),
):  # fmt: skip
    PATHS[_p.name] = _p

BASELINE = "numpy"


def paths_for(backend: str, selected: tuple[str, ...], resident: bool = False) -> tuple[str, ...]:
    """The selected paths this backend implements, in registry order; device-resident paths and transfers only
    when ``resident`` (the default on a GPU)."""
    return tuple(p for p in selected if PATHS[p].available(backend) and (resident or PATHS[p].placement == "host"))
