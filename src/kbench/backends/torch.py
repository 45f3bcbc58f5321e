"""The PyTorch backend (``kbench[torch]``): its settings, device hooks, call paths (eager under ``no_grad``,
``torch.compile``) and reference callables (the kernel floor: the model traced by TorchScript). PyTorch is imported
inside the functions only."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from kbench.backends import prepares
from kbench.backends.base import (
    KERNEL, KERNEL_COMPILE, TO_BACKEND, TO_NUMPY, Arrays, Backend, Bind, DeviceOps, Fn, Impl, PathContext, Resident,
    any_dtype, hide_gpus,
)  # fmt: skip


def configure(precision: str) -> tuple[bool, bool]:
    import torch

    gpu = torch.cuda.is_available()
    if precision == "highest":
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return gpu, gpu and (torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest")


def _devices() -> list[str]:
    import torch

    gpus = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    return ["cpu", *gpus]


def fingerprint() -> dict[str, Any]:
    import torch

    return {
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "cuda": torch.version.cuda or "none",
        "matmul_precision_config": torch.get_float32_matmul_precision(),
        "devices": _devices(),
    }


def open_device() -> DeviceOps:
    """The GPU when CUDA sees one, else the CPU; model calls run under ``torch.no_grad``."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def place(arrays: Sequence[np.ndarray]) -> list[Any]:
        return [torch.from_numpy(a).to(device) for a in arrays]

    def sync(y: Any) -> Any:
        torch.cuda.synchronize()
        return y

    return DeviceOps(
        device=device,
        place=place,
        sync=sync if device.type == "cuda" else (lambda y: y),
        to_host=lambda y: y.cpu().numpy(),
        inference=lambda call: torch.no_grad()(call),
    )


def set_threads(threads: int) -> dict[str, Any]:
    """``--threads``: torch's intra-op threads (and inter-op ones while still settable), and what is in effect."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable once, before parallel work
        pass
    return {"torch_threads": torch.get_num_threads()}


def reset_device_peak() -> None:
    """Reset CUDA's peak memory counter before a ``@device`` path's memory calls (nothing without CUDA)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def device_peak_bytes() -> int | None:
    """CUDA's peak allocated memory since :func:`reset_device_peak`; None without CUDA."""
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None


# -- the call paths: eager under no_grad, torch.compile -------------------------------------------------------------


def prepare_call(ctx: PathContext, model: Any) -> Bind:
    """Keras' eager call under ``torch.no_grad``, its result converted to NumPy."""
    import keras
    import torch

    to_numpy = keras.ops.convert_to_numpy

    def bind(arrays: Arrays) -> Callable[[], Any]:
        x = ctx.keras_x(arrays)

        def fn():
            with torch.no_grad():
                return to_numpy(model(x, training=False))

        return fn

    return bind


def compiled_call(ctx: PathContext, model: Any) -> Callable[[list[Any]], Any]:
    """``f(tensors)`` under torch.no_grad: ``torch.compile`` of the model."""
    import torch

    target = torch.compile(model)
    multi = len(ctx.spec.inputs) > 1

    def call(ts: list[Any]) -> Any:
        with torch.no_grad():
            return target(ts if multi else ts[0], training=False)

    return call


def prepare_compiled(ctx: PathContext, model: Any) -> Bind:
    import torch

    call = compiled_call(ctx, model)

    def bind(arrays: Arrays) -> Callable[[], Any]:
        xs = ctx.input_list(arrays)
        return lambda: call([torch.from_numpy(x) for x in xs]).cpu().numpy()

    return bind


PATH_IMPLS = {
    "predict": Impl("model.predict(x, batch_size=len(x), verbose=0): eager steps under torch.no_grad",
                    "nothing (eager)", prepares.predict),
    "predict_on_batch": Impl("model.predict_on_batch(x): one eager step under torch.no_grad", "nothing (eager)",
                             prepares.predict_on_batch),
    "call": Impl("with torch.no_grad(): keras.ops.convert_to_numpy(model(x, training=False))", "nothing (eager)",
                 prepare_call),
    "compiled": Impl("with torch.no_grad(): torch.compile(model)(torch.from_numpy(x), training=False).numpy()",
                     "first call; new shapes recompile (then dynamic shapes) per torch.compile's rules",
                     prepare_compiled),
    "compiled@device": Impl("torch.compile(model)(x_device); torch.cuda.synchronize()",
                            "first call; new shapes per torch.compile's rules",
                            prepares.on_device(open_device, compiled_call)),
}  # fmt: skip


# -- the references: the kernel floor is the model traced by TorchScript --------------------------------------------


def references(ctx: PathContext, build_model: Callable[[], Any], inputs: Sequence[np.ndarray], output: np.ndarray,
               with_xla: bool) -> dict[str, Fn]:  # fmt: skip
    """The floor (:func:`kernel_floor`) on tensors on the cell's device; the conversions are the device hooks
    (``torch.from_numpy(x).to(device)``, ``y.cpu().numpy()``), each synchronised."""
    ops = open_device()
    xs, y = ops.place(list(inputs)), ops.place([output])[0]
    floor, call = kernel_floor(ctx, build_model(), xs)
    sync, place, to_host = ops.sync, ops.place, ops.to_host
    return {floor: lambda: sync(call(xs)), TO_BACKEND: lambda: sync(place(inputs)[-1]), TO_NUMPY: lambda: to_host(y)}


