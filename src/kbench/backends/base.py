"""What one Keras backend is to kbench: the shapes the backend modules fill in (:class:`Backend`, :class:`Resident`,
:class:`DeviceOps`; a call path's :class:`Impl` with its :class:`PathContext`; the names of the reference callables
a backend's ``references`` returns). Nothing here imports a backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kbench.core.errors import DeviceError


Arrays = Mapping[str, np.ndarray]  # a cell's inputs by name
Bind = Callable[[Arrays], Callable[[], Any]]  # inputs -> the zero-argument callable one timed call runs
Fn = Callable[[], Any]


@dataclass(frozen=True)
class PathContext:
    """What a path's ``prepare`` is given besides the model: the cell's model spec (a
    :class:`kbench.model.spec.ModelSpec`, from the layer above), weights, sizes, options and dtype."""

    spec: Any
    weights: Mapping[str, np.ndarray]
    sizes: Mapping[str, int]
    options: Mapping[str, Any]
    dtype: str

    def input_list(self, arrays: Arrays) -> list[np.ndarray]:
        """The cell's input arrays in the spec's input order."""
        return [arrays[t.name] for t in self.spec.inputs]

    def keras_x(self, arrays: Arrays) -> Any:
        """The inputs as a Keras model takes them: the one array, or the list of them."""
        xs = self.input_list(arrays)
        return xs[0] if len(xs) == 1 else xs


Prepare = Callable[[PathContext, Any], Bind]  # (context, keras model or None) -> bind(inputs) -> fn()


@dataclass(frozen=True)
class Impl:
    """One backend's implementation of a call path: the exact call, what makes it trace or compile again (both
    shown by ``kbench list``), and ``prepare``: (context, keras model or None) -> bind(inputs) -> fn(). ``warm``
    (optional): the process-wide set-up the worker pays once before its first cell, instead of one throwaway build
    and call (a serving runtime imports itself and its exporter there, rather than export a file twice)."""

    runs: str
    recompiles: str
    prepare: Prepare
    warm: Callable[[], None] | None = None  # the worker's throwaway first pass runs this instead of a build and call


# a serving runtime's call in three steps, each timed apart as a reference named "<path>.<step>": the NumPy inputs
# bound to the runtime (its conversion in), the runtime's inference on inputs already bound (its floor), the output
# read back into NumPy (its conversion out)
BIND, RUN, FETCH = "bind", "run", "fetch"
RUNTIME_PARTS = (BIND, RUN, FETCH)
Parts = Callable[[Arrays], dict[str, Callable[[], Any]]]


@dataclass(frozen=True)
class Served:
    """What a serving runtime's ``prepare`` returns (:mod:`kbench.backends.runtimes`): its ``bind``, with the two
    steps of its cold start that a Keras path does not have (the export of the file and the runtime's load of it)
    and what it ran with. Called like the ``bind`` it holds."""

    bind: Bind
    export_s: float  # the Keras model exported to the runtime's file (conversion included)
    load_s: float  # the runtime's session or interpreter created from that file
    runtime: str  # which runtime and its version, e.g. "onnxruntime 1.32.0"
    exporter: str  # what wrote the file, e.g. 'keras 3.15.1 model.export(format="onnx") with tf2onnx 1.17.0'
    settings: tuple[tuple[str, Any], ...] = ()  # the settings in effect: threads, optimisation level, delegate
    parts: Parts | None = None  # inputs -> the timed call's steps, timed apart as references (where the time goes)

    def __call__(self, arrays: Arrays) -> Callable[[], Any]:
        return self.bind(arrays)


# the reference callables' names (a backend's ``references`` returns them; kbench.measure.decompose says what each is)
KERNEL, KERNEL_XLA, TO_BACKEND, TO_NUMPY = "kernel", "kernel_xla", "to_backend", "to_numpy"
KERNEL_COMPILE = "kernel_compile"  # torch's floor when the model cannot be traced: torch.compile of it
DISPATCH = "dispatch"  # a trivial compiled call on resident inputs: the backend's own per-call cost, inside the floor
DISPATCH_XLA = "dispatch_xla"  # the same compiled with XLA (TensorFlow's jit_compile): the ``kernel_xla`` floor's
BASE = "_base"  # "to_backend_base": what to subtract from "to_backend" when the conversion is timed as a difference
PROFILED = "profiled_"  # "profiled_kernel": a floor's kernel seconds per call, by the backend's profiler
FLOORS = (KERNEL, KERNEL_XLA, KERNEL_COMPILE)

# (context, build_model, the model's inputs, an output-shaped array, with_xla) -> reference name -> fn (worker only)
References = Callable[[PathContext, Callable[[], Any], Sequence[np.ndarray], np.ndarray, bool], dict[str, Fn]]


@dataclass(frozen=True)
class DeviceOps:
    """A backend's compute device, resolved inside the worker (the backend imported): how the device-resident
    paths put NumPy arrays on it, wait for a result, and copy a result back."""

    device: Any  # the backend's own device object (jax.Device, torch.device)
    place: Callable[[Sequence[np.ndarray]], list[Any]]  # NumPy arrays -> arrays on the device, synchronised
    sync: Callable[[Any], Any]  # wait until y is computed on the device; returns y
    to_host: Callable[[Any], np.ndarray]  # a fresh NumPy copy of a device array on every call
    inference: Callable[[Callable[..., Any]], Callable[..., Any]]  # wraps a model call (torch: no_grad)


@dataclass(frozen=True)
class Resident:
    """A backend's device-resident support: ``open()`` (worker only) gives its :class:`DeviceOps`; the strings say,
    for ``kbench list``, what each step runs."""

    open: Callable[[], DeviceOps]
    place_runs: str  # e.g. "jax.device_put(x, device).block_until_ready()"
    call_runs: str  # the eager model call on device arrays
    sync_runs: str
    to_host_runs: str
    reset_peak: Callable[[], None] | None = None  # resets the device's peak-memory counter (None: it cannot)
    peak_bytes: Callable[[], int | None] | None = None  # the device's peak memory in bytes (None: it cannot say)


@dataclass(frozen=True)
class Backend:
    """One Keras backend. Every callable but ``env`` and ``check_dtype`` imports the backend, so it runs in the
    worker only; ``module`` is found (never imported) by the parent. ``paths`` is its own implementation of each
    registry call path it runs (:data:`kbench.measure.callpaths.PATHS` names them; ``numpy`` serves every backend,
    and ``call@device``, ``h2d``, ``d2h`` every backend with ``resident`` hooks)."""

    name: str  # KERAS_BACKEND
    module: str  # what importlib.util.find_spec must find for the backend to be installed
    install: str  # how to install it, for the one-line refusal
    env: Callable[[str], Mapping[str, str]]  # --device -> variables the worker must have (hide GPUs for "cpu")
    env_defaults: Mapping[str, str]  # variables the worker gets unless the user set them
    configure: Callable[[str], tuple[bool, bool]]  # --precision applied -> (a GPU is visible, TF32 matmuls in effect)
    fingerprint: Callable[[], dict[str, Any]]  # versions, threads, devices: what a figure depends on
    check_dtype: Callable[[str, Mapping[str, str]], None]  # (dtype, environment) -> raises DtypeError if impossible
    resident: Resident | None = None  # None: no device-resident paths or transfers on this backend
    paths: Mapping[str, Impl] = field(default_factory=dict)  # registry path name -> this backend's Impl
    references: References | None = None  # the decomposition's reference callables (None: no decomposition)
    set_threads: Callable[[int], dict[str, Any]] | None = None  # --threads through its own API -> what is in effect
    profile: Callable[[Fn, int], float] | None = None  # (fn, calls) -> its kernels' seconds per call, profiled

    def worker_env(self, device: str, environ: Mapping[str, str]) -> dict[str, str]:
        """The worker's environment: ``environ``, this backend's defaults where unset, its variables for ``device``."""
        return {**self.env_defaults, **environ, **self.env(device), "KERAS_BACKEND": self.name}

    def setup_device(self, device: str, precision: str) -> tuple[str, str]:
        """(device in use, matmul precision in effect) after applying ``--precision``; ``--device gpu`` with no GPU
        visible is the user's error, never a silent CPU run. Worker only."""
        gpu, tf32 = self.configure(precision)
        if device == "gpu" and not gpu:
            raise DeviceError(
                f"--device gpu, but no GPU is visible to the {self.name} backend; use --device cpu or auto"
            )
        return ("gpu" if gpu else "cpu"), ("tf32" if tf32 else "float32")


def hide_gpus(device: str) -> dict[str, str]:
    """``--device cpu`` hides every CUDA device from the process, so "cpu" cannot quietly mean a GPU."""
    return {"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}


def any_dtype(dtype: str, environ: Mapping[str, str]) -> None:
    """The check of a backend that runs every dtype kbench supports."""
