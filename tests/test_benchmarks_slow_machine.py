"""benchmarks/slow_machine.py: the command runs pinned to one CPU beside competitors in sessions of their own, its
exit status comes back, and no competitor outlives it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "slow_machine.py"

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")


def test_the_command_runs_on_one_cpu_beside_competitors_that_it_outlives():
    cpu = max(os.sched_getaffinity(0))
    probe = ("import os, subprocess, sys; print(sorted(os.sched_getaffinity(0))); "  # its siblings: the competitors
             "kids = subprocess.run(['pgrep', '-P', str(os.getppid())], capture_output=True, text=True).stdout.split(); "
             "print([int(k) for k in kids if int(k) != os.getpid()]); sys.exit(3)")  # fmt: skip
    out = subprocess.run([sys.executable, str(SCRIPT), "--cpu", str(cpu), "--competitors", "2", "--",
                          sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)  # fmt: skip
    affinity, rivals = out.stdout.splitlines()
    assert out.returncode == 3  # the command's own status
    assert affinity == f"[{cpu}]"
    pids = [int(p) for p in rivals.strip("[]").split(", ") if p]
    assert len(pids) == 2
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert f"CPU {cpu} shared with 2 competitors" in out.stderr


def test_no_command_is_a_one_line_usage_error():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == "slow_machine.py: no command; give one after --"


def test_narrow_keeps_every_cpu_and_pins_the_kernels_of_the_command_only():
    probe = ("import os, sys; print(sorted(os.sched_getaffinity(0))); "
             "print(os.environ.get('OPENBLAS_CORETYPE'), os.environ.get('ONEDNN_MAX_CPU_ISA'), "
             "os.environ.get('MKL_ENABLE_INSTRUCTIONS')); sys.exit(4)")  # fmt: skip
    out = subprocess.run([sys.executable, str(SCRIPT), "--narrow", "--", sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    affinity, pins = out.stdout.splitlines()
    assert out.returncode == 4
    assert affinity == str(sorted(os.sched_getaffinity(0)))
    assert pins == "Nehalem SSE41 SSE4_2"
    assert "no competitor, kernels held back: OPENBLAS_CORETYPE=Nehalem" in out.stderr
