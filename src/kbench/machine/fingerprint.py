"""The environment fingerprint: what a figure depends on besides the code, and how a recorded one is read back.

:func:`host_fingerprint` runs in the parent and never imports a backend; :func:`backend_fingerprint` runs inside
the worker, after Keras and its backend are imported. Both look versions up with :func:`installed_version`.

Reading a recorded fingerprint (``run.json``'s ``env``): :func:`package_versions` (Keras and each backend's version)
and :func:`flatten` / :func:`environment_fields`, the one meaning of "the same environment" for ``kbench compare``
and ``kbench merge``: two fingerprints are the same where their fields' texts are equal.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from typing import Any, Iterable, Mapping

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


def installed_version(pkg: str) -> str:
    """The installed distribution's version, or ``"not installed"``."""
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
        "packages": {p: installed_version(p) for p in PACKAGES},
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


# -- reading a recorded fingerprint ---------------------------------------------------------------------------------

VERSION_KEYS = ("keras", "tensorflow", "jax", "torch")  # the versions a run is labelled with


def package_versions(env: Any, backends: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Keras and each backend's version from a recorded fingerprint (the host's package list when a worker's is
    absent), in :data:`VERSION_KEYS` order."""
    env = env if isinstance(env, Mapping) else {}
    host = (env.get("host") or {}).get("packages") or {}
    per_backend = env.get("backends") or {}
    found: dict[str, str] = {}
    for b in backends:
        fp = per_backend.get(b) if isinstance(per_backend, Mapping) else None
        fp = fp if isinstance(fp, Mapping) else {}
        for key in ("keras", b):
            value = fp.get(key) or (host.get(key) if isinstance(host, Mapping) else None)
            if key in VERSION_KEYS and value and value != "not installed":
                found.setdefault(key, str(value))
    return tuple((k, found[k]) for k in VERSION_KEYS if k in found)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys (``host.cpu``, ``backends.tensorflow.devices``), each leaf as JSON text
    (``"2.21.0"`` with its quotes, ``2``, ``null``), so 2 and "2" differ. A list is order-free, its items' JSON texts
    sorted, as libraries and devices are listed in the order they happened to load."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(sorted(json.dumps(v, sort_keys=True, default=str) for v in value))
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str)
    return out


def environment_fields(env: Any) -> dict[str, str]:
    """A recorded fingerprint (``{"host": ..., "backends": ...}``) flattened: ``host.*`` (``host.packages.*``,
    ``host.env.*``) and ``backends.<name>.*``."""
    env = env if isinstance(env, Mapping) else {}
    return {**flatten(env.get("host") or {}, "host"), **flatten(env.get("backends") or {}, "backends")}


def field_value(text: str) -> Any:
    """A field's value back from its JSON text (a list: its items, in the sorted order)."""
    value = json.loads(text)
    return [json.loads(v) for v in value] if isinstance(value, list) else value
