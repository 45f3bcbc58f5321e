"""Where the time goes, per path: compute, dispatch, conversion in and out, framework overhead (kbench.measure.decompose).

    python benchmarks/where_time_goes.py                          # dense batch 1,32,1024 + matmul n 100,1024 on
                                                                  # tensorflow, jax, torch; ~2-3 minutes on 2 cores
    python benchmarks/where_time_goes.py --backend tensorflow --cell-budget 2 --processes 3

Runs kbench itself (``kbench.plan`` / ``kbench.run``, nothing written), so every figure comes from the same
interleaved protocol as a ``kbench run``: the references are timed beside the paths in each cell. Prints, per
backend and cell, each Keras path's median and its parts, the overhead's 95% interval, whether the parts add up to
the path within its uncertainty (they do by construction; what is checked is that the overhead's interval reaches
0 or above, i.e. the references do not exceed the path beyond noise), and the cell's sentence.
"""

from __future__ import annotations

import argparse
import math
import time

import kbench
from kbench.analysis.decompose import from_row
from kbench.present.decompose import breakdown, signed_time
from kbench.core.fmt import fmt_time

CELLS = (("dense", {"batch": "1,32,1024"}), ("matmul", {"n": "100,1024"}))


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="tensorflow,jax,torch")
    ap.add_argument("--cell-budget", type=float, default=1.0, help="steady-state seconds per cell (default 1)")
    ap.add_argument("--processes", type=int, default=1)
    return ap.parse_args()


def _t(v: float) -> str:
    return signed_time(v, fmt_time) if not math.isnan(v) else "—"


def _cell_lines(rows: list[dict]) -> list[str]:
    base = next((r for r in rows if r["path"] == "numpy"), None)
    out = [f"  {'path':<17}{'median':>10}{'compute':>10}{'dispatch':>10}{'conv in':>10}{'conv out':>10}{'overhead':>10}  "
           f"{'overhead 95% CI':<22}{'floor':<16}adds up"]  # fmt: skip
    if base is not None:
        out.append(f"  {'numpy':<17}{_t(base['median_s']):>10}")
    for r in rows:
        d = from_row(r)
        if d is None:
            continue
        ci = f"{_t(d.overhead_low_s)} … {_t(d.overhead_high_s)}"
        ok = "yes" if d.overhead_high_s >= 0 else "NO: refs > path"
        dispatch = _t(d.dispatch_part_s) if d.has_dispatch else "—"
        out.append(f"  {r['path']:<17}{_t(d.path_s):>10}{_t(d.compute_s):>10}{dispatch:>10}{_t(d.conversion_in_s):>10}"
                   f"{_t(d.conversion_out_s):>10}{_t(d.overhead_s):>10}  {ci:<22}{r['floor_name']:<16}{ok}")  # fmt: skip
    sentence = breakdown(rows, rows[0]["sizes"]).sentence
    return out + ([f"  {sentence}"] if sentence else [])


def main() -> None:
    args = _args()
    started = time.perf_counter()
    for model, sizes in CELLS:
        plan = kbench.plan(model, sizes=sizes, backends=args.backend, processes=args.processes, quick=True,
                           cell_budget=args.cell_budget, command="benchmarks/where_time_goes.py")  # fmt: skip
        df = kbench.run(plan, None).results
        for (backend, label), g in df.groupby(["backend", "sizes"], sort=False):
            print(f"\n{model} · {backend} · {label}")
            print("\n".join(_cell_lines(g.to_dict("records"))))
    print(f"\n({time.perf_counter() - started:.0f} s; one run on this machine: rerun on a quiet one for the README)")


if __name__ == "__main__":
    main()
