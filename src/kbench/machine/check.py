"""Machine and noise check, like ``pyperf system show``: what on this machine makes figures wrong or noisy.

:func:`check` reads the machine (``/proc``, ``/sys``, threadpoolctl, the environment; it never changes any of them)
and returns :class:`Finding` s of five kinds:

- ``blas``: the BLAS kernels NumPy runs against the CPU's instruction set, and the variables that pin them
  (``OPENBLAS_CORETYPE``, ``MKL_ENABLE_INSTRUCTIONS``, ``MKL_DEBUG_CPU_TYPE``, ``ONEDNN_MAX_CPU_ISA``; ``MKL_CBWR``
  and ``OPENBLAS_L2_SIZE`` as notes), with what it costs when a :class:`kbench.machine.peak.Peak` is given;
- ``load``: the load average and the processes busy at the start (sampled over ~100 ms);
- ``cpufreq``: the frequency governor and turbo/boost, where ``/sys`` shows them;
- ``cores``: usable (affinity) against logical and physical cores;
- ``threads``: the thread variables and the BLAS pools' threads against the usable cores.

Every reading is a pure function of its inputs (``*_findings``), so each is testable without this machine.
:func:`block_lines` folds them into a few lines for the top of a run; :func:`detail_lines` for ``kbench env --check``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from kbench.machine.peak import Peak

LEVELS = ("warn", "info", "ok")  # the order findings are shown in
KINDS = ("blas", "load", "cpufreq", "cores", "threads")
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
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS")  # fmt: skip
SLOW_NUMPY = 0.5  # NumPy's GEMM under half the best engine's, with no pin to blame, is worth a warning
BUSY_SHARE = 0.2  # a process using a fifth of a core during the sample counts as busy


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    level: str  # "ok", "warn" or "info"
    found: str  # what was found, one sentence
    cost: str = ""  # what it costs the figures
    fix: str = ""  # how to fix it (for the benchmark, never done by kbench)


# ---- blas: kernels against the CPU's instruction set ----


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


def owner(pool: Mapping[str, Any]) -> str:
    """The package that ships a threadpoolctl library (``numpy`` for ``.../numpy.libs/libscipy_openblas...so``)."""
    parts = Path(str(pool.get("filepath") or "")).parts
    for above, part in zip(parts, parts[1:]):
        if above in ("site-packages", "dist-packages"):
            return part.removesuffix(".libs")
    return ""


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


# ---- load: the load average and busy processes ----


def load_findings(loadavg: tuple[float, float, float] | None, usable: int,
                  busy: Sequence[tuple[int, str, float]]) -> tuple[Finding, ...]:  # fmt: skip
    """``busy``: (pid, name, cores used during the sample), the busiest first."""
    load = f"load average {loadavg[0]:.2f} (1 min) on {usable} usable cores" if loadavg else "load average unknown"
    hot = [b for b in busy if b[2] >= BUSY_SHARE]
    if hot:
        names = ", ".join(f"{name} (pid {pid}) {100 * share:.0f}% of a core" for pid, name, share in hot[:3])
        return (Finding("load", "warn", f"{load}; busy now: {names}",
                        "they take CPU time from the measured code: medians rise and spread, most in multi-threaded "
                        "GEMM", "wait for them to finish or stop them; compare paths within one run"),)  # fmt: skip
    if loadavg and loadavg[0] >= 0.75 * usable:
        return (Finding("load", "info", f"{load}, though nothing is busy now (a job that just ended)"),)
    return (Finding("load", "ok", f"{load}; nothing else busy"),)


def _proc_ticks(proc: Path) -> dict[int, tuple[str, int]]:
    out = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended
        name, rest = text[text.find("(") + 1 : text.rfind(")")], text[text.rfind(")") + 2 :].split()
        out[int(stat.parent.name)] = (name, int(rest[11]) + int(rest[12]))  # utime + stime
    return out


def busy_processes(window_s: float = 0.1, exclude: Iterable[int] = (), top: int = 3,
                   proc: Path = Path("/proc")) -> list[tuple[int, str, float]]:  # fmt: skip
    """(pid, name, cores used) of the busiest processes over ``window_s``, from /proc/<pid>/stat."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    t0, before = time.monotonic(), _proc_ticks(proc)
    time.sleep(window_s)
    elapsed, after = time.monotonic() - t0, _proc_ticks(proc)
    skip = set(exclude)
    used = [(pid, name, (ticks - before[pid][1]) / tick / elapsed)
            for pid, (name, ticks) in after.items() if pid in before and pid not in skip]  # fmt: skip
    return sorted((u for u in used if u[2] > 0), key=lambda u: -u[2])[:top]


