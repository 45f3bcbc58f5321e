"""Does a real `kbench run` agree with timeit? Each row of the run against the same call timed alone in another process.

    python benchmarks/run_vs_timeit.py                          # the default run, 3 rounds: ~3 minutes on 2 cores
    python benchmarks/run_vs_timeit.py --rounds 5 -- --quick    # after ``--``: passed to ``kbench run``
    python benchmarks/run_vs_timeit.py --rounds 1 --repeat 1 -- --batch 32 --path numpy,compiled --cell-budget 0.5

Where ``benchmarks/harness_accuracy.py`` checks kbench's Timer inside one process, this checks what a user gets:
``kbench run --model dense --no-report`` (plus anything after ``--``) as a subprocess, with its default protocol (3
forked worker processes, interleaved paths, the run's own time goal), against every (path, sizes) row of that run
timed alone by ``timeit.Timer(fn)`` in other processes (this script with ``--timeit-server``; ``--processes`` fresh
ones a round, 3 like the run's workers, each row's figure the median of theirs: one process can sit in a fast or
slow mode for its life, so a single long-lived one is no reference): each row's callable is built as the worker
builds it (``kbench.measure.cellinputs``: the seeded weights and inputs, a fresh Keras model per path, first call
made before any timing), its loops come from ``autorange()`` once (>= 0.2 s per repeat, once per process), and its
time is the median of ``--repeat`` repeats, gc off as timeit does. The rows to time are read from the first run's
``results.json`` (and its seed from ``run.json``); the timeit processes run under the worker's environment
(``KERAS_BACKEND``, GPUs hidden), one at a time, after the run.

The machine drifts by several percent within a minute, so the comparison is *paired*: a round is one run, then one
timeit pass over its rows, and each run is held against the geometric mean of the passes just before and just after
it (the first run against the one after), which cancels a drift that is linear over the round. Per row, the ratio
run median / timeit median is taken per round; the printed ratio is its geometric mean over ``--rounds`` rounds
with its 95% t interval. Targets: 0.95-1.05 (``predict`` 0.90-1.10). Verdict ``ok`` when the whole interval lies
inside the target, ``ok?`` when the mean does but the interval reaches out (or one round gives no interval: run
more ``--rounds``), ``MISS`` when the mean is outside. ``A/A``: timeit against itself, the largest ratio between its
passes of the row (how far apart two honest measurements of the same call came that hour). Also printed: ``kbench peak``'s float32 GFLOP/s (every wall
time here is quoted with the machine's peak; on a machine slowed since the peak was cached, pass ``--refresh-peak``:
``python benchmarks/slow_machine.py -- python benchmarks/run_vs_timeit.py --refresh-peak`` shares one CPU with
competitors that spin and sleep in turn. Not a plain busy loop: beside one, the median of 5 ms samples depends on
how they fall against its slices of milliseconds and that of timeit's 0.2 s repeats does not, so the two read up to
1.3x apart with no fault in either (``slow_machine.py --quantization``); and a loop in this script's session, not
one of its own, takes half the core from kbench's workers, which run in sessions of their own, but less from the
timeit side), the wall time of each run, the load average after each round (others' work on a
shared machine shows there, and in a row's per-round ratios), and the BLAS thread pools as the timeit process sees
them (threadpoolctl).

Exit status 1 when any row misses its target (so the script can gate), 0 otherwise or with ``--no-gate``;
2 when ``kbench run`` or the timeit process fails. ``--keep DIR`` keeps the run folders in DIR.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = {"predict": (0.90, 1.10)}
DEFAULT_TARGET = (0.95, 1.05)


# -- rows of a run -------------------------------------------------------------------------------------------------
def row_key(row: dict) -> str:
    """A row's identity across runs: model, backend, path, sizes, dtype and options."""
    return json.dumps([row["model"], row["backend"], row["path"], row["sizes"], row["dtype"], row["options"]],
                      sort_keys=True)  # fmt: skip


def read_run(run_dir: Path) -> tuple[dict[str, dict], int]:
    """The run's timed rows keyed by :func:`row_key`, in the run's order, and the plan's seed."""
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    seed = json.loads((run_dir / "run.json").read_text())["plan"]["seed"]
    return {row_key(r): r for r in rows if r.get("median_s")}, seed


def kbench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kbench", *args]


