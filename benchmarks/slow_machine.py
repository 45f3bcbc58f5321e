"""Run a command on a machine slowed down, and say how: one CPU, shared with competitors in sessions of their own.

    python benchmarks/slow_machine.py -- python benchmarks/run_vs_timeit.py --refresh-peak
    python benchmarks/slow_machine.py --competitors 1 --busy -- kbench peak --refresh     # a plain busy loop
    python benchmarks/slow_machine.py --quantization                                       # why not a busy loop

Issue 22's slow machine is a 2-core one at 67 GFLOP/s float32; a faster machine comes near it only by sharing a
core. How it is shared matters to every timer. Linux gives a CPU-bound competitor slices of several milliseconds
(EEVDF, sessions weighed alike under autogroup), so a sample of 5 ms (kbench's shortest) either fits between two
of its slices or spans one or two of them, and the median of such samples lands on one of a few discrete values:
``--quantization`` times one callable (the dense twin at batch 32, NumPy) with samples of 0.5, 5, 50 and 200 ms
beside a plain busy loop, and on the AMX VM (2026-12-03) the 5 ms samples' median read 30.6 µs against 23.4 µs for
200 ms ones (timeit's length), 1.31x, in one process with no kbench at all; 0.5 ms ones read the unshared 11.6 µs.
A busy loop so measures the scheduler's slice against the sample's length, not the timer.

By default this helper slows the machine with competitors that spin ``--spin-us`` then sleep ``--sleep-us`` (500
and 300): each wake-up preempts, so the CPU changes hands every few hundred microseconds and any sample of 5 ms or
more sees the same share (5 ms 33.4 µs, 200 ms 34.1 µs, 0.98x, with 2 competitors; ``kbench peak`` 76.5 GFLOP/s
float32 on one CPU that gives 166 alone). That is the nearest this VM comes to a slower CPU. The command and the
competitors are pinned to ``--cpu`` (default 0); each competitor runs in a session of its own (``setsid``), the
command in this script's. The competitors are stopped when the command ends; the command's exit status is this
script's.

kbench flags rows measured like this ``contended``: other processes took ``others_cpu`` of the usable CPUs while
they were timed (``/proc/stat``).

``--narrow`` slows the machine without sharing it: the command keeps every CPU and no competitor runs, but the math
libraries are held to the kernels of an older CPU through the variables they read (:data:`NARROW`: OpenBLAS's
Nehalem (SSE) kernels, oneDNN and MKL at SSE4). On the AMX VM (2026-12-04) that made NumPy's GEMM 66.0-67.7 GFLOP/s
float32 on 2 CPUs (342 unpinned) and TensorFlow's 66.8-76.8, near the issue's 67, while the interpreter, and with it
every framework's dispatch, keeps its speed. JAX's XLA:CPU ignores all of them (``--xla_cpu_max_isa`` too: 332 GFLOP/s),
so ``kbench peak`` reads the slowed figure only where JAX is not installed, as after the README's ``pip install .``.
kbench's machine check reports each pin, as it should.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

SAMPLE_LENGTHS_S = (0.0005, 0.005, 0.05, 0.2)
NARROW = {"OPENBLAS_CORETYPE": "Nehalem", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


def competitor(spin_s: float, sleep_s: float) -> None:
    """Forever: spin ``spin_s``, then sleep ``sleep_s`` (0: never sleep, a plain busy loop)."""
    clock = time.perf_counter
    while True:
        t = clock()
        while clock() - t < spin_s:
            pass
        if sleep_s > 0:
            time.sleep(sleep_s)


def start_competitors(n: int, cpu: int, spin_us: float, sleep_us: float) -> list[subprocess.Popen]:
    args = [sys.executable, __file__, "--competitor", str(spin_us), str(sleep_us)]
    return [subprocess.Popen(args, start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
            for _ in range(n)]  # fmt: skip


def run_queue_wait_s() -> float:
    """Seconds this thread has waited on a run queue (Linux's schedstat, second field, ns)."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def quantization(rounds: int = 8) -> None:
    """The dense twin at batch 32 timed with samples of several lengths, interleaved; median, mean and wait share."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((32, 128), np.float32), rng.standard_normal((128, 128), np.float32)
    b = np.zeros(128, np.float32)

    def fn():
        return np.maximum(x @ w + b, 0)

    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 0.2:
        fn()
        n += 1
    per_call = 0.2 / n
    times: dict[float, list[float]] = {s: [] for s in SAMPLE_LENGTHS_S}
    waits: dict[float, list[float]] = {s: [] for s in SAMPLE_LENGTHS_S}
    for r in range(rounds):
        for length in random.Random(r).sample(SAMPLE_LENGTHS_S, len(SAMPLE_LENGTHS_S)):  # a fresh order a round
            loops = max(1, int(length / per_call))
            for _ in range(4 if length < 0.1 else 1):
                w0, t0 = run_queue_wait_s(), time.perf_counter()
                for _ in range(loops):
                    fn()
                t1, w1 = time.perf_counter(), run_queue_wait_s()
                times[length].append((t1 - t0) / loops)
                waits[length].append((w1 - w0) / (t1 - t0))
    for length in SAMPLE_LENGTHS_S:
        print(f"samples of {length * 1e3:5.1f} ms: median {statistics.median(times[length]) * 1e6:6.2f} µs, "
              f"mean {statistics.fmean(times[length]) * 1e6:6.2f} µs, waited for a CPU "
              f"{statistics.fmean(waits[length]):.0%} of the time")  # fmt: skip


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    cmd = argv[argv.index("--") + 1 :] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", type=int, default=0, help="the one CPU for the command and the competitors")
    ap.add_argument("--competitors", type=int, default=2, help="competing processes (default 2)")
    ap.add_argument("--spin-us", type=float, default=500.0, help="each competitor spins this long ...")
    ap.add_argument("--sleep-us", type=float, default=300.0, help="... then sleeps this long")
    ap.add_argument("--busy", action="store_true", help="plain busy loops instead (slices of milliseconds)")
    ap.add_argument("--quantization", action="store_true", help="time one callable with samples of four lengths "
                    "quiet, beside busy loops, beside the default competitors; run no command")  # fmt: skip
    ap.add_argument("--narrow", action="store_true", help="no sharing: every CPU, no competitor, the math "
                    "libraries held to older kernels (%s)" % " ".join(f"{k}={v}" for k, v in NARROW.items()))
    ap.add_argument("--competitor", nargs=2, type=float, help=argparse.SUPPRESS)
    return ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv), cmd


def under(args: argparse.Namespace, busy: bool, work) -> int:
    """``work()`` pinned to the CPU with the competitors running; the competitors stopped after."""
    rivals = start_competitors(args.competitors, args.cpu, args.spin_us, 0.0 if busy else args.sleep_us)
    try:
        time.sleep(0.5)
        return work()
    finally:
        for p in rivals:
            p.kill()
            p.wait()


def narrow(cmd: list[str]) -> int:
    """``cmd`` on every CPU, alone, with the math libraries' kernels held back (:data:`NARROW`); its exit status."""
    if not cmd:
        print("slow_machine.py: no command; give one after --", file=sys.stderr)
        return 2
    pins = " ".join(f"{k}={v}" for k, v in NARROW.items())
    print(f"slow_machine: every CPU ({len(os.sched_getaffinity(0))}), no competitor, kernels held back: {pins}",
          file=sys.stderr, flush=True)  # fmt: skip
    return subprocess.run(cmd, env={**os.environ, **NARROW}).returncode


def main(argv: list[str] | None = None) -> int:
    args, cmd = parse_args(sys.argv[1:] if argv is None else argv)
    if args.competitor:
        competitor(args.competitor[0] / 1e6, args.competitor[1] / 1e6)
    if args.narrow:
        return narrow(cmd)
    os.sched_setaffinity(0, {args.cpu})
    if args.quantization:
        for title, busy, n in (("quiet", False, 0), ("plain busy loops", True, args.competitors),
                               ("spin/sleep competitors", False, args.competitors)):  # fmt: skip
            print(f"-- {title} ({n} on CPU {args.cpu})", flush=True)
            under(argparse.Namespace(**{**vars(args), "competitors": n}), busy, quantization)
        return 0
    if not cmd:
        print("slow_machine.py: no command; give one after --", file=sys.stderr)
        return 2
    kind = "busy loops" if args.busy else f"spin {args.spin_us:g} µs / sleep {args.sleep_us:g} µs"
    print(f"slow_machine: CPU {args.cpu} shared with {args.competitors} competitors ({kind}), own sessions",
          file=sys.stderr, flush=True)  # fmt: skip
    return under(args, args.busy, lambda: subprocess.run(cmd).returncode)


if __name__ == "__main__":
    sys.exit(main())
