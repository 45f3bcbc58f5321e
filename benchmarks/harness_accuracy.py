"""Does kbench's timer agree with itself and with timeit inside a full, interleaved cell? Prints ratios per path.

    python benchmarks/harness_accuracy.py                          # ~7 minutes on 2 cores
    python benchmarks/harness_accuracy.py --processes 1            # one process pair, as before
    python benchmarks/harness_accuracy.py --switch-warmup-calls 0  # the same with the switch warm-up off

The cell is the one kbench times: dense 128->128 at batch 32 (``--batch``), TensorFlow backend, every host path
(``numpy``, ``predict``, ``predict_on_batch``, ``call``, ``compiled``, ``xla``), each built as the worker builds it
(its own Keras model, first call made before any timing). Three ways to time each path:

- **interleaved**: ``Timer.run`` over the whole cell, as the worker does (every path once per round, shuffled), so
  paths disturb each other's caches and thread pools between samples;
- **alone**: ``Timer.run`` on that one path, with the same per-path share of the budget;
- **timeit**: ``timeit.Timer(fn)`` in **another process** (this script with ``--timeit-server``, building the same
  callables), loops from ``autorange()`` once (>= 0.2 s per repeat), median of ``--repeat`` repeats, gc off.

The rounds are shared by ``--processes`` pairs of fresh processes (default 4; each pair: this script with
``--child`` and its own timeit process), one pair after the other. Each process settles in a state of its own for
its life (its memory layout above all): with one pair, NumPy read 11.2 µs in the script's process against 12.8 µs
in its timeit process in every one of 32 rounds (AMX VM, 2026-12-03), a difference of two layouts, not of the two
ways of timing. Several pairs average over layouts as kbench's worker processes do; the per-pair ratios for
``numpy`` are printed.

The machine's speed drifts by several percent between measurements seconds apart, so the comparison is *paired*:
one round times the cell both ways, with kbench and timeit in the order A B, B A, A B, ... (A = kbench: interleaved
then alone, or alone then interleaved in alternate rounds), ratios are taken per round and the printed ratio is their
geometric mean over ``--rounds`` rounds, with its 95% t interval. While one process times, the other blocks on a
pipe. Many rounds: on the shared 2-core VM, back-to-back 0.2 s ``timeit`` measurements of one TensorFlow path
scatter by 7-10% (sd), independently for each path (the ratio of two paths scatters as much), so one round's ratio
scatters by ~10% and only the mean over ~30 rounds settles ±5%.

Targets: interleaved/alone and interleaved/timeit within 0.95-1.05 (``predict`` 0.90-1.10); ``ok`` when the
ratio's CI lies inside the target, ``ok?`` when the median does but the CI reaches out. Exit status 1 on a miss,
so the script can gate a change to the timer. It also prints kbench's own overhead as a share of the smallest
per-call sample and of the shortest sample.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import timeit
from dataclasses import asdict, dataclass, replace

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TF_PATHS = ("numpy", "predict", "predict_on_batch", "call", "compiled", "xla")


def build_path(path: str, batch: int, seed: int = 0):
    """One path's callable on dense 128->128, as the worker builds it: its own Keras model, first call made."""
    import keras

    from kbench.backends.base import PathContext
    from kbench.measure.callpaths import PATHS
    from kbench.model.loader import load_model
    from kbench.model.weights import make_inputs, make_weights

    spec = load_model("dense")
    sizes = {"batch": batch, "features": 128, "units": 128}
    weights = make_weights(spec, sizes, "float32", seed)
    inputs = make_inputs(spec, sizes, "float32", seed)
    options = spec.default_options
    ctx = PathContext(spec, weights, sizes, options, "float32")
    model = spec.build_keras(keras, weights, sizes, "float32", **options) if PATHS[path].uses_keras else None
    fn = PATHS[path].prepare(ctx, model, "tensorflow")(inputs)
    fn()  # first call (trace) outside every harness
    return fn


def build_cell(paths, batch: int, seed: int = 0) -> dict[str, object]:
    """A cell's callables, one per path, keyed by path name."""
    return {path: build_path(path, batch, seed) for path in paths}


