"""The JAX backend (``kbench[jax]``): its settings, device hooks, call paths (``compiled`` is ``jax.jit`` over the
model's ``stateless_call``) and reference callables. JAX is imported inside the functions only."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kbench.backends import prepares
from kbench.backends.base import (
    BASE, KERNEL, TO_BACKEND, TO_NUMPY, Arrays, Backend, Bind, DeviceOps, Fn, Impl, PathContext, Resident, hide_gpus,
)  # fmt: skip
from kbench.core.errors import DtypeError


def env(device: str) -> dict[str, str]:
    return {**hide_gpus(device), "JAX_PLATFORMS": "cpu"} if device == "cpu" else {}


def configure(precision: str) -> tuple[bool, bool]:
    import jax

    gpu = jax.devices()[0].platform == "gpu"
    if precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    return gpu, gpu and jax.config.jax_default_matmul_precision in (None, "default", "bfloat16_3x", "tensorfloat32")


def check_dtype(dtype: str, environ: Mapping[str, str]) -> None:
    if dtype == "float64" and environ.get("JAX_ENABLE_X64", "").lower() not in ("1", "true"):
        raise DtypeError("float64 on the jax backend needs 64-bit mode; set JAX_ENABLE_X64=1 or use float32")


def fingerprint() -> dict[str, Any]:
    import jax
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": getattr(jaxlib, "__version__", "unknown"),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "matmul_precision_config": jax.config.jax_default_matmul_precision or "default",
        "xla_flags": os.environ.get("XLA_FLAGS", "unset"),
    }


def open_device() -> DeviceOps:
    """JAX's first device. JAX caches an array's host copy, so re-reading one array would time nothing: the copy
    back goes through ``device_put`` to the CPU device, which makes a new host array every call."""
    import jax

    device, cpu = jax.devices()[0], jax.devices("cpu")[0]

    def place(arrays: Sequence[np.ndarray]) -> list[Any]:
        return [jax.device_put(a, device).block_until_ready() for a in arrays]

    return DeviceOps(
        device=device,
        place=place,
        sync=lambda y: y.block_until_ready(),
        to_host=lambda y: np.asarray(jax.device_put(y, cpu).block_until_ready()),
        inference=lambda call: call,
    )


def device_peak_bytes() -> int | None:
    """The first device's ``peak_bytes_in_use`` (the process's peak so far: JAX cannot reset it); None on a CPU."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def conversion_probes() -> tuple[Callable[..., Any], Callable[[Any], Any]]:
    """(touch, fresh): the jitted calls JAX's conversions are timed through, each as a difference. ``touch(*xs)``
    reads every input (``keep_unused``), so on NumPy inputs it converts them inside JAX's C++ dispatch, far more
    cheaply than the ``jax.device_put`` API does alone (≈ 30 µs per array here, more than a whole n=100
    ``compiled`` call); ``fresh(y)`` makes a new array each call (an identity would be forwarded, its host copy
    cached)."""
    import jax

    return jax.jit(lambda *a: a[0].ravel()[0], keep_unused=True), jax.jit(lambda a: -a)


# -- the compiled paths: jax.jit over the model's stateless_call ----------------------------------------------------


def jitted(ctx: PathContext, model: Any) -> Callable[..., Any]:
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


def compiled_call(ctx: PathContext, model: Any) -> Callable[[list[Any]], Any]:
    """The jitted model on a list of arrays (the ``compiled@device`` call and the kernel floor)."""
    forward = jitted(ctx, model)
    return lambda xs: forward(*xs)


def prepare_compiled(ctx: PathContext, model: Any) -> Bind:
    forward = jitted(ctx, model)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        xs = ctx.input_list(arrays)
        # np.asarray waits for the result and copies it to the host: a fresh output each call, nothing cached
        return lambda: np.asarray(forward(*xs))

    return bind


PATH_IMPLS = {
    "predict": Impl("model.predict(x, batch_size=len(x), verbose=0): a jax.jit-compiled predict step",
                    "first call; every new input shape (jit compiles per shape)", prepares.predict),
    "predict_on_batch": Impl("model.predict_on_batch(x): Keras' jax.jit-compiled predict step",
                             "first call; every new input shape", prepares.predict_on_batch),
    "call": Impl("keras.ops.convert_to_numpy(model(x, training=False)), op by op", "nothing (eager)", prepares.call),
    "compiled": Impl("np.asarray(jax.jit(stateless_call)(trainable, non_trainable, x))",
                     "first call and every new input shape (jit compiles per shape)", prepare_compiled),
    "compiled@device": Impl("jax.jit(stateless_call)(..., x_device).block_until_ready()",
                            "first call and every new input shape", prepares.on_device(open_device, compiled_call)),
}  # fmt: skip


def references(ctx: PathContext, build_model: Callable[[], Any], inputs: Sequence[np.ndarray], output: np.ndarray,
               with_xla: bool) -> dict[str, Fn]:  # fmt: skip
    """The floor (``jax.jit(stateless_call)`` on device arrays); the conversions each timed as a difference
    (:func:`conversion_probes`): a jitted touch of every input on NumPy inputs minus the same on resident ones;
    ``np.asarray`` of a fresh jitted result minus the same result only synchronised."""
    ops = open_device()
    floor = compiled_call(ctx, build_model())
    xs, y = ops.place(list(inputs)), ops.place([output])[0]
    touch, fresh = conversion_probes()
    return {
        KERNEL: lambda: floor(xs).block_until_ready(),
        TO_BACKEND: lambda: touch(*inputs).block_until_ready(),
        TO_BACKEND + BASE: lambda: touch(*xs).block_until_ready(),
        TO_NUMPY: lambda: np.asarray(fresh(y)),
        TO_NUMPY + BASE: lambda: fresh(y).block_until_ready(),
    }


BACKEND = Backend(
    name="jax",
    module="jax",
    install="pip install 'kbench[jax]'",
    env=env,
    env_defaults={},
    configure=configure,
    fingerprint=fingerprint,
    check_dtype=check_dtype,
    resident=Resident(
        open=open_device,
        place_runs="jax.device_put(x, device).block_until_ready()",
        call_runs="model(x_device, training=False)",
        sync_runs="y.block_until_ready()",
        to_host_runs="np.asarray(jax.device_put(y, cpu)), a fresh host array each call",
        peak_bytes=device_peak_bytes,
    ),
    paths=PATH_IMPLS,
    references=references,
)
