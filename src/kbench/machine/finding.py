"""One finding of the machine check: what was found, at what level, what it costs the figures and how to fix it.

:mod:`kbench.machine.check` gathers them; :mod:`kbench.machine.blas_isa` and :mod:`kbench.machine.noise` make them.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("warn", "info", "ok")  # the order findings are shown in
KINDS = ("blas", "load", "cpufreq", "cores", "threads")


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    level: str  # "ok", "warn" or "info"
    found: str  # what was found, one sentence
    cost: str = ""  # what it costs the figures
    fix: str = ""  # how to fix it (for the benchmark, never done by kbench)
