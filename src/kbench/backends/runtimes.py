"""The serving runtimes as call paths: ONNX Runtime (its CPU execution provider), LiteRT (the interpreter of
``ai-edge-litert``, else ``tf.lite.Interpreter``) and OpenVINO (CPU), each over the file Keras 3 itself writes with
``model.export(path, format=...)``.

A runtime is a path of the worker whose backend exported the model: the TensorFlow worker (``Backend.paths`` of
:mod:`kbench.backends.tensorflow` joins :data:`IMPLS`), since Keras exports all three formats from TensorFlow. Per
cell, ``prepare`` builds the Keras model, exports it to a temporary folder (``export_s``), creates the runtime's
session, interpreter or compiled model from the file (``load_s``) and removes the folder; anything that fails there
is an :class:`kbench.core.errors.ExportError` with the exporter's or the runtime's reason, one path's failure. The
timed call binds the NumPy inputs to the runtime, runs it once and returns its output as a NumPy array.

Settings, recorded per row (``runtime_options``): intra-op threads (``TF_NUM_INTRAOP_THREADS``, which ``--threads``
sets, else every CPU the process may use: what TensorFlow's own pool uses), ONNX Runtime's graph optimisation level,
LiteRT's delegate (its default XNNPACK), OpenVINO's precision hint (the cell's dtype, not the CPU plugin's bf16 on
CPUs with bf16 units, which fails parity) and its latency hint. The runtimes are imported inside functions only;
:func:`missing` finds their packages without importing them (the parent's check).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Sequence

import numpy as np

from kbench.backends.base import BIND, FETCH, RUN, Arrays, Bind, Impl, Parts, PathContext, Served
from kbench.core.errors import ExportError, one_line

REASON_LIMIT = 300  # characters of an exporter's or runtime's message kept in the one line that reports it
ORT_LEVEL = "ORT_ENABLE_ALL"  # ONNX Runtime's default graph optimisation level, set and recorded explicitly
NAMES = ("onnxruntime", "litert", "openvino")


@dataclass(frozen=True)
class Loaded:
    """A runtime's loaded model: ``bind`` (inputs -> the timed call), what it is, the settings in effect, and
    ``parts`` (inputs -> the timed call's three steps, :data:`kbench.backends.base.RUNTIME_PARTS`)."""

    bind: Bind
    runtime: str
    settings: tuple[tuple[str, Any], ...]
    parts: Parts


@dataclass(frozen=True)
class Runtime:
    """One serving runtime: the Keras export format and file suffix, the packages it needs (found, not imported,
    by the parent), how to install them, and ``load`` (file, context, threads) -> :class:`Loaded` (worker only)."""

    name: str
    format: str
    suffix: str
    needs: tuple[str, ...]
    install: str
    load: Callable[[str, PathContext, int], Loaded]
    tool: Callable[[], str]  # the converter behind Keras' export, with its version


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def intra_op_threads() -> int:
    """The threads a runtime gets: ``--threads`` (through ``TF_NUM_INTRAOP_THREADS``), else every usable CPU."""
    given = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def in_order(names: Sequence[str], ctx: PathContext, arrays: Arrays) -> list[tuple[str, np.ndarray]]:
    """The runtime's input names paired with the cell's arrays: by name where the names are the spec's, else in
    the spec's input order (an exporter may rename the inputs)."""
    wanted = [t.name for t in ctx.spec.inputs]
    if sorted(names) == sorted(wanted):
        return [(n, arrays[n]) for n in names]
    return list(zip(names, ctx.input_list(arrays)))


# -- ONNX Runtime ------------------------------------------------------------------------------------------------


def load_onnxruntime(file: str, ctx: PathContext, threads: int) -> Loaded:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVEL)
    session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def bind(arrays: Arrays) -> Callable[[], Any]:
        feed, run = dict(in_order(names, ctx, arrays)), session.run
        return lambda: run(None, feed)[0]

    def parts(arrays: Arrays) -> dict[str, Callable[[], Any]]:
        """Through an I/O binding: the inputs bound, the session run on them, its output copied out."""
        pairs, binding = in_order(names, ctx, arrays), session.io_binding()
        binding.bind_output(session.get_outputs()[0].name, "cpu")  # the output the timed call returns

        def bind_inputs() -> None:
            for name, x in pairs:
                binding.bind_cpu_input(name, x)

        bind_inputs()
        return {BIND: bind_inputs, RUN: lambda: session.run_with_iobinding(binding),
                FETCH: lambda: binding.get_outputs()[0].numpy()}  # fmt: skip

    settings = (("intra_op_threads", threads), ("graph_optimization_level", ORT_LEVEL),
                ("execution_provider", "CPUExecutionProvider"))  # fmt: skip
    return Loaded(bind, f"onnxruntime {ort.__version__}", settings, parts)


