"""The JAX backend (``kbench[jax]``). JAX is imported inside the functions only."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from kbench.backends.base import Backend, DeviceOps, Resident, hide_gpus
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
    ),
)
