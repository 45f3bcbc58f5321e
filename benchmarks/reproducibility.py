"""Does a run reproduce? Runs the same plan twice, back to back, as two separate `kbench run` commands, and prints
how well the first run's uncertainty predicted the second run.

    python benchmarks/reproducibility.py                      # the default run, twice (~2 x 50 s on 2 cores)
    python benchmarks/reproducibility.py -- --model dot --batch 1,32 --processes 5

Everything after ``--`` is passed to ``kbench run`` (default: ``--model dense``, the README's front door). For the
rows the two runs share (model, backend, path, sizes, dtype), it prints:

- **coverage (CI)**: the share of rows whose run-2 median lies inside run 1's 95% CI of the median;
- **coverage (repeat interval)**: the same for run 1's repeat interval (where another run's median is expected);
- **within ±5%**: the share of rows whose medians, and whose ratios to NumPy, agree within ±5%;
- the worst disagreement, and the wall time of each run.

Goals on the project's 2-core VM with default settings: coverage ≥ 90%, ≥ 80% of rows within ±5%, and each run
≤ 60 s wall. Exit status 1 when a goal is missed (``--no-gate`` to only print).

``--from DIR`` reads back-to-back pairs already run into DIR (e.g. ``benchmarks/aa_false_alarms.py --out DIR``):
runs 1 and 2, 3 and 4, ... in start order, and pools their rows; wall times are then taken from run.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

KEY = ["model", "backend", "path", "sizes", "dtype"]


def run_once(args: list[str], out: Path) -> tuple[pd.DataFrame, float]:
    from kbench.store.results import load_run

    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kbench", "run", *args, "--out", str(out), "--no-report"],
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"kbench run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    runs = sorted(p for p in out.iterdir() if (p / "run.json").is_file())
    return load_run(runs[-1]).results, wall


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    m = a.merge(b, on=KEY, suffixes=("_1", "_2")).copy()  # one block: the loaded frames are fragmented
    return m.assign(  # one new frame, not one insert per column (pandas warns about a fragmented frame)
        inside_ci=(m["median_s_2"] >= m["ci_low_s_1"]) & (m["median_s_2"] <= m["ci_high_s_1"]),
        inside_repeat=(m["median_s_2"] >= m["repeat_low_s_1"]) & (m["median_s_2"] <= m["repeat_high_s_1"]),
        median_change=m["median_s_2"] / m["median_s_1"] - 1,
        ratio_change=m["ratio_to_numpy_2"] / m["ratio_to_numpy_1"] - 1,
    )


def report(m: pd.DataFrame, walls: list[float]) -> dict[str, float]:
    keras = m[m["path"] != "numpy"]  # NumPy's ratio is 1 by definition
    figures = {
        "coverage_ci": m["inside_ci"].mean(),
        "coverage_repeat": m["inside_repeat"].mean(),
        "median_within_5pct": (m["median_change"].abs() <= 0.05).mean(),
        "ratio_within_5pct": (keras["ratio_change"].abs() <= 0.05).mean(),
    }
    print(f"rows compared: {len(m)}")
    print(f"coverage: run 2's median inside run 1's 95% CI:               {figures['coverage_ci']:6.0%}")
    print(f"coverage: run 2's median inside run 1's repeat interval:      {figures['coverage_repeat']:6.0%}")
    print(f"medians within ±5%:                                           {figures['median_within_5pct']:6.0%}")
    print(f"ratios to NumPy within ±5% (Keras paths):                     {figures['ratio_within_5pct']:6.0%}")
    worst = m.loc[m["median_change"].abs().idxmax()]
    print(f"worst median change: {worst['median_change']:+.1%} ({worst['path']}, {worst['sizes']})")
    print("wall time per run: " + ", ".join(f"{w:.1f} s" for w in walls) + f" (max {max(walls):.1f} s)")
    print()
    cols = ["path", "sizes", "median_s_1", "ci_low_s_1", "ci_high_s_1", "median_s_2", "median_change", "ratio_change"]
    if len(m) <= 40:
        print(m[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    by_path = m.groupby("path").agg(coverage_ci=("inside_ci", "mean"), coverage_repeat=("inside_repeat", "mean"),
                                    within_5pct=("median_change", lambda c: (c.abs() <= 0.05).mean()))  # fmt: skip
    print(by_path.to_string(float_format=lambda v: f"{v:.0%}"))
    return figures


def from_folder(folder: Path) -> tuple[pd.DataFrame, list[float]]:
    """Consecutive runs in ``folder`` as back-to-back pairs: their comparisons pooled, and each run's wall time."""
    import datetime as dt

    from kbench.store.results import load_run

    runs = sorted((load_run(p.parent) for p in folder.glob("*/run.json")), key=lambda r: (r.meta.started, r.run_dir.name))
    if len(runs) < 2:
        sys.exit(f"{folder} holds {len(runs)} run(s); need at least one pair")
    pairs = [compare(a.results, b.results) for a, b in zip(runs[0::2], runs[1::2])]
    walls = [(dt.datetime.fromisoformat(r.meta.finished) - dt.datetime.fromisoformat(r.meta.started)).total_seconds()
             for r in runs if r.meta.finished]  # fmt: skip
    print(f"{len(pairs)} back-to-back pair(s) from {folder} ({runs[0].meta.command})")
    return pd.concat(pairs, ignore_index=True), walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-gate", action="store_true", help="print only; never exit 1")
    parser.add_argument("--from", dest="source", type=Path, help="pairs already run into this folder")
    parser.add_argument("kbench_args", nargs="*", help="arguments for `kbench run` (after --)")
    ns = parser.parse_args(argv)
    args = ns.kbench_args or ["--model", "dense"]
    if ns.source is not None:
        merged, walls = from_folder(ns.source)
    else:
        with tempfile.TemporaryDirectory(prefix="kbench-repro-") as tmp:
            (a, wall_a), (b, wall_b) = run_once(args, Path(tmp) / "1"), run_once(args, Path(tmp) / "2")
        print(f"kbench run {' '.join(args)}, twice back to back")
        merged, walls = compare(a, b), [wall_a, wall_b]
    f = report(merged, walls)
    missed = [name for name, ok in (("coverage ≥ 90%", max(f["coverage_ci"], f["coverage_repeat"]) >= 0.9),
                                    ("≥ 80% of medians within ±5%", f["median_within_5pct"] >= 0.8),
                                    ("each run ≤ 60 s", max(walls) <= 60)) if not ok]  # fmt: skip
    print("goals: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return 1 if missed and not ns.no_gate else 0


if __name__ == "__main__":
    sys.exit(main())
