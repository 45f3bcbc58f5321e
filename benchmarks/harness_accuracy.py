"""Does kbench's timer agree with timeit? Times the same callables both ways, in one process, and prints ratios.

    python benchmarks/harness_accuracy.py            # ~1-2 minutes on 2 cores

Callables (built with kbench's own models, weights and call paths): NumPy dense 128->128 at batch 1 and 1024, and
the Keras paths ``call``, ``compiled``, ``predict_on_batch`` and ``predict`` at batch 32 (TensorFlow backend).

For each callable the two harnesses alternate A B A B ... (``--rounds`` times each). On a shared VM the speed of
the same callable drifts by several percent between rounds seconds apart, more than either harness's own noise,
so the comparison is *paired*: the ratio is taken per round (kbench and timeit back to back, in the order
A B, B A, A B, ... so a trend in the machine's speed does not favour the harness that runs first) and the reported
ratio is the median of the per-round ratios; its min-max over rounds is printed beside it.

- kbench: ``Timer(TimerConfig(budget_s=...)).measure(fn)``: warm-up, calibrated loops, samples until the median's
  95% CI is within +-2% or the budget is spent, gc off.
- timeit: ``timeit.Timer(fn)``, loops from ``autorange()`` (>= 0.2 s per repeat), median of ``--repeat`` repeats
  (gc off, timeit's default).

Targets: ratio kbench/timeit within 0.95-1.05 (``predict`` within 0.90-1.10). Exit status 1 when one misses, so the
script can gate a change to the timer. It also prints kbench's own overhead: the per-iteration loop cost and the
fixed per-sample cost, each as a percentage of the smallest sample it took.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_callables(seed: int = 0) -> dict[str, object]:
    import keras

    from kbench.paths import PATHS, PathContext
    from kbench.spec import load_model
    from kbench.weights import make_inputs, make_weights

    spec = load_model("dense")
    out = {}
    for batch, path in ((1, "numpy"), (1024, "numpy"), (32, "call"), (32, "compiled"), (32, "predict_on_batch"),
                        (32, "predict")):  # fmt: skip
        sizes = {"batch": batch, "features": 128, "units": 128}
        weights = make_weights(spec, sizes, "float32", seed)
        inputs = make_inputs(spec, sizes, "float32", seed)
        options = spec.default_options
        ctx = PathContext(spec, weights, sizes, options, "float32")
        model = spec.build_keras(keras, weights, sizes, "float32", **options) if PATHS[path].uses_keras else None
        fn = PATHS[path].prepare(ctx, model, "tensorflow")(inputs)
        fn()  # first call (trace) outside both harnesses
        out[f"{path} batch={batch}"] = fn
    return out


def timeit_median(fn, repeat: int) -> float:
    t = timeit.Timer(fn)
    number, _ = t.autorange()
    return statistics.median(x / number for x in t.repeat(repeat=repeat, number=number))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9, help="alternations of the two harnesses per callable")
    ap.add_argument("--repeat", type=int, default=5, help="timeit repeats per round")
    ap.add_argument("--budget", type=float, default=0.75, help="kbench budget per round (seconds)")
    args = ap.parse_args()

    from kbench.render import fmt_time
    from kbench.timer import Timer, TimerConfig

    callables = build_callables()
    timer = Timer(TimerConfig(budget_s=args.budget))
    print(f"{'callable':<26} {'kbench':>9} {'timeit':>9} {'ratio':>6} {'(rounds min-max)':>17}  {'target':<9}"
          f"      kbench n×loops, CI±")  # fmt: skip
    misses = 0
    smallest_call, smallest_sample = float("inf"), (float("inf"), 0)
    for name, fn in callables.items():
        kb, ti, ratios, ms = [], [], [], []
        for r in range(args.rounds):
            if r % 2:
                t = timeit_median(fn, args.repeat)
                m = timer.measure(fn)
            else:
                m = timer.measure(fn)
                t = timeit_median(fn, args.repeat)
            ms.append(m)
            kb.append(m.median)
            ti.append(t)
            ratios.append(m.median / t)
            smallest_call = min(smallest_call, m.min)
            smallest_sample = min(smallest_sample, (m.min * m.loops, m.loops))
        ratio = statistics.median(ratios)
        lo, hi = (0.90, 1.10) if name.startswith("predict ") else (0.95, 1.05)
        ok = lo <= ratio <= hi
        misses += not ok
        last = ms[-1]
        print(f"{name:<26} {fmt_time(statistics.median(kb)):>9} {fmt_time(statistics.median(ti)):>9} {ratio:>6.3f}"
              f" {f'({min(ratios):.3f}-{max(ratios):.3f})':>17}  {lo:.2f}-{hi:.2f} {'ok' if ok else 'MISS':<4}"
              f" {last.n}×{last.loops}, {100 * last.ci_rel_halfwidth:.1f}%")  # fmt: skip
    overhead = timer.overhead()
    print()
    print(f"kbench loop overhead: {fmt_time(overhead.per_loop_s)} per iteration = "
          f"{100 * overhead.per_loop_s / smallest_call:.2f}% of the smallest per-call sample ({fmt_time(smallest_call)})")  # fmt: skip
    print(f"kbench fixed overhead: {fmt_time(overhead.fixed_s)} per sample = "
          f"{100 * overhead.fixed_s / smallest_sample[0]:.3f}% of the shortest sample "
          f"({fmt_time(smallest_sample[0])}, {smallest_sample[1]} loops)")  # fmt: skip
    print(f"{len(callables) - misses}/{len(callables)} ratios within target")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
