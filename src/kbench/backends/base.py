"""What one Keras backend is to kbench: the shapes the backend modules fill in (:class:`Backend`, :class:`Resident`,
:class:`DeviceOps`). Nothing here imports a backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kbench.core.errors import DeviceError


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


@dataclass(frozen=True)
class Backend:
    """One Keras backend. Every callable but ``env`` and ``check_dtype`` imports the backend, so it runs in the
    worker only; ``module`` is found (never imported) by the parent."""

    name: str  # KERAS_BACKEND
    module: str  # what importlib.util.find_spec must find for the backend to be installed
    install: str  # how to install it, for the one-line refusal
    env: Callable[[str], Mapping[str, str]]  # --device -> variables the worker must have (hide GPUs for "cpu")
    env_defaults: Mapping[str, str]  # variables the worker gets unless the user set them
    configure: Callable[[str], tuple[bool, bool]]  # --precision applied -> (a GPU is visible, TF32 matmuls in effect)
    fingerprint: Callable[[], dict[str, Any]]  # versions, threads, devices: what a figure depends on
    check_dtype: Callable[[str, Mapping[str, str]], None]  # (dtype, environment) -> raises DtypeError if impossible
    resident: Resident | None = None  # None: no device-resident paths or transfers on this backend

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
