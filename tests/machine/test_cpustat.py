"""Other processes' share of this process's CPUs, from /proc/stat."""

import os

import pytest

from kbench.machine.cpustat import busy_seconds, others_clock

STAT = """cpu  300 10 60 9000 5 0 2 3 0 0
cpu0 100 0 20 4500 4 0 1 2 0 0
cpu1 200 10 40 4500 1 0 1 1 7 0
intr 12345 0 0
ctxt 999
"""


def test_busy_seconds_add_user_nice_system_irq_softirq_and_steal_of_the_cpus_asked_for():
    assert busy_seconds(STAT, [0], 100.0) == pytest.approx((100 + 0 + 20 + 0 + 1 + 2) / 100)  # idle, iowait left out
    assert busy_seconds(STAT, [1], 100.0) == pytest.approx((200 + 10 + 40 + 0 + 1 + 1) / 100)  # guest is in user
    assert busy_seconds(STAT, [0, 1], 100.0) == pytest.approx(busy_seconds(STAT, [0], 100.0) +
                                                             busy_seconds(STAT, [1], 100.0))  # fmt: skip
    assert busy_seconds(STAT, [5], 100.0) == 0.0  # a CPU not listed
    assert busy_seconds("cpu0 1 2\n", [0], 100.0) == pytest.approx(0.03)  # an old kernel's fewer fields


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity"), reason="Linux only")
def test_the_clock_reads_seconds_per_cpu_that_stay_below_the_uptime():
    clock = others_clock()
    assert clock is not None
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    assert -1.0 < clock() < uptime + 1.0
