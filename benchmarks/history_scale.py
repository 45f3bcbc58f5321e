"""How fast is `kbench history` with hundreds of runs?

Writes N synthetic run folders (default 300; rows built by kbench.orchestrate.rows from synthetic per-process samples, written by
RunWriter exactly as `kbench run` writes them, samples.csv included) into a temporary folder, then times, best of
--repeat, as a user runs them (a fresh `python -m kbench` each, imports included):

    kbench history --reports DIR                                        (the list)
    kbench history --reports DIR --model dense --path compiled --batch 32 --no-plot   (a trend, table only)
    kbench history --reports DIR --model dense --path compiled --batch 32             (a trend and its PNG)

and, in process, kbench.analysis.history.scan and kbench.analysis.trend.trend alone. Exits 1 when the list or the table-only trend takes longer
than --limit seconds (default 5).

    python benchmarks/history_scale.py [--runs 300] [--cells 3] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kbench.analysis import history
from kbench.analysis.trend import CellFilter, trend as follow
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import Cell
from kbench.measure.protocol import CellDone, PathResult
from kbench.store.results import RunWriter
from kbench.orchestrate.rows import CellFacts, cell_rows

PATHS = {"numpy": 3e-6, "predict": 4e-2, "predict_on_batch": 4e-4, "call": 8e-4, "compiled": 3.8e-4, "xla": 2.7e-4}


def _path(path: str, median: float, rng, n: int = 15) -> PathResult:
    parity = ParityResult(path, True, 2e-5, 1e-7, 1e-8, 0.0)
    samples = tuple(float(x) for x in median * np.exp(rng.normal(0.0, 0.03, n)))
    return PathResult(path, 0, None if path == "numpy" else 0.01, 0.02, parity, "cpu", "host", "float32", samples,
                      10, "ci", 2e-8, 1e-7, 3, 0.5, 2)  # fmt: skip


def write_run(reports: Path, i: int, cells: int, processes: int, rng) -> None:
    run_id = f"2027{1 + i // 28 // 24:02d}{1 + i // 24 % 28:02d}-{i % 24:02d}0000-dense"
    drift = 1.3 if i >= 150 else 1.0  # a regression half way
    meta = {"run_id": run_id, "command": "kbench run --model dense", "started": f"{run_id[:4]}-{run_id[4:6]}-"
            f"{run_id[6:8]}T{i % 24:02d}:00:00", "backends": ["tensorflow"], "processes": processes,
            "env": {"host": {"cpu": "synthetic", "python": "3.11.7", "packages": {}},
                    "backends": {"tensorflow": {"keras": f"3.{15 + i // 100}.0", "tensorflow": "2.21.0"}}}}  # fmt: skip
    writer = RunWriter(reports / run_id, meta)
    for c in range(cells):
        batch = 32 ** c if c < 2 else 1024 * c
        cell = Cell("dense", "models/dense.py", (("batch", batch), ("features", 128), ("units", 128)),
                    (("activation", "linear"),), "float32")  # fmt: skip
        done = {p: CellDone(c, tuple(_path(name, m * (1 + batch / 64) * (drift if name == "compiled" else 1), rng)
                                     for name, m in PATHS.items()), tuple(PATHS)) for p in range(processes)}  # fmt: skip
        writer.add(*cell_rows(CellFacts(run_id, "tensorflow", cell, 32768 * batch, 66000, {"numpy": 0.05,
                                                                                         "backend": 3.0}), done))
    writer.finish("complete", finished=meta["started"])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "kbench", "history", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"kbench history {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--cells", type=int, default=3)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=float, default=5.0)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here and keep them")
    args = ap.parse_args()
    reports = args.keep or Path(tempfile.mkdtemp(prefix="kbench-history-")) / "reports"
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(args.runs):
        write_run(reports, i, args.cells, args.processes, rng)
    print(f"wrote {args.runs} runs ({args.cells} cells x {len(PATHS)} paths, {args.processes} processes) in "
          f"{time.perf_counter() - t:.1f} s")  # fmt: skip
    trend = ["--model", "dense", "--path", "compiled", "--batch", "32"]
    filt = CellFilter("dense", "compiled", sizes=(("batch", 32),))
    results = {
        "scan (in process)": best(lambda: history.scan(reports), args.repeat),
        "scan + trend (in process)": best(lambda: follow(history.scan(reports), filt), args.repeat),
        "kbench history (list)": best(lambda: cli("--reports", str(reports)), args.repeat),
        "kbench history (trend, --no-plot)": best(lambda: cli("--reports", str(reports), *trend, "--no-plot"), args.repeat),
        "kbench history (trend + PNG)": best(lambda: cli("--reports", str(reports), *trend), args.repeat),
    }  # fmt: skip
    for name, s in results.items():
        print(f"{name:<36} {s:6.2f} s  (best of {args.repeat})")
    t = follow(history.scan(reports), filt)
    print(f"trend: {len(t.points)} points, {sum(p.significant for p in t.points)} significant changes")
    if args.keep is None:
        shutil.rmtree(reports.parent)
    slow = [n for n in ("kbench history (list)", "kbench history (trend, --no-plot)") if results[n] > args.limit]
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
