"""The findings about what makes figures noisy: ``load``, ``cpufreq``, ``cores`` and ``threads``.

- ``load``: the load average and the processes busy at the start (sampled over ~100 ms);
- ``cpufreq``: the frequency governor and turbo/boost, where ``/sys`` shows them;
- ``cores``: usable (affinity) against logical and physical cores;
- ``threads``: the thread variables and the BLAS pools' threads against the usable cores.

Each ``*_findings`` is a pure function of its inputs; the ``read_*`` functions and :func:`busy_processes` read
``/proc`` and ``/sys`` (never changing them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from kbench.machine.finding import Finding

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS")  # fmt: skip
BUSY_SHARE = 0.2  # a process using a fifth of a core during the sample counts as busy


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


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

