"""How much of this process's CPUs other processes took: Linux's per-CPU accounting in ``/proc/stat``.

:func:`others_clock` gives a clock of the CPU seconds that everything but this process spent on the CPUs this
process may run on (user, nice, system, irq, softirq and steal: a hypervisor's turn counts), per usable CPU. Its
rate over a stretch of wall time is the share of those CPUs that others held: 0 on a quiet machine, 0.5 beside one
busy loop on a 1-CPU affinity. Its resolution is the kernel's ``USER_HZ`` (10 ms per CPU), so a share is only
meaningful over a second or so. :func:`busy_seconds` is the pure parser.

:func:`thread_wait` is finer and narrower: how long the calling thread has waited for a CPU while it was ready to
run (``/proc/thread-self/schedstat``, in nanoseconds): while it spins, the share of the time it waited is the share
of its CPU that others took, whoever they are (this process's own threads included).
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Iterable

BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system [idle iowait] irq softirq steal; guest is inside user


def busy_seconds(stat: str, cpus: Iterable[int], ticks_per_s: float) -> float:
    """Busy CPU seconds since boot of ``cpus``, summed, from the text of ``/proc/stat``."""
    wanted = {f"cpu{c}" for c in cpus}
    total = 0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted:
            fields = rest.split()
            total += sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields))
    return total / ticks_per_s


def thread_wait() -> float:
    """Seconds the calling thread has waited for a CPU while runnable, since it started; nan where the kernel does
    not say (not Linux, or no schedstats)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return math.nan


def others_clock() -> Callable[[], float] | None:
    """A clock of the CPU seconds other processes spent on this process's usable CPUs, per CPU (the busy seconds of
    those CPUs less this process's CPU time, over their number); None where ``/proc/stat`` or the affinity is not
    there to read (not Linux)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        ticks = float(os.sysconf("SC_CLK_TCK"))
        with open("/proc/stat", encoding="ascii") as f:
            busy_seconds(f.read(), cpus, ticks)
    except (AttributeError, OSError, ValueError):
        return None

    def clock() -> float:
        with open("/proc/stat", encoding="ascii") as f:
            stat = f.read()
        return (busy_seconds(stat, cpus, ticks) - time.process_time()) / len(cpus)

    return clock
