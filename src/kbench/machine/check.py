"""Machine and noise check, like ``pyperf system show``: what on this machine makes figures wrong or noisy.

:func:`check` reads the machine (``/proc``, ``/sys``, threadpoolctl, the environment; it never changes any of them)
and returns :class:`kbench.machine.finding.Finding` s of five kinds: ``blas`` (:mod:`kbench.machine.blas_isa`: the
BLAS kernels against the CPU's instruction set, priced when a :class:`kbench.machine.peak.Peak` is given), and
``load``, ``cpufreq``, ``cores`` and ``threads`` (:mod:`kbench.machine.noise`).

Every reading is a pure function of its inputs (``*_findings``), so each is testable without this machine.
:func:`block_lines` folds them into a few lines for the top of a run; :func:`detail_lines` for ``kbench env --check``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kbench.machine.blas_isa import blas_findings, cpu_flags
from kbench.machine.finding import LEVELS, Finding
from kbench.machine.noise import (
    busy_processes,
    core_findings,
    cpufreq_findings,
    load_findings,
    physical_cores,
    read_cpufreq,
    read_loadavg,
    thread_findings,
    usable_cores,
)
from kbench.machine.threadpools import threadpools

if TYPE_CHECKING:
    from kbench.machine.peak import Peak


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


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
