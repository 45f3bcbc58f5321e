"""One Keras backend's own GEMM engine, measured in a child process: ``python -m kbench.machine.probe ENGINE``.

Prints one JSON line: ``{"engine", "version", "library", "threads", "gflops_float32", "gflops_float64"}``, or
``{"engine", "error"}`` when the engine cannot be imported or measured (the exit code is then 1).
:mod:`kbench.machine.peak` starts it with ``CUDA_VISIBLE_DEVICES=""`` and ``JAX_PLATFORMS=cpu`` (the CPU's peak), so this
module never decides the device itself, and the parent never imports a backend.

Each engine times ``n x n`` GEMM the way that engine runs fastest, with the result materialised and nothing else
in the timed region: TensorFlow ``tf.linalg.matmul`` inside ``tf.function`` (synchronised by reading one scalar of
the result), JAX ``jax.jit(jnp.matmul)`` with ``block_until_ready``, torch ``torch.matmul(out=)`` under ``no_grad``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import numpy as np

DTYPES = ("float32", "float64")


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _operands(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)


def _tensorflow(n: int, repeats: int) -> dict[str, Any]:
    import tensorflow as tf

    @tf.function
    def gemm(a, b):
        c = tf.linalg.matmul(a, b)
        return c, c[0, 0]  # returning c keeps the whole product; its scalar is what the timer waits on

    out: dict[str, Any] = {"version": tf.__version__, "library": _tf_library(tf)}
    for dtype in DTYPES:
        a, b = (tf.constant(x) for x in _operands(n, dtype))
        out[f"gflops_{dtype}"] = 2 * n**3 / best_time(lambda: gemm(a, b)[1].numpy(), repeats) / 1e9
    out["threads"] = tf.config.threading.get_intra_op_parallelism_threads() or None  # 0: TF's default (all cores)
    return out


def _tf_library(tf: Any) -> str:
    try:
        from tensorflow.python.util import _pywrap_util_port

        if _pywrap_util_port.IsMklEnabled():
            return "oneDNN"
    except Exception:
        pass
    return "Eigen"


def _jax(n: int, repeats: int) -> dict[str, Any]:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 stays float64 (it would silently become float32)
    import jax.numpy as jnp

    gemm = jax.jit(jnp.matmul)
    out: dict[str, Any] = {"version": jax.__version__, "library": f"XLA:{jax.default_backend()}", "threads": None}
    for dtype in DTYPES:
        a, b = (jax.device_put(x) for x in _operands(n, dtype))
        out[f"gflops_{dtype}"] = 2 * n**3 / best_time(lambda: gemm(a, b).block_until_ready(), repeats) / 1e9
    return out


def _torch(n: int, repeats: int) -> dict[str, Any]:
    import torch

    library = "MKL" if torch.backends.mkl.is_available() else "OpenBLAS/Eigen"
    out: dict[str, Any] = {"version": torch.__version__, "library": library, "threads": torch.get_num_threads()}
    with torch.no_grad():
        for dtype in DTYPES:
            a, b = (torch.from_numpy(x) for x in _operands(n, dtype))
            c = torch.empty((n, n), dtype=a.dtype)
            out[f"gflops_{dtype}"] = 2 * n**3 / best_time(lambda: torch.matmul(a, b, out=c), repeats) / 1e9
    return out


ENGINES: dict[str, Callable[[int, int], dict[str, Any]]] = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def probe(engine: str, n: int, repeats: int) -> dict[str, Any]:
    """The engine's figures; an unknown engine or any failure is returned as ``{"error": one line}``."""
    if engine not in ENGINES:
        return {"engine": engine, "error": f"unknown engine {engine!r}; one of {', '.join(ENGINES)}"}
    try:
        return {"engine": engine, **ENGINES[engine](n, repeats)}
    except BaseException as exc:  # the parent records the reason; a probe never crashes the peak
        return {"engine": engine, "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}


def _preimport(engine: str) -> None:
    """Import the engine now, so that several probes can import side by side and measure one at a time later; a
    failure is left for :func:`probe` to report."""
    if engine not in ENGINES:
        return
    try:
        __import__(engine)
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kbench.machine.probe")
    parser.add_argument("engine")
    parser.add_argument("--wait", action="store_true", help="import, print 'ready', measure after a line on stdin")
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.wait:
        _preimport(args.engine)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
    result = probe(args.engine, args.n, args.repeats)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
