"""The ``blas`` findings: the BLAS kernels NumPy runs against the CPU's instruction set.

The variables that pin the kernels (``OPENBLAS_CORETYPE``, ``MKL_ENABLE_INSTRUCTIONS``, ``MKL_DEBUG_CPU_TYPE``,
``ONEDNN_MAX_CPU_ISA``; ``MKL_CBWR`` and ``OPENBLAS_L2_SIZE`` as notes) are read too, and with a measured
:class:`kbench.machine.peak.Peak` a finding says what a pin costs. Every function here is pure: flags, pools
(threadpoolctl's entries) and the environment come in as arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from kbench.machine.finding import Finding
from kbench.machine.threadpools import owner

if TYPE_CHECKING:
    from kbench.machine.peak import Peak

ISA_RANK = {"SSE": 1, "AVX": 2, "AVX2": 3, "AVX-512": 4}
OPENBLAS_ISA = {
    **dict.fromkeys(("skylakex", "cooperlake", "sapphirerapids", "zen4", "zen5", "knl"), "AVX-512"),
    **dict.fromkeys(("haswell", "zen", "excavator"), "AVX2"),
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller"), "AVX"),
    **dict.fromkeys(("prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "barcelona", "opteron",
                     "opteron_sse3", "nano", "bobcat", "athlon", "katmai", "coppermine", "northwood", "banias",
                     "generic"), "SSE"),  # fmt: skip
}
BLIS_ISA = {
    **dict.fromkeys(("skx", "knl", "zen4", "zen5"), "AVX-512"),
    **dict.fromkeys(("haswell", "zen", "zen2", "zen3", "excavator"), "AVX2"),
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller"), "AVX"),
    "generic": "SSE",
}
MKL_DEBUG_CPU_TYPE_ISA = {"5": "AVX2", "4": "AVX", "3": "SSE", "2": "SSE"}
SLOW_NUMPY = 0.5  # NumPy's GEMM under half the best engine's, with no pin to blame, is worth a warning


def cpu_isa(flags: Iterable[str]) -> str | None:
    """The widest vector ISA the CPU (and the OS) offers, from /proc/cpuinfo flags; None when unknown (not x86)."""
    f = set(flags)
    if "avx512f" in f:
        return "AVX-512"
    if {"avx2", "fma"} <= f:
        return "AVX2"
    if "avx" in f:
        return "AVX"
    return "SSE" if {"sse2", "sse4_2"} & f else None


def isa_of_setting(value: str) -> str | None:
    """The ISA an MKL/oneDNN/MKL_CBWR setting names (AVX2, AVX512_CORE, SSE4_2, COMPATIBLE...); None: no cap."""
    v = value.strip().upper()
    if v.startswith(("AVX512", "AVX10", "AMX")):
        return "AVX-512"
    if v.startswith("AVX2"):
        return "AVX2"
    if v.startswith("AVX"):
        return "AVX"
    return "SSE" if v.startswith(("SSE", "COMPATIBLE")) else None


def _cpu_words(flags: Iterable[str], isa: str) -> str:
    extra = [name for flag, name in (("avx512_bf16", "BF16"), ("amx_tile", "AMX")) if flag in set(flags)]
    return f"{isa} (with {', '.join(extra)})" if extra and isa == "AVX-512" else isa


def gemm_cost(peak: Peak | None) -> str:
    """NumPy's GEMM against the best engine, from a measured peak; or says it is unmeasured."""
    if peak is None or peak.rate("numpy", "float32") is None:
        return "NumPy's GEMM against what this CPU can do is unmeasured (run `kbench peak`)"
    parts = []
    for dtype in ("float32", "float64"):
        numpy_rate, best = peak.rate("numpy", dtype) or 0.0, peak.gflops(dtype)
        parts.append(f"{dtype} {numpy_rate:.0f} vs {peak.engine_for(dtype)} {best:.0f} GFLOP/s")
    share = 100 * (peak.rate("numpy", "float32") or 0.0) / peak.gflops("float32")
    return f"NumPy's GEMM runs at ~{share:.0f}% of what this CPU can do ({'; '.join(parts)}; measured by `kbench peak`)"


