"""The environment fingerprint: what a figure depends on besides the code.

:func:`host_fingerprint` runs in the parent and never imports a backend; :func:`backend_fingerprint` runs inside
the worker, after Keras and its backend are imported.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

ENV_PREFIXES = ("TF_", "KERAS_", "OPENBLAS_", "OMP_", "MKL_", "XLA_", "CUDA_VISIBLE")
PACKAGES = ("numpy", "tensorflow", "keras", "pandas", "typer", "seaborn")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info

        import numpy  # noqa: F401  (threadpoolctl only sees libraries that are loaded)

        return [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer", "architecture")}
            for d in threadpool_info()
        ]
    except Exception as exc:  # fingerprinting must never break a run
        return [{"error": f"{type(exc).__name__}: {exc}"}]


def host_fingerprint() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {p: _version(p) for p in PACKAGES},
        "blas": _blas(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
    }


def backend_fingerprint() -> dict[str, Any]:
    """Keras, its backend's own fingerprint (:mod:`kbench.backends`: versions, threads, devices) and the BLAS."""
    import keras

    from kbench.backends import find

    out: dict[str, Any] = {"keras": keras.__version__, "backend": keras.backend.backend()}
    backend = find(out["backend"])
    if backend is not None:
        try:
            out.update(backend.fingerprint())
        except Exception as exc:  # fingerprinting must never break a run
            out["fingerprint_error"] = f"{type(exc).__name__}: {exc}"
    out["blas"] = _blas()
    return out
