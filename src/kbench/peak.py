"""Machine peak: what NumPy's BLAS and memory system can do here, so each cell can say how far it is from it.

- GEMM throughput, float32 and float64: ``a @ b`` on n x n matrices (n = 1024 unless given), best of several
  calls after a warm-up (peak means the best the hardware showed, not the typical call).
- Memory copy bandwidth: ``np.copyto`` between two 64 MiB arrays, counted as read + write bytes, best of several.

Results are cached per machine fingerprint (CPU, cores, NumPy version, BLAS library and threads) under
``$KBENCH_CACHE_DIR`` (default ``~/.cache/kbench``); a changed fingerprint measures again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kbench.envinfo import host_fingerprint


@dataclass(frozen=True)
class Peak:
    gflops_float32: float
    gflops_float64: float
    copy_gbps: float
    gemm_n: int
    fingerprint: str
    measured: str

    def gflops(self, dtype: str) -> float:
        return self.gflops_float64 if dtype == "float64" else self.gflops_float32


def fingerprint() -> str:
    host = host_fingerprint()
    key = {k: host[k] for k in ("cpu", "logical_cores", "usable_cores", "machine")}
    key["numpy"] = host["packages"]["numpy"]
    key["blas"] = host["blas"]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("KBENCH_CACHE_DIR") or Path.home() / ".cache" / "kbench")


def _best_time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(gemm_n: int = 1024, copy_mib: int = 64, repeats: int = 7) -> Peak:
    rng = np.random.default_rng(0)
    gflops = {}
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
        b = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
        out = np.empty((gemm_n, gemm_n), dtype)
        t = _best_time(lambda: np.matmul(a, b, out=out), repeats)
        gflops[dtype] = 2 * gemm_n**3 / t / 1e9
    n = copy_mib * 2**20 // 8
    src = rng.standard_normal(n)
    dst = np.empty_like(src)
    t = _best_time(lambda: np.copyto(dst, src), repeats)
    return Peak(gflops["float32"], gflops["float64"], 2 * src.nbytes / t / 1e9, gemm_n, fingerprint(),
                time.strftime("%Y-%m-%dT%H:%M:%S"))  # fmt: skip


def load_or_measure(refresh: bool = False) -> tuple[Peak, bool]:
    """(peak, from_cache). Measures and caches when there is no entry for this machine's fingerprint."""
    fp = fingerprint()
    path = cache_dir() / f"peak-{fp}.json"
    if not refresh and path.is_file():
        try:
            return Peak(**json.loads(path.read_text())), True
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache entry is measured again
    peak = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(peak), indent=2) + "\n")
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time
    return peak, False