def fmt_time(seconds: float) -> str:
    """3 significant figures in ns, µs, ms or s (local, so the script does not depend on kbench's renderer)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def timeit_median(fn, repeat: int, number: int) -> float:
    t = timeit.Timer(fn)
    return statistics.median(x / number for x in t.repeat(repeat=repeat, number=number))


# -- the timeit process --------------------------------------------------------------------------------------------
def serve_timeit(batch: int, repeat: int) -> int:
    """Build the cell, say ``ready``, then for each path name read on stdin print its timeit median as JSON."""
    fns = build_cell(TF_PATHS, batch)
    numbers = {name: timeit.Timer(fn).autorange()[0] for name, fn in fns.items()}  # once: loops for >= 0.2 s
    print("ready", flush=True)
    for line in sys.stdin:
        name = line.strip()
        if not name:
            break
        print(json.dumps({"path": name, "median_s": timeit_median(fns[name], repeat, numbers[name])}), flush=True)
    return 0


class TimeitProcess:
    """The other process, driven over pipes; it blocks on stdin while this one times."""

    def __init__(self, batch: int, repeat: int) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--timeit-server", "--batch", str(batch), "--repeat",
               str(repeat)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)  # fmt: skip

    def wait_ready(self) -> None:
        if self._line() != "ready":
            raise RuntimeError("the timeit process did not start")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the timeit process exited ({self.proc.poll()})")
        return line.strip()

    def median(self, path: str) -> float:
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())["median_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# -- one paired round ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Round:
    interleaved: dict  # path -> Measurement
    alone: dict  # path -> Measurement
    timeit: dict  # path -> seconds per call


def kbench_round(fns: dict, config, flip: bool) -> tuple[dict, dict]:
    from kbench.measure.timer import Timer

    alone_config = replace(config, budget_s=config.budget_s / len(fns))

    def interleaved():
        return Timer(config).run(fns)

    def alone():
        return {name: Timer(alone_config).run({name: fn})[name] for name, fn in fns.items()}

    if flip:
        a = alone()
        return interleaved(), a
    i = interleaved()
    return i, alone()


def paired_round(fns: dict, config, other: TimeitProcess, index: int) -> Round:
    """A B in even rounds, B A in odd ones (A: kbench, B: timeit)."""
    flip = bool(index % 2)
    if flip:
        ti = {name: other.median(name) for name in fns}
        inter, alone = kbench_round(fns, replace(config, seed=index), flip)
    else:
        inter, alone = kbench_round(fns, replace(config, seed=index), flip)
        ti = {name: other.median(name) for name in fns}
    return Round(inter, alone, ti)


# -- report --------------------------------------------------------------------------------------------------------
def report(rounds: list[Round], paths) -> int:
    """Print one line per path; return the number of ratios outside their target.

    Each ratio is the geometric mean over rounds of the per-round ratio, with its 95% t interval
    (``kbench.core.stats.t_interval``): a ratio counts as within target when its mean is, and as *settled* when its
    whole CI is (``ok``); a mean inside with a CI reaching out is ``ok?`` (run more ``--rounds``).
    """
    from kbench.core.stats import t_interval

    print(f"{'path':<17} {'interleaved':>11} {'alone':>9} {'timeit':>9}   {'inter/alone [95% CI]':<24}"
          f" {'inter/timeit [95% CI]':<24} target     n×loops switch")  # fmt: skip
    misses = 0
    for name in paths:
        lo, hi = (0.90, 1.10) if name == "predict" else (0.95, 1.05)
        cells, verdicts = [], []
        for other in ("alone", "timeit"):
            rs = [r.interleaved[name].median / _median(getattr(r, other)[name]) for r in rounds]
            ratio = statistics.geometric_mean(rs)
            ci_lo, ci_hi = t_interval(ratio, rs)
            ok, settled = lo <= ratio <= hi, lo <= ci_lo and ci_hi <= hi
            misses += not ok
            verdicts.append("MISS" if not ok else "ok" if settled else "ok?")
            cells.append(f"{ratio:.3f}{'' if ok else '!'} [{ci_lo:.3f}-{ci_hi:.3f}]")
        verdict = "MISS" if "MISS" in verdicts else "ok?" if "ok?" in verdicts else "ok"
        med = {k: statistics.median(_median(getattr(r, k)[name]) for r in rounds) for k in ("interleaved", "alone", "timeit")}
        last = rounds[-1].interleaved[name]
        print(f"{name:<17} {fmt_time(med['interleaved']):>11} {fmt_time(med['alone']):>9} {fmt_time(med['timeit']):>9}"
              f"   {cells[0]:<24} {cells[1]:<24} {lo:.2f}-{hi:.2f} {verdict:<4}"
              f" {last.n}×{last.loops} {last.switch_warmup_calls}")  # fmt: skip
    return misses


def _median(x) -> float:
    return x if isinstance(x, float) else x.median


def report_overhead(rounds: list[Round]) -> None:
    ms = [m for r in rounds for m in (*r.interleaved.values(), *r.alone.values())]
    smallest_call = min(m.min for m in ms)
    shortest, loops = min((m.min * m.loops, m.loops) for m in ms)
    per_loop, fixed = ms[0].per_loop_overhead_s, ms[0].fixed_overhead_s
    print(f"kbench loop overhead: {fmt_time(per_loop)} per iteration = {100 * per_loop / smallest_call:.2f}% of the "
          f"smallest per-call sample ({fmt_time(smallest_call)})")  # fmt: skip
    print(f"kbench fixed overhead: {fmt_time(fixed)} per sample = {100 * fixed / shortest:.3f}% of the shortest "
          f"sample ({fmt_time(shortest)}, {loops} loops)")  # fmt: skip


def timer_config(args: argparse.Namespace):
    """kbench's TimerConfig with the budget and the overrides given."""
    from kbench.measure.timer import TimerConfig

    overrides = {k: getattr(args, k) for k in ("switch_warmup_calls", "switch_warmup_max_frac", "samples_per_visit")}
    return replace(TimerConfig(budget_s=args.budget), **{k: v for k, v in overrides.items() if v is not None})


