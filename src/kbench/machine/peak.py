"""Machine peak: the fastest GEMM any engine on this machine reaches, so each cell can say how far it is from it.

- GEMM throughput, float32 and float64, n x n (n = 1024 unless given), best of several calls after a warm-up (peak
  means the best the hardware showed, not the typical call), through every engine installed here:
  NumPy's BLAS (in this process), and each Keras backend's own matmul engine (TensorFlow/oneDNN, JAX/XLA,
  torch/MKL), each in a child process (:mod:`kbench.machine.probe`, CPU only) so this process never imports one.
  NumPy's BLAS alone can understate the machine, e.g. when ``OPENBLAS_CORETYPE`` pins it to older kernels.
  The best engine per dtype is the machine's peak: :meth:`Peak.gflops` returns its rate.
- Memory copy bandwidth: ``np.copyto`` between two 64 MiB arrays, counted as read + write bytes, best of several.

Results are cached per machine fingerprint (CPU, cores, NumPy, BLAS library and threads, the installed backends'
versions, and the environment variables that pin BLAS kernels or threads) under ``$KBENCH_CACHE_DIR`` (default
``~/.cache/kbench``); a changed fingerprint measures again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from kbench.core.errors import KbenchError
from kbench.machine.fingerprint import host_fingerprint, installed_version
from kbench.machine.probe import DTYPES, best_time
from kbench.machine.threadpools import numpy_blas

SCHEMA = 2
BACKEND_ENGINES = ("tensorflow", "jax", "torch")
ENGINE_PACKAGES = ("tensorflow", "jax", "jaxlib", "torch", "keras")
# what changes the kernels or threads an engine runs with, so a changed value measures again
PIN_ENV = (
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
    "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE", "MKL_NUM_THREADS", "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "XLA_FLAGS",
)  # fmt: skip
PROBE_ENV = {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
PROBE_TIMEOUT_S = 180.0


class PeakError(KbenchError):
    """No engine measured GEMM, so there is no peak (exit code 1)."""


@dataclass(frozen=True)
class EngineRate:
    """One engine's GEMM figures; ``error`` (one line) says why it has none."""

    engine: str  # numpy, tensorflow, jax, torch
    version: str = ""
    library: str = ""  # e.g. "OpenBLAS 0.3.31 (SkylakeX)", "oneDNN", "XLA:cpu", "MKL"
    threads: int | None = None  # None: the engine does not say cheaply (it uses its default)
    gflops_float32: float | None = None
    gflops_float64: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def gflops(self, dtype: str) -> float | None:
        return self.gflops_float64 if dtype == "float64" else self.gflops_float32


@dataclass(frozen=True)
class Peak:
    """The machine's peak: per dtype the best engine's GEMM rate (and its name), every engine's rates, copy GB/s."""

    gflops_float32: float
    gflops_float64: float
    copy_gbps: float
    gemm_n: int
    fingerprint: str
    measured: str
    engine_float32: str = "numpy"
    engine_float64: str = "numpy"
    engines: tuple[EngineRate, ...] = ()
    schema: int = SCHEMA

    def gflops(self, dtype: str) -> float:
        """The best engine's GEMM GFLOP/s: what every cell's % of peak is computed against."""
        return self.gflops_float64 if dtype == "float64" else self.gflops_float32

    def engine_for(self, dtype: str) -> str:
        """The name of the engine that set :meth:`gflops`."""
        return self.engine_float64 if dtype == "float64" else self.engine_float32

    def rate(self, engine: str, dtype: str) -> float | None:
        """One engine's GFLOP/s, or None when it was not measured (not installed, failed)."""
        found = [e.gflops(dtype) for e in self.engines if e.engine == engine and e.ok]
        return found[0] if found else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Peak":
        """Raises ValueError for an entry written in another format (the caller measures again)."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError("a peak entry in an older format")
        engines = tuple(EngineRate(**e) for e in data["engines"])
        return cls(**{**data, "engines": engines})


def with_best(engines: Iterable[EngineRate], copy_gbps: float, gemm_n: int, fp: str, measured: str) -> Peak:
    """A Peak whose figures per dtype are the best measured engine's (ties: the first listed)."""
    engines = tuple(engines)
    best: dict[str, tuple[str, float]] = {}
    for dtype in DTYPES:
        rated = [(e.engine, e.gflops(dtype)) for e in engines if e.ok and e.gflops(dtype)]
        if not rated:
            failed = "; ".join(f"{e.engine}: {e.error}" for e in engines if not e.ok) or "none was measured"
            raise PeakError(f"no engine measured {dtype} GEMM, so there is no machine peak ({failed})")
        best[dtype] = max(rated, key=lambda pair: pair[1])  # type: ignore[arg-type, return-value]
    return Peak(best["float32"][1], best["float64"][1], copy_gbps, gemm_n, fp, measured,
                best["float32"][0], best["float64"][0], engines)  # fmt: skip


