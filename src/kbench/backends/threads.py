"""``--threads``: a worker's thread settings. :func:`thread_env` is the environment a worker gets before it imports
its backend (BLAS, OpenMP, TensorFlow's intra- and inter-op pools, XLA's CPU flags); :func:`apply_threads` what it
sets right after the import, before any op, through the backend's own API (its ``Backend.set_threads``) and
threadpoolctl's limits, and reports what is in effect (for the fingerprint). The pools are read through the reader
the worker passes in (:func:`kbench.machine.threadpools.read_threadpools`, the one reader, sits above this
layer)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from kbench.backends import find


def thread_env(threads: int | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables a worker with ``threads`` threads needs before it imports anything (empty for the default)."""
    if threads is None:
        return {}
    n = str(threads)
    env = {k: n for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                          "TF_NUM_INTEROP_THREADS")}  # fmt: skip
    xla = environ.get("XLA_FLAGS", "")
    if threads == 1:
        xla = f"{xla} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    return {**env, **({"XLA_FLAGS": xla} if xla else {})}


PoolReader = Callable[[], Sequence[Mapping[str, Any]]]  # threadpoolctl's threadpool_info(), NumPy loaded


def apply_threads(backend: str, threads: int | None, read_pools: PoolReader) -> dict[str, Any]:
    """In the worker, right after the backend's import and before any op: its own thread settings, and what is in
    effect (for the fingerprint; the BLAS/OpenMP pools as ``read_pools`` reads them). Nothing for the default."""
    if threads is None:
        return {"threads": None}
    applied: dict[str, Any] = {"threads": threads}
    entry = find(backend)
    if entry is not None and entry.set_threads is not None:
        applied.update(entry.set_threads(threads))
    applied["blas_threads"] = blas_threads(read_pools, threads)
    return applied


def blas_threads(read_pools: PoolReader, threads: int | None = None) -> list[int]:
    """Every loaded BLAS/OpenMP pool's thread count (limited to ``threads`` first when given); [] without
    threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return []
    if threads is not None:
        threadpool_limits(threads)
    return sorted({int(p.get("num_threads", 0)) for p in read_pools()})
