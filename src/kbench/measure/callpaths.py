"""The call-path registry: the path names, what each timed region contains, their order and :data:`BASELINE`.

Every timed region is end to end, **NumPy in -> NumPy out**, so all paths stand on the same footing: input
conversion, dispatch, the computation and the copy of the result back into a NumPy array are all inside.
Paths share a name across backends where the meaning matches (``call``, ``compiled``, ...); each backend's
:class:`kbench.backends.base.Impl` of a path (``Backend.paths``, in its module under :mod:`kbench.backends`) says
exactly what it runs and what makes it recompile. Adding a path is one :class:`CallPath` entry in :data:`PATHS`
(and its Impl in the backends that run it). ``numpy`` serves every backend; the device-resident paths and transfers
(``call@device``, ``h2d``, ``d2h``) serve every backend whose :class:`kbench.backends.Backend` has ``resident``
hooks, through those hooks. The serving runtimes (``onnxruntime``, ``litert``, ``openvino``: :data:`RUNTIMES`, their
Impls in :mod:`kbench.backends.runtimes`) are timed only when asked for, never by default. Nothing here imports a
backend, so this module is cheap to import in the parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kbench import backends
from kbench.backends import prepares
from kbench.backends.base import Arrays, Bind, Impl, PathContext


@dataclass(frozen=True)
class CallPath:
    name: str
    timed_region: str  # what one timed call contains
    uses_keras: bool
    every_backend: Impl | None = None  # the one Impl that serves every backend (None: each backend's own)
    placement: str = "host"  # "host": NumPy in -> NumPy out; "device": inputs placed once, output synchronised
    transfer: bool = False  # times a copy of the cell's input or output, not the model: no parity, no shape check
    on_device: Callable[[backends.Backend], Impl] | None = None  # the Impl of any backend with device-resident support
    runtime: bool = False  # a serving runtime over an exported file (kbench.backends.runtimes): only when asked for

    def impl(self, backend: str) -> Impl | None:
        """The backend's own Impl of this path, else the one for every backend, else the device-resident one."""
        entry = backends.find(backend)
        found = (entry.paths.get(self.name) if entry is not None else None) or self.every_backend
        if found is None and self.on_device is not None and entry is not None and entry.resident is not None:
            found = self.on_device(entry)
        return found

    def available(self, backend: str) -> bool:
        return self.impl(backend) is not None

    def prepare(self, ctx: PathContext, model: Any, backend: str = "tensorflow") -> Bind:
        impl = self.impl(backend)
        if impl is None:
            raise KeyError(f"path {self.name!r} has no {backend} implementation")
        return impl.prepare(ctx, model)


ALIGN = 64  # bytes: a cache line, and what TensorFlow and XLA align their own tensors to