def engine_versions() -> dict[str, str]:
    return {pkg: installed_version(pkg) for pkg in ENGINE_PACKAGES}


def fingerprint(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    host = host_fingerprint()
    key = {k: host[k] for k in ("cpu", "logical_cores", "usable_cores", "machine")}
    key["numpy"] = host["packages"]["numpy"]
    key["blas"] = {k: numpy_blas().get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
    key["engines"] = engine_versions()
    key["env"] = {k: env[k] for k in PIN_ENV if k in env}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("KBENCH_CACHE_DIR") or Path.home() / ".cache" / "kbench")


def numpy_engine(gemm_n: int = 1024, repeats: int = 7) -> EngineRate:
    """NumPy's BLAS, in this process: ``np.matmul(a, b, out=c)``."""
    rng = np.random.default_rng(0)
    rates = {}
    for dtype in DTYPES:
        a = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
        b = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
        out = np.empty((gemm_n, gemm_n), dtype)
        rates[dtype] = 2 * gemm_n**3 / best_time(lambda: np.matmul(a, b, out=out), repeats) / 1e9
    blas = numpy_blas()
    library = f"{blas.get('internal_api', 'BLAS')} {blas.get('version') or ''} ({blas.get('architecture') or '?'})"
    return EngineRate("numpy", np.__version__, " ".join(library.split()), blas.get("num_threads"),
                      rates["float32"], rates["float64"])  # fmt: skip


def _probe_cmd(engine: str, gemm_n: int, repeats: int) -> list[str]:
    return [sys.executable, "-m", "kbench.machine.probe", engine, "--n", str(gemm_n), "--repeats", str(repeats)]


def _parse(engine: str, returncode: int | None, stdout: str, stderr: str) -> EngineRate:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1])
        fields = {k: data[k] for k in ("version", "library", "threads", "error") if k in data}
        rates = {k: float(data[k]) for k in ("gflops_float32", "gflops_float64") if k in data}
        return EngineRate(engine, **fields, **rates)
    except (IndexError, ValueError, TypeError, KeyError):
        tail = [ln for ln in stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        return EngineRate(engine, error=" ".join(f"exit {returncode}: {tail[0]}".split())[:300])


def probe_engine(engine: str, gemm_n: int = 1024, repeats: int = 7, timeout_s: float = PROBE_TIMEOUT_S) -> EngineRate:
    """One backend's engine measured in a child process on the CPU; a failure is recorded, never raised."""
    cmd = _probe_cmd(engine, gemm_n, repeats)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **PROBE_ENV},
                              start_new_session=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        return EngineRate(engine, error=f"the probe timed out after {timeout_s:g} s")
    except OSError as exc:
        return EngineRate(engine, error=f"the probe did not start: {exc}")
    return _parse(engine, proc.returncode, proc.stdout, proc.stderr)


