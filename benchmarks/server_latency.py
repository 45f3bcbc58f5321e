"""Latency as a server sees it: single calls after an idle gap, their tail, and one thread against two.

    python benchmarks/server_latency.py                      # dense 128->128, ~2 minutes on a 2-core VM
    python benchmarks/server_latency.py --processes 3 --gap 20ms --cell-budget 4

Two kbench runs through the library (``kbench.plan`` / ``kbench.run``, the same worker processes as ``kbench run``;
the run folders go to a temporary directory unless ``--out`` is given):

1. ``dense`` at batch 1 with ``--gap 0,<gap>``: for each path, its single calls back to back (one call between two
   clock reads, after the steady state) next to its single calls after an idle gap, p50 and p99, pooled over the
   processes; then p99/p50 of each, and the hot loop's median for reference.
2. ``dense`` at batch 1 and 1024 with ``--threads 1,2``: each path's hot-loop median and single-call p99 with one
   thread (BLAS, OpenMP, TensorFlow's intra- and inter-op pools, XLA's CPU flags) against two.

Paths whose call is under 20 µs (the NumPy twin at batch 1) are too short to time alone and show a dash. Timings
depend on the machine and its load: the script prints the load average first; rerun it on a quiet machine before
quoting a figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import kbench
from kbench.core.fmt import fmt_ratio, fmt_time, missing
from kbench.core.durations import fmt_gap
from kbench.orchestrate.latency_options import parse_gap


def _at(row, key: str, gap: float) -> float | None:
    """``lat_gap_<key>`` of a row at ``gap`` (None where not measured)."""
    gaps, values = row.get("lat_gap_s"), row.get(f"lat_gap_{key}")
    if not isinstance(gaps, list) or not isinstance(values, list):
        return None
    return next((v for g, v in zip(gaps, values) if abs(g - gap) < 1e-12), None)


def _ratio(a, b) -> str:
    return "—" if missing(a) or missing(b) or not b else fmt_ratio(float(a) / float(b))


def gap_table(results, gap: float) -> list[str]:
    head = f"{'path':<17} {'hot loop':>9} {'b2b p50':>9} {'b2b p99':>9} {'p50 @' + fmt_gap(gap):>10} " \
           f"{'p99 @' + fmt_gap(gap):>10} {'gap/b2b p50':>11} {'p99/p50 b2b':>11} {'p99/p50 gap':>11} {'gap seen':>9}"
    lines = [head, "-" * len(head)]
    for _, r in results.iterrows():
        p50g, p99g, seen = _at(r, "p50_s", gap), _at(r, "p99_s", gap), _at(r, "actual_s", gap)
        lines.append(f"{r['path']:<17} {fmt_time(r['median_s']):>9} {fmt_time(r['lat_p50_s']):>9} "
                     f"{fmt_time(r['lat_p99_s']):>9} {fmt_time(p50g):>10} {fmt_time(p99g):>10} "
                     f"{_ratio(p50g, r['lat_p50_s']):>11} {_ratio(r['lat_p99_s'], r['lat_p50_s']):>11} "
                     f"{_ratio(p99g, p50g):>11} {fmt_time(seen):>9}")  # fmt: skip
    return lines


def threads_table(results) -> list[str]:
    head = (f"{'batch':>5} {'path':<17} {'median 1 thr':>12} {'median 2 thr':>12} {'2 / 1':>7} {'p99 1 thr':>10} "
            f"{'p99 2 thr':>10} {'2 / 1':>7}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for (batch, path), g in results.groupby(["size_batch", "path"], sort=False):
        one, two = (g[g["threads"] == n].iloc[0] if (g["threads"] == n).any() else None for n in (1, 2))
        if one is None or two is None:
            continue
        lines.append(f"{batch:>5} {path:<17} {fmt_time(one['median_s']):>12} {fmt_time(two['median_s']):>12} "
                     f"{_ratio(two['median_s'], one['median_s']):>7} {fmt_time(one['lat_p99_s']):>10} "
                     f"{fmt_time(two['lat_p99_s']):>10} {_ratio(two['lat_p99_s'], one['lat_p99_s']):>7}")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gap", default="20ms", help="the idle gap before each single call (default 20ms)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--cell-budget", type=float, default=2.0)
    ap.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args()
    gap = parse_gap(args.gap)
    out = args.out or tempfile.mkdtemp(prefix="kbench-server-latency-")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} logical cores; run folders in {out}\n")

    plan = kbench.plan("dense", sizes={"batch": "1"}, gaps=f"0,{args.gap}", processes=args.processes,
                       cell_budget=args.cell_budget, command="benchmarks/server_latency.py (gaps)")  # fmt: skip
    first = kbench.run(plan, out).results.sort_values("path", key=lambda s: s.map(list(plan.paths).index))
    print(f"dense 128->128, batch 1: single calls back to back (b2b) and after a {fmt_gap(gap)} idle gap")
    print("\n".join(gap_table(first, gap)) + "\n")

    plan = kbench.plan("dense", sizes={"batch": "1,1024"}, threads="1,2", processes=args.processes,
                       cell_budget=args.cell_budget, command="benchmarks/server_latency.py (threads)")  # fmt: skip
    second = kbench.run(plan, out).results
    print("dense 128->128: 1 thread against 2 (hot-loop median and single-call p99)")
    print("\n".join(threads_table(second)))


if __name__ == "__main__":
    main()
