"""How slow is the first call to a path right after another path ran? Measures the switch penalty the timer's
switch warm-up (``TimerConfig.switch_warmup_calls``) has to absorb.

    python benchmarks/switch_penalty.py                       # dense 128->128 at batch 32 and 1, ~1 minute
    python benchmarks/switch_penalty.py --batch 32 --rounds 40

Builds the real TensorFlow call paths exactly as the worker does (one fresh Keras model per path, first call made
before timing), warms each one up, then visits them in rounds, in a freshly shuffled order each round, as
:class:`kbench.measure.timer.Timer` does. A visit makes ``--calls`` back-to-back calls to one path, each timed alone with
``perf_counter_ns`` (gc off). The visit's *steady* per-call time is the median of its last half of calls; for the
k-th call after the switch the script prints the median over visits of ``t_k / steady`` (paired within a visit, so
machine drift cancels), the extra time of the 1st call in µs, and "settled": the first k from which the median
ratio stays within 3% of steady.

Result on the shared 2-core VM (``--rounds 20``, load ~0.9), median ratio of the k-th call after a switch to the
visit's steady per-call time:

    batch 32           steady    1st   2nd   3rd   4th   1st extra
    numpy             12.3 µs   5.11  1.23  1.08  1.03     50 µs
    predict             42 ms   1.00  1.03  1.01  1.01    113 µs
    predict_on_batch   420 µs   1.86  1.27  1.17  1.07    350 µs
    call               777 µs   1.98  1.35  1.16  1.13    778 µs
    compiled           374 µs   1.82  1.22  1.09  1.04    322 µs
    xla                290 µs   2.07  1.44  1.28  1.12    320 µs
    batch 1: the same shape (numpy 2.8 µs: 1st call 44x, 2nd 3x, 3rd 1.3x; the TF paths 1.7-3.2x, 1.3-1.5x,
    1.1-1.3x, ~1.05-1.1x); predict 1.02, lost in its 47 ms.

A second, longer look (16 calls a visit, split by the previous path): after a light path the penalty is spent after
~3 calls (call: 1.95 1.18 1.08 then ~1.03); after ``predict`` it lasts longer (call 2.54 1.53 1.18 1.17, xla still
1.3 at the 5th). The excess is ~1-2.5 calls' worth for every TF path, whatever its per-call time, and a fixed
sliver of predict's one 40 ms call. So the default is ``switch_warmup_calls=3`` (absorbs ~90% of it after a light
path), capped at ``switch_warmup_max_frac=0.5`` of the loops: 3 calls cost a NumPy sample (~500 loops) nothing,
a TF sample (8-20 loops) 15-40% more wall time (untimed), and ``predict`` (1 loop) none.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness_accuracy import TF_PATHS, build_cell, fmt_time  # noqa: E402

POSITIONS = 4
SETTLED = 1.03


def visit(fn, calls: int) -> list[float]:
    """Per-call seconds of ``calls`` back-to-back calls, each timed alone."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        t0 = clock()
        fn()
        out.append((clock() - t0) * 1e-9)
    return out


def interleave(fns: dict, rounds: int, calls: int, seed: int) -> dict[str, list[list[float]]]:
    """Every path visited once per round, shuffled order; returns per path the list of visits."""
    rng = random.Random(seed)
    names = sorted(fns)
    visits = {n: [] for n in names}
    gc.collect()
    gc.disable()
    try:
        for name in names:  # warm-up before the first round
            visit(fns[name], max(calls, 5))
        for _ in range(rounds):
            order = names[:]
            rng.shuffle(order)
            for name in order:
                visits[name].append(visit(fns[name], calls))
            gc.collect()  # between rounds, as the timer may
    finally:
        gc.enable()
    return visits


def summarize(visits: list[list[float]]) -> tuple[float, list[float], float, int]:
    """(steady per-call s, median ratio of call k to steady for k=1..POSITIONS, extra s of call 1, settled k)."""
    ratios = [[] for _ in range(POSITIONS)]
    steadies, extras = [], []
    for v in visits:
        steady = statistics.median(v[len(v) // 2 :])
        steadies.append(steady)
        extras.append(v[0] - steady)
        for k in range(POSITIONS):
            ratios[k].append(v[k] / steady)
    med = [statistics.median(r) for r in ratios]
    settled = next((k + 1 for k in range(POSITIONS) if all(m <= SETTLED for m in med[k:])), POSITIONS + 1)
    return statistics.median(steadies), med, statistics.median(extras), settled


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 1])
    ap.add_argument("--rounds", type=int, default=30, help="visits per path")
    ap.add_argument("--calls", type=int, default=10, help="calls per visit (the last half give the steady time)")
    ap.add_argument("--no-predict", action="store_true", help="leave out predict (40 ms a call)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.calls < 2 * POSITIONS:
        ap.error(f"--calls must be at least {2 * POSITIONS}")

    paths = [p for p in TF_PATHS if not (args.no_predict and p == "predict")]
    for batch in args.batch:
        t = time.perf_counter()
        fns = build_cell(paths, batch)
        visits = interleave(fns, args.rounds, args.calls, args.seed)
        print(f"\ndense 128->128, batch {batch}: {args.rounds} visits x {args.calls} calls per path "
              f"({time.perf_counter() - t:.0f} s)")  # fmt: skip
        head = "  ".join(f"{k + 1:>5}" for k in range(POSITIONS))
        print(f"{'path':<17} {'steady':>9}  {head}   1st extra  settled")
        for name in paths:
            steady, med, extra, settled = summarize(visits[name])
            cells = "  ".join(f"{m:>5.2f}" for m in med)
            print(f"{name:<17} {fmt_time(steady):>9}  {cells}   {fmt_time(extra):>9}  {settled}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