# -- LiteRT ---------------------------------------------------------------------------------------------------------


def interpreter() -> tuple[Any, str]:
    """LiteRT's interpreter class and which one it is: ``ai-edge-litert``'s, else TensorFlow's ``tf.lite``."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {version('ai-edge-litert')} Interpreter"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, f"tf.lite.Interpreter (TensorFlow {tf.__version__})"


def litert_name(name: str) -> str:
    """The model's input name in a LiteRT input tensor's name, e.g. ``serving_default_x:0`` -> ``x``."""
    return name.removeprefix("serving_default_").rsplit(":", 1)[0]


def litert_call(it: Any, pairs: list[tuple[int, np.ndarray]], out: int) -> Callable[[], Any]:
    """The timed call, its three steps inline so the timed loop runs nothing but the interpreter's own calls: each
    input set (one input directly, without a loop: 40 ns, 2% of a 2.2 µs call), ``invoke``, the output read."""
    set_tensor, invoke, get_tensor = it.set_tensor, it.invoke, it.get_tensor
    if len(pairs) == 1:
        (index, x), = pairs

        def call_one() -> Any:
            set_tensor(index, x)
            invoke()
            return get_tensor(out)

        return call_one

    def call() -> Any:
        for index, x in pairs:
            set_tensor(index, x)
        invoke()
        return get_tensor(out)

    return call


def load_litert(file: str, ctx: PathContext, threads: int) -> Loaded:
    cls, which = interpreter()
    it = cls(model_path=file, num_threads=threads)  # XNNPACK: the interpreter's default delegate on the CPU
    inputs = {litert_name(d["name"]): d["index"] for d in it.get_input_details()}
    out = it.get_output_details()[0]["index"]

    def bound(arrays: Arrays) -> list[tuple[int, np.ndarray]]:
        """(tensor index, array) per input; a new shape resizes and allocates the tensors again (untimed)."""
        pairs = [(inputs[n], x) for n, x in in_order(list(inputs), ctx, arrays)]
        shapes = {d["index"]: tuple(d["shape"]) for d in it.get_input_details()}
        if any(shapes.get(index) != x.shape for index, x in pairs):
            for index, x in pairs:
                it.resize_tensor_input(index, x.shape, strict=False)
            it.allocate_tensors()
        return pairs

    def bind(arrays: Arrays) -> Callable[[], Any]:
        return litert_call(it, bound(arrays), out)

    def parts(arrays: Arrays) -> dict[str, Callable[[], Any]]:
        """The timed call's own three steps: ``set_tensor`` each input (a copy), ``invoke``, ``get_tensor``."""
        pairs, set_tensor = bound(arrays), it.set_tensor

        def bind_inputs() -> None:
            for index, x in pairs:
                set_tensor(index, x)

        return {BIND: bind_inputs, RUN: it.invoke, FETCH: lambda: it.get_tensor(out)}

    cell = {t.name: np.zeros(t.resolve(ctx.sizes), t.dtype_for(ctx.dtype)) for t in ctx.spec.inputs}
    for name, x in in_order(list(inputs), ctx, cell):  # the cell's shapes, allocated once here (the load)
        it.resize_tensor_input(inputs[name], x.shape, strict=False)
    it.allocate_tensors()
    settings = (("intra_op_threads", threads), ("delegate", "XNNPACK (the interpreter's default)"))
    return Loaded(bind, which, settings, parts)


# -- OpenVINO -------------------------------------------------------------------------------------------------------


def load_openvino(file: str, ctx: PathContext, threads: int) -> Loaded:
    import openvino as ov

    if ctx.dtype != "float32":
        raise ExportError(f"OpenVINO's CPU plugin infers in f32 at most, not {ctx.dtype}")
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    compiled = ov.Core().compile_model(file, "CPU", config)
    request, output = compiled.create_infer_request(), compiled.outputs[0]
    names = [p.get_any_name() for p in compiled.inputs]

    def bind(arrays: Arrays) -> Callable[[], Any]:
        feed, infer = {i: x for i, (_, x) in enumerate(in_order(names, ctx, arrays))}, request.infer
        return lambda: infer(feed)[output]

    def parts(arrays: Arrays) -> dict[str, Callable[[], Any]]:
        """What ``infer(feed)`` does in three: each input copied into the request's tensor (its default
        ``share_inputs=False``), the inference on them, the output copied out (``share_outputs=False``)."""
        feed = [(request.get_input_tensor(i), x) for i, (_, x) in enumerate(in_order(names, ctx, arrays))]
        for tensor, x in feed:
            tensor.shape = x.shape

        def bind_inputs() -> None:
            for tensor, x in feed:
                tensor.data[...] = x

        bind_inputs()
        return {BIND: bind_inputs, RUN: lambda: request.infer(share_outputs=True),
                FETCH: lambda: request.get_output_tensor(0).data.copy()}  # fmt: skip

    settings = (("intra_op_threads", threads), ("inference_precision_hint", "f32"), ("performance_hint", "LATENCY"),
                ("device", "CPU"))  # fmt: skip
    return Loaded(bind, f"openvino {version('openvino')}", settings, parts)


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("onnxruntime", "onnx", ".onnx", ("onnxruntime", "onnx", "tf2onnx"), "pip install 'kbench[onnx]'",
            load_onnxruntime, lambda: f"tf2onnx {version('tf2onnx')}"),
    Runtime("litert", "litert", ".tflite", (), "pip install 'kbench[litert]'", load_litert,
            lambda: f"tf.lite.TFLiteConverter (TensorFlow {version('tensorflow')})"),
    Runtime("openvino", "openvino", ".xml", ("openvino",), "pip install 'kbench[openvino]'", load_openvino,
            lambda: f"openvino.convert_model {version('openvino')}"),
)}  # fmt: skip


