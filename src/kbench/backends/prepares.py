"""The call-path prepares more than one backend uses: Keras' own entry points (``predict``, ``predict_on_batch``, the
eager call), NumPy in -> NumPy out; and the device-resident ones over a backend's :class:`DeviceOps` (inputs placed
once, the call, the output synchronised; the ``h2d`` and ``d2h`` transfers). Each returns the ``prepare`` of an
:class:`kbench.backends.base.Impl`; nothing here imports a backend."""

from __future__ import annotations

from typing import Any, Callable

from kbench.backends.base import Arrays, Bind, DeviceOps, PathContext, Prepare

MakeCall = Callable[[PathContext, Any], Callable[[list[Any]], Any]]  # (context, model) -> call(device arrays)

# -- Keras' own entry points, the same on every backend -------------------------------------------------------------


def predict(ctx: PathContext, model: Any) -> Bind:
    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = ctx.keras_x(arrays)
        n = len(arrays[ctx.spec.inputs[0].name])
        return lambda: model.predict(x, batch_size=n, verbose=0)

    return bind


def predict_on_batch(ctx: PathContext, model: Any) -> Bind:
    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = ctx.keras_x(arrays)
        return lambda: model.predict_on_batch(x)

    return bind


def call(ctx: PathContext, model: Any) -> Bind:
    import keras

    to_numpy = keras.ops.convert_to_numpy

    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = ctx.keras_x(arrays)
        return lambda: to_numpy(model(x, training=False))

    return bind


# -- device-resident: through the backend's DeviceOps ----------------------------------------------------------------


def model_call(ctx: PathContext, model: Any) -> Callable[[list[Any]], Any]:
    """The eager model call on a list of device arrays."""
    multi = len(ctx.spec.inputs) > 1
    return lambda xs: model(xs if multi else xs[0], training=False)


def on_device(open_device: Callable[[], DeviceOps], make_call: MakeCall | None = None) -> Prepare:
    """Inputs placed on the backend's device once, outside the timed region; the call; the output synchronised.
    ``make_call``: the compiled call (``None``: the eager model call, under the backend's inference wrapper)."""

    def prepare(ctx: PathContext, model: Any) -> Bind:
        ops = open_device()
        call = make_call(ctx, model) if make_call else ops.inference(model_call(ctx, model))
        sync = ops.sync

        def bind(arrays: Arrays) -> Callable[[], Any]:
            xs = ops.place(ctx.input_list(arrays))
            return lambda: sync(call(xs))

        return bind

    return prepare


def h2d(open_device: Callable[[], DeviceOps]) -> Prepare:
    """The inputs' copy to the device, synchronised."""

    def prepare(ctx: PathContext, model: Any) -> Bind:
        ops = open_device()
        place, sync = ops.place, ops.sync

        def bind(arrays: Arrays) -> Callable[[], Any]:
            xs = ctx.input_list(arrays)
            return lambda: sync(place(xs)[-1])

        return bind

    return prepare


def d2h(open_device: Callable[[], DeviceOps]) -> Prepare:
    """The output's copy back to the host, a fresh copy every call (the backend's ``to_host``)."""

    def prepare(ctx: PathContext, model: Any) -> Bind:
        ops = open_device()
        call, to_host = ops.inference(model_call(ctx, model)), ops.to_host

        def bind(arrays: Arrays) -> Callable[[], Any]:
            y = ops.sync(call(ops.place(ctx.input_list(arrays))))
            return lambda: to_host(y)

        return bind

    return prepare
