"""The TensorFlow backend (a core dependency): its settings, its call paths (``compiled`` and ``xla`` are its
tf.function) and its reference callables. No device-resident paths: every TensorFlow path is a host round trip.
TensorFlow is imported inside the functions only."""

from __future__ import annotations

import glob
import math
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from kbench.backends import prepares, runtimes
from kbench.backends.base import (
    DISPATCH, DISPATCH_XLA, KERNEL, KERNEL_XLA, TO_BACKEND, TO_NUMPY, Arrays, Backend, Bind, Fn, Impl, PathContext,
    Prepare, any_dtype, hide_gpus,
)  # fmt: skip


def configure(precision: str) -> tuple[bool, bool]:
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if precision == "highest":
        tf.config.experimental.enable_tensor_float_32_execution(False)
    return gpu, gpu and tf.config.experimental.tensor_float_32_execution_enabled()


def _onednn_built() -> bool | str:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # a private module: fingerprinting must never break a run
        return "unknown"


def fingerprint() -> dict[str, Any]:
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TF's default: on for x86 CPUs)"),
        "onednn_built": _onednn_built(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def set_threads(threads: int) -> dict[str, Any]:
    """``--threads``: TensorFlow's intra- and inter-op pools, and what is in effect (an already initialised context
    cannot change them: its error is recorded, the environment variables still hold)."""
    import tensorflow as tf

    applied: dict[str, Any] = {}
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:  # the context was already initialised: the variables still hold
        applied["tf_threading_error"] = str(exc)
    applied["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    applied["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return applied


# -- the compiled paths: the model's tf.function ------------------------------------------------------------------


def tf_function(model: Any, ctx: PathContext, jit_compile: bool) -> Any:
    """``model`` as a ``tf.function`` (``jit_compile``: XLA) whose input signature relaxes the batch dimension
    (None): it traces once, on the first call."""
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *t.resolve(ctx.sizes)[1:]), dtype=t.dtype_for(ctx.dtype), name=t.name)
             for t in ctx.spec.inputs]  # fmt: skip
    multi = len(specs) > 1

    def forward(*xs):
        return model(list(xs) if multi else xs[0], training=False)

    return tf.function(forward, input_signature=specs, jit_compile=jit_compile)


def _compiled(jit_compile: bool) -> Prepare:
    """The ``compiled`` (``xla``: ``jit_compile``) path: NumPy in, the tf.function, ``.numpy()`` out."""

    def prepare(ctx: PathContext, model: Any) -> Bind:
        fn = tf_function(model, ctx, jit_compile)

        def bind(arrays: Arrays) -> Callable[[], Any]:
            xs = ctx.input_list(arrays)
            return lambda: fn(*xs).numpy()

        return bind

    return prepare


PATH_IMPLS = {
    "predict": Impl("model.predict(x, batch_size=len(x), verbose=0): builds a tf.data pipeline per call",
                    "first call; a new input shape retraces the step function", prepares.predict),
    "predict_on_batch": Impl("model.predict_on_batch(x): Keras' tf.function with reduce_retracing",
                             "first call; the first new input shape retraces with a relaxed shape",
                             prepares.predict_on_batch),
    "call": Impl("keras.ops.convert_to_numpy(model(x, training=False))", "nothing (eager)", prepares.call),
    "compiled": Impl("tf.function(model, input_signature=[TensorSpec((None, ...))])(x).numpy()",
                     "first call only: the batch dimension is relaxed (None) in the input signature", _compiled(False)),
    "xla": Impl("tf.function(model, input_signature=[TensorSpec((None, ...))], jit_compile=True)(x).numpy()",
                "first call and every new concrete input shape (XLA compiles per shape)", _compiled(True)),
}  # fmt: skip


# -- the references: the kernel floor is the model's tf.function -----------------------------------------------------


def sync_fn() -> Callable[[Any], Any]:
    """What completes a result: nothing on the CPU (eager TensorFlow is synchronous there); on a GPU
    ``tf.test.experimental.sync_devices()`` (≈ 25 µs on this project's 2-core VM, which is why the CPU goes
    without)."""
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return lambda y: y  # eager TensorFlow is synchronous on the CPU

    def sync(y: Any) -> Any:
        tf.test.experimental.sync_devices()
        return y

    return sync


