"""The Keras backend registry: what kbench knows about each backend, one module per backend.

Adding a backend touches this package only: one module ``kbench/backends/<name>.py`` that defines ``BACKEND``, a
:class:`Backend` (from :mod:`kbench.backends.base`) with its settings (``name``, ``module``, ``install``, ``env``,
``env_defaults``, ``configure``, ``fingerprint``, ``check_dtype``) and its optional hooks: ``paths`` (its
:class:`kbench.backends.base.Impl` of each registry call path it runs, built from its own prepare functions or the
shared ones in :mod:`kbench.backends.prepares`), ``references`` (the decomposition's kernel floor and conversions),
``resident`` (device-resident support, with the device-peak counters ``reset_peak`` and ``peak_bytes``) and
``set_threads`` (``--threads``); plus its name on one line of :data:`MODULES`. The modules import their backend
inside functions only, so importing this package is cheap in the parent; the parent uses ``module``, ``install``,
``worker_env`` and ``check_dtype``, the worker everything else.
"""

from __future__ import annotations

from importlib import import_module
from typing import Iterable, Mapping

from kbench.backends.base import Backend, DeviceOps, Resident
from kbench.core.errors import BackendError

__all__ = ["BACKENDS", "Backend", "DeviceOps", "Resident", "check_plan", "find", "get"]

MODULES = (  # one line per backend: kbench.backends.<name> defines BACKEND
    "tensorflow",
    "jax",
    "torch",
)

BACKENDS: dict[str, Backend] = {b.name: b for b in (import_module(f"kbench.backends.{m}").BACKEND for m in MODULES)}


def find(name: str) -> Backend | None:
    return BACKENDS.get(name)


def get(name: str) -> Backend:
    """The backend called ``name``; an unknown name is the user's error."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise BackendError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    return backend


def check_plan(names: Iterable[str], dtype: str, environ: Mapping[str, str]) -> None:
    """Refuse, before any worker starts, a dtype one of the chosen backends cannot run in this environment."""
    for name in names:
        get(name).check_dtype(dtype, environ)