def measure_rounds(args: argparse.Namespace, n_rounds: int) -> list[Round]:
    """``n_rounds`` paired rounds in this process, against one timeit process of its own."""
    config = timer_config(args)
    other = TimeitProcess(args.batch, args.repeat)  # builds while this one builds: nothing is timed yet
    try:
        fns = build_cell(TF_PATHS, args.batch)
        other.wait_ready()
        return [paired_round(fns, config, other, i) for i in range(n_rounds)]
    finally:
        other.close()


FORWARDED = ("repeat", "budget", "batch", "switch_warmup_calls", "switch_warmup_max_frac", "samples_per_visit")


def child_rounds(args: argparse.Namespace, n_rounds: int) -> list[Round]:
    """``n_rounds`` paired rounds in a fresh process (this script with ``--child``), with its own timeit process."""
    from kbench.measure.timer import Measurement

    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--rounds", str(n_rounds)]
    for k in FORWARDED:
        if getattr(args, k) is not None:
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    as_m = lambda d: {p: Measurement(**{**m, "samples": tuple(m["samples"])}) for p, m in d.items()}  # noqa: E731
    return [Round(as_m(r["interleaved"]), as_m(r["alone"]), r["timeit"])
            for r in json.loads(done.stdout.strip().splitlines()[-1])]  # fmt: skip


def print_rounds(rounds: list[Round]) -> None:
    """The child's answer: its rounds as one JSON line."""
    out = [{"interleaved": {p: asdict(m) for p, m in r.interleaved.items()},
            "alone": {p: asdict(m) for p, m in r.alone.items()}, "timeit": r.timeit} for r in rounds]  # fmt: skip
    print(json.dumps(out))


def report_processes(per_process: list[list[Round]], path: str = "numpy") -> None:
    """Each process pair's own interleaved/timeit ratio for ``path``: how far one process's state sets it apart."""
    ratios = [statistics.geometric_mean([r.interleaved[path].median / r.timeit[path] for r in rounds])
              for rounds in per_process]  # fmt: skip
    print(f"{path} interleaved/timeit per process pair: " + ", ".join(f"{x:.3f}" for x in ratios))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=32, help="paired rounds (kbench cell both ways, and timeit)")
    ap.add_argument("--processes", type=int, default=4, help="process pairs the rounds are shared by (1: this one)")
    ap.add_argument("--repeat", type=int, default=3, help="timeit repeats per path and round")
    ap.add_argument("--budget", type=float, default=2.0, help="kbench budget of the interleaved cell per round (s)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--switch-warmup-calls", type=int, default=None, help="override TimerConfig's default")
    ap.add_argument("--switch-warmup-max-frac", type=float, default=None, help="override TimerConfig's default")
    ap.add_argument("--samples-per-visit", type=int, default=None, help="override TimerConfig's default")
    ap.add_argument("--timeit-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.timeit_server:
        return serve_timeit(args.batch, args.repeat)
    if args.child:
        print_rounds(measure_rounds(args, args.rounds))
        return 0

    k = max(args.processes, 1)
    shares = [args.rounds // k + (i < args.rounds % k) for i in range(k)]
    per_process = [measure_rounds(args, n) if k == 1 else child_rounds(args, n) for n in shares if n]
    rounds = [r for rs in per_process for r in rs]
    config = timer_config(args)
    print(f"dense 128->128 batch {args.batch}, {len(rounds)} paired rounds in {len(per_process)} process pair(s), "
          f"cell budget {args.budget:g} s, switch warm-up {config.switch_warmup_calls} calls (at most "
          f"{config.switch_warmup_max_frac:g} x loops), {config.samples_per_visit} samples a visit")  # fmt: skip
    misses = report(rounds, TF_PATHS)
    print()
    report_processes(per_process)
    report_overhead(rounds)
    print(f"{2 * len(TF_PATHS) - misses}/{2 * len(TF_PATHS)} ratios within target")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
