"""The one reader of this process's BLAS/OpenMP thread pools (threadpoolctl), and what its entries mean.

:func:`read_threadpools` returns threadpoolctl's ``threadpool_info()`` after loading NumPy (threadpoolctl only sees
the libraries that are loaded) and raises what threadpoolctl raises; :func:`threadpools` is the same list, or ``[]``
when it cannot be read (a reading must never break a run). :func:`owner` names the package that ships a pool's
library; :func:`numpy_blas` picks NumPy's own BLAS among the pools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence


def read_threadpools() -> list[dict[str, Any]]:
    """threadpoolctl's ``threadpool_info()`` with NumPy loaded; raises ImportError without threadpoolctl."""
    import numpy  # noqa: F401  (threadpoolctl only sees the libraries that are loaded)
    from threadpoolctl import threadpool_info

    return threadpool_info()


def threadpools() -> list[dict[str, Any]]:
    """:func:`read_threadpools`, or ``[]`` when the pools cannot be read."""
    try:
        return read_threadpools()
    except Exception:  # a reading must never break the run
        return []


def owner(pool: Mapping[str, Any]) -> str:
    """The package that ships a threadpoolctl library (``numpy`` for ``.../numpy.libs/libscipy_openblas...so``)."""
    parts = Path(str(pool.get("filepath") or "")).parts
    for above, part in zip(parts, parts[1:]):
        if above in ("site-packages", "dist-packages"):
            return part.removesuffix(".libs")
    return ""


def numpy_blas(pools: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The entry for NumPy's own BLAS (not another package's that happens to be loaded), else the first BLAS
    entry, or {}. ``pools``: threadpoolctl's list (default: read now)."""
    blas = [dict(p) for p in (threadpools() if pools is None else pools) if p.get("user_api") == "blas"]
    return next((p for p in blas if owner(p) == "numpy"), blas[0] if blas else {})