def _kernel(pool: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """(what runs, its ISA, the variable that pins it) for one threadpoolctl BLAS entry."""
    api, arch = str(pool.get("internal_api")), str(pool.get("architecture") or "")
    lib = {"openblas": "OpenBLAS", "blis": "BLIS", "mkl": "MKL"}.get(api, api)
    lib += f" ({owner(pool)})" if owner(pool) else ""
    if api == "openblas":
        pin = "OPENBLAS_CORETYPE" if environ.get("OPENBLAS_CORETYPE") else None
        return f"{lib} runs {arch or 'unknown'}", OPENBLAS_ISA.get(arch.lower()), pin
    if api == "blis":
        return f"{lib} runs {arch or 'unknown'}", BLIS_ISA.get(arch.lower()), None
    if api == "mkl":
        for var in ("MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE"):
            if environ.get(var):
                isa = MKL_DEBUG_CPU_TYPE_ISA.get(environ[var].strip()) if var == "MKL_DEBUG_CPU_TYPE" else None
                return f"{lib} runs", isa or isa_of_setting(environ[var]), var
        return f"{lib} runs", None, None
    return f"{lib} runs {arch or 'unknown'}", None, None


def _pool_finding(pool: Mapping[str, Any], cpu: str, cpu_words: str, environ: Mapping[str, str],
                  peak: Peak | None) -> Finding:  # fmt: skip
    what, isa, pin = _kernel(pool, environ)
    if isa is None:
        return Finding("blas", "ok" if pool.get("internal_api") == "mkl" else "info",
                       f"{what} kernels (it picks them by CPU) on a CPU with {cpu_words}")  # fmt: skip
    if ISA_RANK[isa] >= ISA_RANK[cpu]:
        return Finding("blas", "ok", f"{what} ({isa}) kernels on a CPU with {cpu_words}")
    if pin:
        why, fix = f"because {pin}={environ[pin]}", f"unset {pin}" + (
            " (and OPENBLAS_L2_SIZE)" if pin == "OPENBLAS_CORETYPE" else "") + " for the benchmark"  # fmt: skip
    else:
        lib = f"{pool.get('internal_api')} {pool.get('version') or ''}"
        why = f"though nothing pins it (this {lib} may not know the CPU)"
        fix = "upgrade NumPy (it bundles its OpenBLAS), or pin the right kernels, e.g. OPENBLAS_CORETYPE=SkylakeX"
    theirs = owner(pool) not in ("", "numpy")  # another package's BLAS: NumPy's figures do not price it
    cost = f"{owner(pool)}'s GEMM runs {isa} kernels on a CPU with {cpu}" if theirs else gemm_cost(peak)
    return Finding("blas", "warn", " ".join(f"{what} ({isa}) kernels on a CPU with {cpu_words}, {why}".split()),
                   cost, fix)  # fmt: skip


def _setting_findings(environ: Mapping[str, str], cpu: str) -> list[Finding]:
    out = []
    for var, what in (("ONEDNN_MAX_CPU_ISA", "oneDNN (TensorFlow's and torch's matmul)"),
                      ("DNNL_MAX_CPU_ISA", "oneDNN (TensorFlow's and torch's matmul)"),
                      ("MKL_CBWR", "MKL's code path (conditional numerical reproducibility)")):  # fmt: skip
        isa = isa_of_setting(environ[var]) if environ.get(var) else None
        if isa and ISA_RANK[isa] < ISA_RANK[cpu]:
            out.append(Finding("blas", "warn", f"{var}={environ[var]} caps {what} at {isa} on a CPU with {cpu}",
                               f"{what.split(' (')[0]} runs narrower kernels than this CPU has; the peak is low too",
                               f"unset {var} for the benchmark"))  # fmt: skip
        elif environ.get(var):
            out.append(Finding("blas", "info", f"{var}={environ[var]} sets {what}"))
    if environ.get("OPENBLAS_L2_SIZE"):
        out.append(Finding("blas", "info", f"OPENBLAS_L2_SIZE={environ['OPENBLAS_L2_SIZE']} overrides the cache "
                           "size OpenBLAS blocks its GEMM for", "a wrong size slows GEMM",
                           "unset OPENBLAS_L2_SIZE unless it is this CPU's L2"))  # fmt: skip
    return out


def _slow_numpy(peak: Peak | None) -> list[Finding]:
    """A note when a measured peak shows NumPy's GEMM well below the best engine without a pin to blame (a note:
    the engines are measured one after the other, so a busy machine alone can make such a gap)."""
    numpy_rate = peak.rate("numpy", "float32") if peak is not None else None
    if peak is None or numpy_rate is None or numpy_rate >= SLOW_NUMPY * peak.gflops("float32"):
        return []
    return [Finding("blas", "info", f"NumPy's BLAS reached {100 * numpy_rate / peak.gflops('float32'):.0f}% of "
                    f"{peak.engine_for('float32')}'s float32 GEMM in the peak measured {peak.measured}",
                    gemm_cost(peak), "check NumPy's BLAS (`kbench env`), or measure again on a quiet machine "
                    "(`kbench peak --refresh`); % of peak is against the best engine")]  # fmt: skip


def blas_findings(flags: Iterable[str], pools: Sequence[Mapping[str, Any]], environ: Mapping[str, str],
                  peak: Peak | None = None) -> tuple[Finding, ...]:  # fmt: skip
    """The BLAS kernels (threadpoolctl's ``threadpool_info()``) against the CPU (``/proc/cpuinfo`` flags)."""
    flags = set(flags)
    cpu = cpu_isa(flags)
    blas = [p for p in pools if p.get("user_api") == "blas" or p.get("internal_api") in ("openblas", "mkl", "blis")]
    if cpu is None:
        return (Finding("blas", "info", "the CPU's instruction set is not readable here (no x86 flags)"),)
    if not blas:
        return (Finding("blas", "info", "no BLAS library is visible to threadpoolctl in this process"),)
    out = [_pool_finding(p, cpu, _cpu_words(flags, cpu), environ, peak) for p in blas]
    out += _setting_findings(environ, cpu)
    if not any(f.level == "warn" for f in out):
        out += _slow_numpy(peak)
    return tuple(dict.fromkeys(out))  # two libraries alike say it once


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()