def references(ctx: PathContext, build_model: Callable[[], Any], inputs: Sequence[np.ndarray], output: np.ndarray,
               with_xla: bool) -> dict[str, Fn]:  # fmt: skip
    """The floor (the ``compiled`` path's tf.function on ``tf.constant`` inputs; ``kernel_xla``: the ``xla`` one),
    ``dispatch`` (the same function on an empty batch, see :func:`dispatch_of`; ``dispatch_xla``: the ``xla`` one's)
    and the conversions."""
    import tensorflow as tf

    sync = sync_fn()
    ts = [tf.constant(x) for x in inputs]
    y = tf.constant(output)

    def floor_and_dispatch(jit_compile: bool) -> tuple[Fn, Fn]:
        fn = tf_function(build_model(), ctx, jit_compile)
        return (lambda: sync(fn(*ts))), dispatch_of(fn, ctx, jit_compile, ts, sync)

    refs: dict[str, Fn] = {TO_BACKEND: lambda: [tf.convert_to_tensor(x) for x in inputs], TO_NUMPY: lambda: y.numpy()}
    refs[KERNEL], refs[DISPATCH] = floor_and_dispatch(False)
    if with_xla:
        refs[KERNEL_XLA], refs[DISPATCH_XLA] = floor_and_dispatch(True)
    return refs


def dispatch_of(fn: Any, ctx: PathContext, jit_compile: bool, ts: Sequence[Any], sync: Callable[[Any], Any]) -> Fn:
    """The floor's own function on an empty batch: every input's first axis cut to 0 (or, where the model refuses
    that, only the first input's, as ``a @ b`` needs), so each op is dispatched, each variable read, and no
    arithmetic done; an identity ``tf.function`` on the inputs where the model takes neither. An identity leaves out
    the variable reads and per-op work of a real model's function: a Dense model's floor less an identity was 2-3.5x
    its profiled kernels at batch 1 and 32, less its empty batch 1.2-1.5x. ``ts``: the floor's resident inputs."""
    import tensorflow as tf

    for cut in dict.fromkeys((len(ts), 1)):  # all inputs, then the first alone
        xs = [t[:0] if i < cut else t for i, t in enumerate(ts)]
        try:
            fn(*xs)
        except Exception:  # noqa: BLE001  a model that cannot take an empty batch (a shape check, a reshape)
            continue
        return lambda: sync(fn(*xs))
    multi = len(ts) > 1
    identity = tf_function(lambda x, training: tf.identity(x[0] if multi else x), ctx, jit_compile)
    return lambda: sync(identity(*ts))


# TensorFlow's op events are "scope/name:OpType"; these types move or name data and run no arithmetic
_TF_OP = re.compile(r"^[^ :]+:([A-Za-z_]\w*)$")
_BOOKKEEPING = frozenset({"ReadVariableOp", "Identity", "IdentityN", "NoOp", "Const", "_Arg", "_Retval", "Placeholder",
                          "VarHandleOp", "_Recv", "_Send"})  # fmt: skip


def profile_kernels(fn: Fn, calls: int) -> float:
    """Seconds per call that ``fn``'s kernels ran, by TensorFlow's profiler over ``calls`` calls: the union of the
    intervals of its op events (concurrent ops count once), bookkeeping ops left out; NaN when no profile could be
    taken (another profiler running) or it missed some calls' kernels (:func:`_kernel_seconds`)."""
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="kbench-profile-")
    try:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(calls):
                fn()
        finally:
            tf.profiler.experimental.stop()
        files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        return _kernel_seconds(files[0], calls) if files else math.nan
    except Exception:  # the profiler is a refinement: without it compute falls back to floor - dispatch
        return math.nan
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def _kernel_seconds(path: str, calls: int) -> float:
    """Seconds per call covered by the union of an XPlane file's kernel op events; NaN when it holds fewer op events
    than calls. Every call runs at least one kernel, so fewer means the profiler missed some calls' kernels and the
    session would understate them: TensorFlow dropped the op events of a two-input function's kernels (run on its
    pool threads) in 30 of 50 calls of a worker's session, and in every call of a forked worker's."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    spans = []
    for plane in space.planes:
        for line in plane.lines:
            base = line.timestamp_ns * 1000
            for ev in line.events:
                m = _TF_OP.match(plane.event_metadata[ev.metadata_id].name)
                if m is not None and m.group(1) not in _BOOKKEEPING:
                    spans.append((base + ev.offset_ps, base + ev.offset_ps + ev.duration_ps))
    return union_ps(spans) * 1e-12 / calls if len(spans) >= calls else math.nan


def union_ps(spans: Sequence[tuple[int, int]]) -> int:
    """The length covered by the union of ``[start, end)`` intervals."""
    total, end = 0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total, end = total + (b - a), b
        elif b > end:
            total, end = total + (b - end), b
    return total


BACKEND = Backend(
    name="tensorflow",
    module="tensorflow",
    install="pip install kbench (TensorFlow is a core dependency)",
    env=hide_gpus,
    env_defaults={"TF_CPP_MIN_LOG_LEVEL": "2"},  # TF's C++ log noise down, unless the user asked for it
    configure=configure,
    fingerprint=fingerprint,
    check_dtype=any_dtype,
    paths={**PATH_IMPLS, **runtimes.IMPLS},  # the serving runtimes: Keras exports their files from TensorFlow
    references=references,
    set_threads=set_threads,
    profile=profile_kernels,
)