def kernel_floor(ctx: PathContext | None, model: Any, xs: list[Any]) -> tuple[str, Callable[[list[Any]], Any]]:
    """(name, call): the frozen traced model (:func:`traced_floor`), or ``torch.compile`` of the model (its Dynamo
    guards included, named ``kernel_compile`` in the rows) when tracing fails."""
    traced = traced_floor(model, xs)
    if traced is None:
        return KERNEL_COMPILE, compiled_call(ctx, model)
    return KERNEL, traced


# -- the traced floor: the model traced by TorchScript ------------------------------------------------------------


def traced_floor(model: Any, xs: list[Any]) -> Callable[[list[Any]], Any] | None:
    """torch's kernel floor: the model traced by TorchScript (``torch.jit.trace`` under ``no_grad``), which runs the
    ops without Keras' Python around them, its no-op casts dropped (:func:`drop_noop_casts`) and its weights frozen
    into constants (``torch.jit.freeze``, numerics untouched), called through its ``forward`` method: no
    ``nn.Module.__call__`` and no ``no_grad`` context around each call, as a bare traced op is called. Frozen
    constants do not require grad; a floor whose output still would is wrapped in ``no_grad``. None when tracing
    fails (a model whose ops branch in Python)."""
    import torch

    multi = len(xs) > 1

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *a: Any) -> Any:
            return self.model(list(a) if multi else a[0], training=False)

    try:
        with torch.no_grad():
            traced = torch.jit.trace(Traced(), tuple(xs), check_trace=False)
    except Exception:  # any tracing failure: the caller falls back to another floor
        return None
    forward = _frozen_forward(torch, traced)
    if getattr(forward(*xs), "requires_grad", True):
        return torch.no_grad()(lambda ts: forward(*ts))
    return lambda ts: forward(*ts)


def _frozen_forward(torch: Any, traced: Any) -> Callable[..., Any]:
    """The traced module's ``forward`` with no-op casts dropped and weights frozen; the traced ``forward`` as it is
    where either pass fails (a graph TorchScript cannot freeze is still the model's computation, only with
    ``GetAttr`` reads of its weights)."""
    try:
        with torch.no_grad():
            drop_noop_casts(torch, traced.graph)
            return torch.jit.freeze(traced.eval(), optimize_numerics=False).forward
    except Exception:
        return traced.forward


def drop_noop_casts(torch: Any, graph: Any) -> int:
    """Remove from a traced graph every ``aten::to`` that returns its input: ``copy=False`` and the traced input's
    dtype, device, sizes and strides unchanged. Keras' ``convert_to_tensor`` traces to one or two per tensor
    (six around a matmul of two inputs, ~0.7 µs each here); TensorFlow and JAX drop such casts when they trace, so
    the floor of every backend is the computation alone. Returns how many were dropped."""
    torch._C._jit_pass_inline(graph)
    dropped = 0
    for node in list(graph.nodes()):
        if node.kind() != "aten::to" or not _returns_input(node):
            continue
        node.output().replaceAllUsesWith(node.inputsAt(0))
        node.destroy()
        dropped += 1
    torch._C._jit_pass_dce(graph)
    return dropped


def _returns_input(node: Any) -> bool:
    """An ``aten::to`` node (any overload) with ``copy=False`` whose traced output type equals its input's."""
    try:
        copy = node.namedInput("copy")
    except RuntimeError:  # an overload without a copy argument
        return False
    if copy.node().kind() != "prim::Constant" or copy.toIValue() is not False:
        return False
    a, b = node.inputsAt(0).type(), node.output().type()
    try:
        same = ([a.scalarType(), a.device(), a.sizes(), a.strides()]
                == [b.scalarType(), b.device(), b.sizes(), b.strides()])
    except (AttributeError, RuntimeError):  # not a tensor type, or an incomplete one
        return False
    return same and a.scalarType() is not None


BACKEND = Backend(
    name="torch",
    module="torch",
    install="pip install torch==2.13.0 'kbench[torch]' (pin torch: an unpinned one pulls a CUDA build)",
    env=hide_gpus,
    env_defaults={},
    configure=configure,
    fingerprint=fingerprint,
    check_dtype=any_dtype,
    resident=Resident(
        open=open_device,
        place_runs="torch.from_numpy(x).to(device)",
        call_runs="with torch.no_grad(): model(x_device, training=False)",
        sync_runs="torch.cuda.synchronize()",
        to_host_runs="y.cpu().numpy()",
        reset_peak=reset_device_peak,
        peak_bytes=device_peak_bytes,
    ),
    paths=PATH_IMPLS,
    references=references,
    set_threads=set_threads,
)