def read_loadavg(path: Path = Path("/proc/loadavg")) -> tuple[float, float, float] | None:
    try:
        a, b, c = path.read_text().split()[:3]
        return float(a), float(b), float(c)
    except (OSError, ValueError):
        return None


# ---- cpufreq: governor and turbo ----


def read_cpufreq(root: Path = Path("/sys/devices/system/cpu")) -> tuple[dict[str, int], str | None, str | None]:
    """(governor -> cores, intel_pstate/no_turbo, cpufreq/boost); empty or None where not readable."""
    governors: dict[str, int] = {}
    for path in root.glob("cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            name = path.read_text().strip()
        except OSError:
            continue
        governors[name] = governors.get(name, 0) + 1

    def read(rel: str) -> str | None:
        try:
            return (root / rel).read_text().strip()
        except OSError:
            return None

    return governors, read("intel_pstate/no_turbo"), read("cpufreq/boost")


def cpufreq_findings(governors: Mapping[str, int], no_turbo: str | None, boost: str | None) -> tuple[Finding, ...]:
    if not governors and no_turbo is None and boost is None:
        return (Finding("cpufreq", "info", "CPU frequency governor and turbo: not readable on this machine (a VM)",
                        "the host sets the clock; figures can drift between runs", "compare paths within one run"),)
    out = []
    slow = {g: n for g, n in governors.items() if g != "performance"}
    if slow:
        which = ", ".join(f"{g} on {n} core(s)" for g, n in sorted(slow.items()))
        out.append(Finding("cpufreq", "warn", f"CPU frequency governor: {which}",
                           "the clock ramps up with load: early samples run slower and medians spread",
                           "sudo cpupower frequency-set -g performance (or `pyperf system tune`)"))  # fmt: skip
    elif governors:
        out.append(Finding("cpufreq", "ok", "CPU frequency governor: performance on every core"))
    turbo_on = no_turbo == "0" or boost == "1"
    if turbo_on:
        where = "intel_pstate/no_turbo" if no_turbo is not None else "cpufreq/boost"
        out.append(Finding("cpufreq", "info", "turbo boost is on",
                           "the clock depends on temperature and on how many cores are busy",
                           f"for steadier figures turn it off ({where}), e.g. `pyperf system tune`"))  # fmt: skip
    elif no_turbo is not None or boost is not None:
        out.append(Finding("cpufreq", "ok", "turbo boost is off"))
    return tuple(out)


# ---- cores and threads ----


def physical_cores(cpuinfo: str) -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None when it does not say."""
    pairs, phys = set(), None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            phys = value.strip()
        elif key.strip() == "core id":
            pairs.add((phys, value.strip()))
    return len(pairs) or None


def core_findings(logical: int, usable: int, physical: int | None) -> tuple[Finding, ...]:
    smt = f", {physical} physical" if physical and physical < logical else ""
    if usable < logical:
        return (Finding("cores", "info", f"this process may use {usable} of {logical} logical cores{smt} (CPU "
                        "affinity); its workers inherit that", "the peak and every path run on those cores only",
                        "run without taskset/cgroup limits to measure the whole machine"),)  # fmt: skip
    return (Finding("cores", "ok", f"{usable} usable of {logical} logical cores{smt}"),)


def _thread_var(var: str, value: str, usable: int) -> Finding | None:
    try:
        n = int(value)
    except ValueError:
        return Finding("threads", "warn", f"{var}={value} is not a number", "libraries ignore it or refuse it",
                       f"set {var} to a whole number or unset it")  # fmt: skip
    if n > usable:
        return Finding("threads", "warn", f"{var}={value} on {usable} usable cores",
                       "more threads than cores wait on each other at every barrier: parallel kernels slow down",
                       f"unset {var} or set it to at most {usable}")  # fmt: skip
    if 0 < n < usable:
        return Finding("threads", "info", f"{var}={value} limits its library to {n} of {usable} usable cores",
                       "the peak and the paths use fewer cores than the machine has", f"unset {var} to use them all")
    return None


def thread_findings(environ: Mapping[str, str], pools: Sequence[Mapping[str, Any]], usable: int) -> tuple[Finding, ...]:
    out = [f for var in THREAD_ENV if var in environ for f in [_thread_var(var, environ[var], usable)] if f]
    for pool in pools:
        n = pool.get("num_threads")
        if isinstance(n, int) and n > usable:
            out.append(Finding("threads", "warn", f"{pool.get('internal_api')} uses {n} threads on {usable} usable "
                               "cores", "oversubscribed threads slow every parallel kernel",
                               f"set OMP_NUM_THREADS={usable} for the benchmark"))  # fmt: skip
    if environ.get("TF_NUM_INTEROP_THREADS"):
        out.append(Finding("threads", "info", f"TF_NUM_INTEROP_THREADS={environ['TF_NUM_INTEROP_THREADS']} sets "
                           "TensorFlow's inter-op pool"))  # fmt: skip
    if not out:
        blas = ", ".join(f"{p.get('internal_api')} {p.get('num_threads')}" for p in pools) or "none visible"
        out.append(Finding("threads", "ok", f"threads per pool ({blas}) fit {usable} usable cores; no thread "
                           "variables set"))  # fmt: skip
    return tuple(out)


# ---- reading this machine ----


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def threadpools() -> list[dict[str, Any]]:
    try:
        import numpy  # noqa: F401  (threadpoolctl only sees the libraries that are loaded)
        from threadpoolctl import threadpool_info

        return threadpool_info()
    except Exception:  # a check must never break the run
        return []


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_check(peak: Peak | None = None) -> tuple[Finding, ...]:
    """The ``blas`` findings of this machine (what ``kbench peak`` shows)."""
    return blas_findings(cpu_flags(_read("/proc/cpuinfo")), threadpools(), os.environ, peak)


def check(peak: Peak | None = None) -> tuple[Finding, ...]:
    """Every finding about this machine now (~0.1 s: the busy-process sample). ``peak`` prices a BLAS pin."""
    cpuinfo, pools, usable = _read("/proc/cpuinfo"), threadpools(), usable_cores()
    busy = busy_processes(exclude=(os.getpid(), os.getppid()))
    return (
        *blas_findings(cpu_flags(cpuinfo), pools, os.environ, peak),
        *load_findings(read_loadavg(), usable, busy),
        *cpufreq_findings(*read_cpufreq()),
        *core_findings(os.cpu_count() or usable, usable, physical_cores(cpuinfo)),
        *thread_findings(os.environ, pools, usable),
    )


# ---- showing them ----


def block_lines(findings: Sequence[Finding], max_warnings: int = 4) -> list[str]:
    """At most ``max_warnings`` + 1 lines: one per warning, then every other finding folded into one line."""
    warns = [f for f in findings if f.level == "warn"]
    shown = warns if len(warns) <= max_warnings else warns[: max_warnings - 1]
    lines = [f"machine: {f.found}" + (f"; {f.cost}" if f.cost else "") + (f"; fix: {f.fix}" if f.fix else "")
             for f in shown]  # fmt: skip
    if len(shown) < len(warns):
        lines.append(f"machine: {len(warns) - len(shown)} more warning(s): see `kbench env --check`")
    folded = []
    for level, label in (("ok", "ok"), ("info", "notes on")):
        kinds = dict.fromkeys(f.kind for f in findings if f.level == level and f.kind not in {w.kind for w in warns})
        if kinds:
            folded.append(f"{label} {', '.join(kinds)}")
    if folded:
        lines.append(f"machine check: {'; '.join(folded)} (`kbench env --check` for details)")
    return lines


def detail_lines(findings: Sequence[Finding]) -> list[str]:
    """Every finding, warnings first: level, kind and what was found, then its cost and fix on their own lines."""
    lines = []
    for f in sorted(findings, key=lambda f: LEVELS.index(f.level)):
        lines.append(f"[{f.level}] {f.kind}: {f.found}")
        lines += [f"       {label}: {text}" for label, text in (("cost", f.cost), ("fix", f.fix)) if text]
    return lines