def aligned(a: np.ndarray, to: int = ALIGN) -> np.ndarray:
    """``a`` itself where it is C-contiguous and starts on a ``to``-byte boundary, else a copy that does. NumPy's
    allocator guarantees 16 bytes, so where a weight lands depends on the process: OpenBLAS's GEMM for a dense batch
    of 32 at 128 -> 128 took 11.5-12.3 us with the 128 x 128 kernel on 64 bytes and 13.3-14.8 us 16, 32 or 48 bytes
    off, in every one of four processes; fresh processes drew both, and forked workers all drew their server's."""
    if a.flags.c_contiguous and a.ctypes.data % to == 0:
        return a
    buf = np.empty(a.nbytes + to, np.uint8)
    start = -buf.ctypes.data % to
    out = buf[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _prepare_numpy(ctx: PathContext, model: Any) -> Bind:
    """The twin on its weights and inputs, each on a cache-line boundary (:func:`aligned`), so its speed does not
    depend on where one process's allocator happened to put them."""
    forward, options = ctx.spec.forward, dict(ctx.options)
    weights = {k: aligned(np.asarray(v)) for k, v in ctx.weights.items()}

    def bind(arrays: Arrays) -> Callable[[], Any]:
        inputs = {k: aligned(np.asarray(v)) for k, v in arrays.items()}
        return lambda: forward(weights, inputs, **options)

    return bind


def _call_on_device(b: backends.Backend) -> Impl:
    r = b.resident
    return Impl(f"{r.call_runs}, then {r.sync_runs}", "nothing (eager)", prepares.on_device(r.open))


def _h2d_on_device(b: backends.Backend) -> Impl:
    return Impl(f"{b.resident.place_runs}, synchronised", "nothing", prepares.h2d(b.resident.open))


def _d2h_on_device(b: backends.Backend) -> Impl:
    return Impl(b.resident.to_host_runs, "nothing", prepares.d2h(b.resident.open))


PATHS: dict[str, CallPath] = {
    p.name: p
    for p in (
        CallPath(
            "numpy",
            "one call of the model file's forward(weights, inputs, **options): its NumPy expression plus the Python "
            "call around it (a fraction of a microsecond); no Keras, no conversion",
            False,
            Impl("the model file's hand-written NumPy forward, e.g. act(x @ kernel + bias)", "nothing", _prepare_numpy),
        ),
        CallPath("predict", "data adapter and epoch iterator set-up, callbacks, one predict step, concatenation of the "
                 "outputs into a NumPy array", True),
        CallPath("predict_on_batch", "one predict step and conversion of the result to NumPy", True),
        CallPath("call", "eager execution of the functional model: NumPy -> tensor conversion, each layer's op "
                 "dispatch, result copied back to NumPy", True),
        CallPath("compiled", "NumPy -> tensor conversion, one compiled call, result copied back to NumPy", True),
        CallPath("xla", "NumPy -> tensor conversion, one XLA-compiled call, result copied back to NumPy", True),
        CallPath("onnxruntime", "the inputs fed to an ONNX Runtime session (CPU execution provider) over the file "
                 "Keras exported, one session.run, its NumPy output", True, runtime=True),
        CallPath("litert", "the inputs set on a LiteRT interpreter (XNNPACK) over the .tflite file Keras exported, "
                 "one invoke, the output copied out as NumPy", True, runtime=True),
        CallPath("openvino", "the inputs fed to an OpenVINO infer request (CPU) over the IR Keras exported, one "
                 "infer, its NumPy output", True, runtime=True),
        CallPath("call@device", "inputs already on the device; eager model call; output synchronised on the device, "
                 "not copied back", True, placement="device", on_device=_call_on_device),
        CallPath("compiled@device", "inputs already on the device; one compiled call; output synchronised on the "
                 "device, not copied back", True, placement="device"),
        CallPath("h2d", "copy of the cell's inputs from NumPy to the device, synchronised", False, placement="device",
                 transfer=True, on_device=_h2d_on_device),
        CallPath("d2h", "copy of the cell's output from the device back to NumPy", True, placement="device",
                 transfer=True, on_device=_d2h_on_device),
    )
}  # fmt: skip

BASELINE = "numpy"
RUNTIMES = tuple(p.name for p in PATHS.values() if p.runtime)  # timed only when asked for (--runtime or --path)
DEFAULT_PATHS = tuple(p for p in PATHS if not PATHS[p].runtime)  # what a run times when --path is not given


def paths_for(backend: str, selected: tuple[str, ...], resident: bool = False) -> tuple[str, ...]:
    """The selected paths this backend implements, in registry order; device-resident paths and transfers only
    when ``resident`` (the default on a GPU)."""
    return tuple(p for p in selected if PATHS[p].available(backend) and (resident or PATHS[p].placement == "host"))


def path_groups(paths: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """A backend's paths as its worker processes share them: every path but the serving runtimes together, then
    each serving runtime alone, in processes of its own. A runtime is timed as it runs in a server that loaded only
    it: in one process, importing ONNX Runtime doubled OpenVINO's ``infer(feed)`` (58 -> 117 µs at dense batch 1,
    its Python data dispatch; ``infer()`` on bound inputs barely moved)."""
    rest = tuple(p for p in paths if not PATHS[p].runtime)
    return tuple(g for g in (rest, *((p,) for p in paths if PATHS[p].runtime)) if g)