def run_kbench(extra: list[str], out: Path) -> tuple[dict[str, dict], int, float]:
    """One ``kbench run`` into ``out``: its rows, seed and wall time (s)."""
    named = {"-m", "--model"} & set(extra) or any(a.startswith("--model=") for a in extra)
    model = [] if named else ["--model", "dense"]
    t = time.perf_counter()
    proc = subprocess.run(kbench_cmd("run", *model, *extra, "--no-report", "--out", str(out)),
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"kbench run failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    run_dir = sorted(p.parent for p in out.glob("*/run.json"))[-1]
    rows, seed = read_run(run_dir)
    return rows, seed, wall


def kbench_peak(refresh: bool) -> tuple[str, float | None]:
    """``kbench peak``'s summary line and its float32 GFLOP/s (None when the output has no such line)."""
    proc = subprocess.run(kbench_cmd("peak", *(["--refresh"] if refresh else [])), capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    peak = next((ln for ln in lines if ln.startswith("peak")), "")
    cached = next((ln.split(" for machine")[0] for ln in lines if ln.startswith("cached")), "measured now")
    m = re.search(r"float32\s+([\d.]+)\s*GFLOP/s", peak)
    return f"{peak.strip() or 'kbench peak: no peak line'} [{cached}]", float(m.group(1)) if m else None


# -- the timeit process --------------------------------------------------------------------------------------------
def build_row(row: dict, seed: int):
    """The row's callable as the worker builds it (cellinputs.prepare, then a fresh model), first call made."""
    from kbench.measure.callpaths import PATHS
    from kbench.measure.cellinputs import prepare
    from kbench.measure.protocol import Cell
    from kbench.model.loader import load_model

    spec = load_model(row["model"])
    sizes = tuple((k, int(v)) for k, v in (kv.split("=") for kv in row["sizes"].split()))
    cell = Cell(row["model"], "", sizes, tuple(row["options"].items()), row["dtype"])
    inputs = prepare(cell, spec, seed, "float32")
    fn = inputs.build(PATHS[row["path"]], row["backend"])(inputs.inputs)
    fn()  # first call (trace, compile) outside the timing
    return fn


def build_rows(first: dict) -> dict:
    """Every row's callable, keyed as the run keys it (the backend's device set up first)."""
    from kbench.backends import get as get_backend

    get_backend(first["backend"]).setup_device("cpu", "default")
    return {key: build_row(row, first["seed"]) for key, row in first["rows"].items()}


def serve_timeit(repeat: int, build=build_rows) -> int:
    """Read the rows (one JSON line), ``build`` them, say ready with the BLAS pools; then per key read, its median."""
    proto = os.fdopen(os.dup(1), "w")  # the protocol's own stdout: anything the libraries print goes to stderr
    os.dup2(2, 1)
    first = json.loads(sys.stdin.readline())
    from threadpoolctl import threadpool_info

    fns = build(first)
    numbers = {key: timeit.Timer(fn).autorange()[0] for key, fn in fns.items()}  # once: loops for >= 0.2 s
    blas = [{k: p.get(k) for k in ("internal_api", "num_threads", "version")} for p in threadpool_info()]
    print(json.dumps({"ready": True, "blas": blas, "loops": numbers}), file=proto, flush=True)
    for line in sys.stdin:
        key = line.strip()
        if not key:
            break
        times = timeit.Timer(fns[key]).repeat(repeat=repeat, number=numbers[key])
        print(json.dumps(statistics.median(t / numbers[key] for t in times)), file=proto, flush=True)
    return 0


class TimeitProcess:
    """The other process, driven over pipes; it blocks on stdin while the run runs. ``SCRIPT``: the script whose
    ``--timeit-server`` it runs (``runtime_vs_timeit.py`` points it at itself)."""

    SCRIPT = os.path.abspath(__file__)

    def __init__(self, rows: dict[str, dict], seed: int, repeat: int) -> None:
        from kbench.backends import get as get_backend

        backends = {r["backend"] for r in rows.values()}
        if len(backends) != 1:
            raise RuntimeError(f"one backend per check, the run has {sorted(backends)}")
        backend = backends.pop()
        env = get_backend(backend).worker_env("cpu", os.environ)
        self.log = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, self.SCRIPT, "--timeit-server", "--repeat", str(repeat)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env)  # fmt: skip
        self._send(json.dumps({"backend": backend, "seed": seed, "rows": rows}))
        self.ready = json.loads(self._line())

    def _send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the timeit process exited ({self.proc.wait()}): {self.log.read()[-800:]}")
        return line

    def median(self, key: str) -> float:
        self._send(key)
        return json.loads(self._line())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self.log.close()


# -- rounds --------------------------------------------------------------------------------------------------------
class Check:
    """The paired rounds: each a run (rows: key -> run median) and a timeit pass (key -> timeit median). ``OTHER``:
    the timeit process's class; :meth:`keep` the rows it times (every timed row here)."""

    OTHER = TimeitProcess

    def __init__(self, extra: list[str], out: Path, repeat: int, processes: int = 3) -> None:
        self.extra, self.out, self.repeat, self.processes = extra, out, repeat, processes
        self.rows: dict[str, dict] = {}  # the first run's rows: the ones timeit times
        self.seed = 0
        self.ready: dict = {}  # the first timeit process's hello (its BLAS pools)
        self.runs: list[dict[str, float]] = []
        self.timeits: list[dict[str, float]] = []
        self.walls: list[float] = []
        self.loads: list[float] = []  # the 1-minute load average after each round: others' work on a shared machine

    def run(self, index: int) -> None:
        rows, seed, wall = run_kbench(self.extra, self.out / f"round-{index}")
        rows = {k: r for k, r in rows.items() if self.keep(r)}
        self.runs.append({k: r["median_s"] for k, r in rows.items()})
        self.walls.append(wall)
        if not self.rows:  # the first run says what to time
            self.rows, self.seed = rows, seed

    def keep(self, row: dict) -> bool:
        return True

    def timeit_pass(self) -> None:
        """``processes`` fresh timeit processes per group of rows (:meth:`group`), one after the other, each timing
        its group's rows; per row the median of their medians (a process can sit in a slow or fast mode for its
        whole life, as a worker can: a runtime's 2-thread pool on 2 cores read 16-31 µs from one process to the
        next, so one long-lived process is no reference)."""
        groups: dict[str, dict[str, dict]] = {}
        for key, row in self.rows.items():
            groups.setdefault(self.group(row), {})[key] = row
        medians: dict[str, float] = {}
        for rows in groups.values():
            per_process = []
            for _ in range(self.processes):
                other = self.OTHER(rows, self.seed, self.repeat)
                try:
                    per_process.append({key: other.median(key) for key in rows})
                finally:
                    other.close()
                self.ready = self.ready or other.ready
            medians.update({key: statistics.median(p[key] for p in per_process) for key in rows})
        self.timeits.append(medians)

    def group(self, row: dict) -> str:
        """Which rows share a timeit process: all of them here (kbench's worker runs them together too)."""
        return ""

    def round(self, index: int) -> None:
        """A run, then a timeit pass: the passes bracket every run after the first (:meth:`reference`)."""
        self.run(index)
        self.timeit_pass()
        self.loads.append(os.getloadavg()[0])

    def reference(self, index: int, key: str) -> float:
        """Run ``index``'s timeit figure for ``key``: the geometric mean of the passes just before and just after
        it (the one after for the first run), so a drift of the machine that is linear over a round cancels."""
        around = [t[key] for t in self.timeits[max(index - 1, 0): index + 1]]
        return math.exp(statistics.fmean(math.log(v) for v in around))

    def close(self) -> None:
        """Nothing left open: each pass closes its own processes (kept for the callers' ``finally``)."""


# -- report --------------------------------------------------------------------------------------------------------
def geo_interval(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean of ``ratios`` and its 95% t interval (NaN bounds for a single ratio)."""
    from scipy.stats import t

    logs = [math.log(r) for r in ratios]
    centre = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(centre), math.nan, math.nan
    half = t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def verdict(path: str, ratio: float, lo: float, hi: float) -> str:
    t_lo, t_hi = TARGETS.get(path, DEFAULT_TARGET)
    if not t_lo <= ratio <= t_hi:
        return "MISS"
    return "ok" if t_lo <= lo and hi <= t_hi else "ok?"


def labels(rows: dict[str, dict]) -> dict[str, str]:
    """Per key, the path and the sizes that vary between rows (all of them when none varies)."""
    parsed = {k: dict(kv.split("=") for kv in r["sizes"].split()) for k, r in rows.items()}
    names = list(next(iter(parsed.values())))
    varying = [n for n in names if len({p.get(n) for p in parsed.values()}) > 1] or names
    models = len({r["model"] for r in rows.values()}) > 1
    return {k: " ".join([*([r["model"]] if models else []), r["path"], *(f"{n}={parsed[k][n]}" for n in varying)])
            for k, r in rows.items()}  # fmt: skip


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def aa_spread(check: Check, key: str) -> str:
    """timeit against itself: the largest ratio between two timeit passes of ``key`` (each the median of fresh
    processes), as ``±x%``, the spread no run can be held to more tightly; "-" with one pass."""
    values = [t[key] for t in check.timeits if key in t]
    if len(values) < 2:
        return "-"
    return f"±{100 * (max(values) / min(values) - 1):.0f}%"


def report(check: Check) -> tuple[int, int]:
    """Print one line per row; return (rows within target, rows)."""
    names = labels(check.rows)
    width = max(len(n) for n in names.values()) + 2
    print(f"{'row':<{width}}{'run':>9} {'timeit':>9}   {'run/timeit [95% CI]':<26}{'target':<11}verdict  "
          f"{'A/A':>5}  per round")  # fmt: skip
    within = 0
    for key, row in check.rows.items():
        pairs = [(r[key], check.reference(i, key)) for i, r in enumerate(check.runs) if key in r]
        ratio, lo, hi = geo_interval([a / b for a, b in pairs])
        v = verdict(row["path"], ratio, lo, hi)
        within += v != "MISS"
        t_lo, t_hi = TARGETS.get(row["path"], DEFAULT_TARGET)
        ci = f"[{lo:.3f}-{hi:.3f}]" if not math.isnan(lo) else "[n=1]"
        run_med, ti_med = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
        rounds = " ".join(f"{a / b:.2f}" for a, b in pairs)
        print(f"{names[key]:<{width}}{fmt_time(run_med):>9} {fmt_time(ti_med):>9}   {ratio:.3f} {ci:<20}"
              f"{t_lo:.2f}-{t_hi:.2f} {v:<8} {aa_spread(check, key):>5}  {rounds}")  # fmt: skip
    return within, len(check.rows)


def print_setting(check: Check, peak_line: str) -> None:
    print(f"kbench run {' '.join(check.extra) or '(defaults)'}: {len(check.runs)} paired rounds; timeit: median of "
          f"{check.repeat} repeats a row, in each of {check.processes} fresh processes a round (median of those)")
    print(f"machine: {peak_line}")
    pools = check.ready.get("blas", [])
    blas = ", ".join(f"{p['internal_api']} {p['version']}: {p['num_threads']} threads" for p in pools)
    print(f"BLAS thread pools in the timeit process: {blas or 'none found'}")
    print("wall time per kbench run: " + ", ".join(f"{w:.1f} s" for w in check.walls)
          + f" (mean {statistics.fmean(check.walls):.1f} s)")  # fmt: skip
    print("load average (1 min) after each round: " + ", ".join(f"{x:.2f}" for x in check.loads)
          + f" on {os.cpu_count()} cores")  # fmt: skip
    print()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="paired rounds (one kbench run and one timeit pass each)")
    ap.add_argument("--repeat", type=int, default=3, help="timeit repeats per row, process and round (median)")
    ap.add_argument("--processes", type=int, default=3, help="fresh timeit processes per round (median of medians)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run folders in this folder")
    ap.add_argument("--refresh-peak", action="store_true", help="measure kbench peak again instead of its cache")
    ap.add_argument("--no-gate", action="store_true", help="exit 0 even when a row misses its target")
    ap.add_argument("--timeit-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("kbench_args", nargs="*", help="arguments for `kbench run` (after --)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.timeit_server:
        return serve_timeit(args.repeat)
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    peak_line, _ = kbench_peak(args.refresh_peak)  # once, before any timing
    with tempfile.TemporaryDirectory(prefix="kbench-run-vs-timeit-") as tmp:
        out = args.keep if args.keep is not None else Path(tmp)
        check = Check(args.kbench_args, out, args.repeat, args.processes)
        try:
            for i in range(args.rounds):
                check.round(i)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            check.close()
    print_setting(check, peak_line)
    within, total = report(check)
    print(f"\n{within} of {total} rows within target")
    return 1 if within < total and not args.no_gate else 0


if __name__ == "__main__":
    sys.exit(main())