class _WaitingProbe:
    """A probe child started with ``--wait``: it imports its engine at once, then measures only when told, so
    several import side by side (the slow part: TensorFlow and torch take seconds each) and measure one at a time."""

    def __init__(self, engine: str, gemm_n: int, repeats: int) -> None:
        self.engine, self.error = engine, ""
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty import never blocks
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [*_probe_cmd(engine, gemm_n, repeats), "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.stderr, text=True, env={**os.environ, **PROBE_ENV}, start_new_session=True)  # fmt: skip
        except OSError as exc:
            self.proc, self.error = None, f"the probe did not start: {exc}"

    def wait_ready(self, deadline: float) -> None:
        """Block until the child says ``ready`` (or exits, or ``deadline`` on the monotonic clock passes)."""
        while self.proc is not None and not self.error:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.error = f"the probe timed out after {PROBE_TIMEOUT_S:g} s"
            elif self.proc.stdout.readline().strip() in ("ready", ""):  # "": it exited; its output says why
                return

    def result(self, timeout_s: float) -> EngineRate:
        """Tell it to measure, and read its one JSON line."""
        if self.proc is None or self.error:
            self.close()
            return EngineRate(self.engine, error=self.error)
        try:
            out, _ = self.proc.communicate("go\n", timeout=timeout_s)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.close()
            return EngineRate(self.engine, error=f"the probe timed out after {timeout_s:g} s")
        self.stderr.seek(0)
        rate = _parse(self.engine, self.proc.returncode, out, self.stderr.read())
        self.close()
        return rate

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def probe_engines(names: Iterable[str], gemm_n: int, repeats: int, between: Callable[[], EngineRate]) -> list[EngineRate]:
    """Every engine in ``names`` from its own child, imported side by side, measured one at a time; ``between``
    (NumPy's own measurement) runs once every child has imported, so nothing else runs while it measures."""
    children = [_WaitingProbe(name, gemm_n, repeats) for name in names]
    try:
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        for child in children:
            child.wait_ready(deadline)
        first = between()
        return [first] + [child.result(PROBE_TIMEOUT_S) for child in children]
    finally:
        for child in children:
            child.close()


def installed_engines() -> tuple[str, ...]:
    return tuple(e for e in BACKEND_ENGINES if importlib.util.find_spec(e) is not None)


def copy_bandwidth(copy_mib: int = 64, repeats: int = 7) -> float:
    src = np.random.default_rng(0).standard_normal(copy_mib * 2**20 // 8)
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_time(lambda: np.copyto(dst, src), repeats) / 1e9


def measure(
    gemm_n: int = 1024,
    copy_mib: int = 64,
    repeats: int = 7,
    engines: Iterable[str] | None = None,
    probe: Callable[[str, int, int], EngineRate] | None = None,
) -> Peak:
    """Every engine's GEMM (``engines``: the backends to probe, default every installed one; not installed ones are
    skipped), the best per dtype as the peak, and the copy bandwidth. ``probe``: measure one engine (default: every
    engine's child imports side by side, :func:`probe_engines`)."""
    names = installed_engines() if engines is None else tuple(e for e in engines if importlib.util.find_spec(e))
    if probe is None:
        rates = probe_engines(names, gemm_n, repeats, lambda: numpy_engine(gemm_n, repeats))
    else:
        rates = [numpy_engine(gemm_n, repeats)] + [probe(name, gemm_n, repeats) for name in names]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    return with_best(rates, copy_bandwidth(copy_mib, repeats), gemm_n, fingerprint(), stamp)


def describe_lines(peak: Peak) -> list[str]:
    """Every engine's GEMM GFLOP/s (``*`` marks the peak per dtype), the peak, and the copy bandwidth."""
    lines = [f"GEMM n={peak.gemm_n}, GFLOP/s       float32    float64  threads  library"]
    for e in peak.engines:
        name = f"{e.engine} {e.version}".strip()
        if not e.ok:
            lines.append(f"{name:<24} failed: {e.error}")
            continue
        cells = [f"{'*' if peak.engine_for(d) == e.engine else ' '}{e.gflops(d) or 0:9.1f}" for d in DTYPES]
        threads = "default" if e.threads is None else str(e.threads)
        lines.append(f"{name:<24} {cells[0]}  {cells[1]}  {threads:>7}  {e.library}")
    lines.append(f"peak (*): float32 {peak.gflops_float32:.1f} GFLOP/s ({peak.engine_float32}), "
                 f"float64 {peak.gflops_float64:.1f} GFLOP/s ({peak.engine_float64})")  # fmt: skip
    lines.append(f"memory copy: {peak.copy_gbps:.1f} GB/s")
    return lines


def _entry(fp: str) -> Path:
    return cache_dir() / f"peak-{fp}.json"


def load_cached() -> Peak | None:
    """This machine's cached peak, or None (none yet, damaged, or an older format); never measures."""
    try:
        return Peak.from_dict(json.loads(_entry(fingerprint()).read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def load_or_measure(refresh: bool = False, engines: Iterable[str] | None = None) -> tuple[Peak, bool]:
    """(peak, from_cache). ``engines``: the backends whose engines are wanted (None: every installed one). A cached
    entry for this machine's fingerprint that has them all is used as it is; otherwise NumPy and the wanted engines
    it lacks are measured, merged into it (or into nothing: ``refresh``) and cached. So a first ``kbench run``
    imports only its own backends for the peak (TensorFlow took 8 of the 24 s that every engine took on a slow
    machine), and ``kbench peak`` adds the rest."""
    installed = installed_engines()
    wanted = installed if engines is None else tuple(e for e in engines if e in installed)
    cached = None if refresh else load_cached()
    have = set() if cached is None else {e.engine for e in cached.engines}
    if cached is not None and set(wanted) <= have:
        return cached, True
    fresh = measure(engines=[e for e in wanted if e not in have])
    peak = fresh if cached is None else merged(cached, fresh)
    try:
        path = _entry(peak.fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(peak.to_dict(), indent=2) + "\n")
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time
    return peak, False


def merged(cached: Peak, fresh: Peak) -> Peak:
    """``fresh``'s engines (NumPy among them) with the cached ones it did not measure; the best per dtype again."""
    again = {e.engine for e in fresh.engines}
    engines = [*fresh.engines, *(e for e in cached.engines if e.engine not in again)]
    return with_best(engines, fresh.copy_gbps, fresh.gemm_n, fresh.fingerprint, fresh.measured)