def missing(name: str) -> str | None:
    """Why runtime ``name`` cannot run here (a package not installed, with the fix), or None; imports nothing.
    LiteRT needs nothing beyond TensorFlow: without ``ai-edge-litert`` it runs ``tf.lite.Interpreter``."""
    rt = RUNTIMES[name]
    absent = [m for m in rt.needs if importlib.util.find_spec(m) is None]
    return f"{', '.join(absent)} not installed; {rt.install}" if absent else None


# -- export, load, bind ---------------------------------------------------------------------------------------------


def export(model: Any, ctx: PathContext, rt: Runtime, file: str) -> str:
    """``model.export`` to ``file`` in ``rt``'s format, the batch dimension left dynamic; returns the exporter."""
    import keras
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *t.resolve(ctx.sizes)[1:]), dtype=t.dtype_for(ctx.dtype), name=t.name)
             for t in ctx.spec.inputs]  # fmt: skip
    model.export(file, format=rt.format, verbose=False, input_signature=[specs[0] if len(specs) == 1 else specs])
    return f'keras {keras.__version__} model.export(format="{rt.format}") with {rt.tool()}'


def reason(stage: str, exc: BaseException) -> str:
    text = one_line(f"{type(exc).__name__}: {exc}")
    return f"{stage} failed: {text[:REASON_LIMIT]}{'...' if len(text) > REASON_LIMIT else ''}"


def prepare_for(rt: Runtime) -> Callable[[PathContext, Any], Served]:
    """The path's prepare: export, load, and the :class:`Served` bind; a failure is an :class:`ExportError`."""

    def prepare(ctx: PathContext, model: Any) -> Served:
        folder = tempfile.mkdtemp(prefix="kbench-export-")
        file, stage = os.path.join(folder, "model" + rt.suffix), "export"
        try:
            t0 = time.perf_counter()
            exporter = export(model, ctx, rt, file)
            t1, stage = time.perf_counter(), "load"
            loaded = rt.load(file, ctx, intra_op_threads())
            t2 = time.perf_counter()
        except ExportError as exc:
            raise ExportError(f"{stage} failed: {exc}") from exc
        except Exception as exc:  # noqa: BLE001  whatever the exporter or runtime raises is this path's failure
            raise ExportError(reason(stage, exc)) from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded runtimes hold the model in memory (or mapped)
        return Served(loaded.bind, t1 - t0, t2 - t1, loaded.runtime, exporter, loaded.settings, loaded.parts)

    return prepare


def warm_for(rt: Runtime) -> Callable[[], None]:
    """The process-wide set-up paid before the first cell: the runtime and its exporter imported (no file made)."""

    def warm() -> None:
        for module in (*rt.needs, *(("ai_edge_litert.interpreter",) if rt.name == "litert" else ())):
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # the cold start says why, as this path's failure

    return warm


RUNS = {
    "onnxruntime": "onnxruntime.InferenceSession(file, providers=['CPUExecutionProvider']).run(None, {name: x})[0]",
    "litert": "interpreter.set_tensor(index, x); interpreter.invoke(); interpreter.get_tensor(output_index)",
    "openvino": "core.compile_model(file, 'CPU').create_infer_request().infer({0: x})[output]",
}
RECOMPILES = {
    "onnxruntime": "nothing: the exported batch dimension is dynamic",
    "litert": "a new input shape resizes and allocates the interpreter's tensors again (in bind, untimed)",
    "openvino": "nothing: the exported batch dimension is dynamic (the CPU plugin may specialise on a new shape)",
}
IMPLS: dict[str, Impl] = {n: Impl(RUNS[n], RECOMPILES[n], prepare_for(RUNTIMES[n]), warm_for(RUNTIMES[n]))
                          for n in NAMES}  # fmt: skip
