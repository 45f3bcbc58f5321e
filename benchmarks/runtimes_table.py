"""The serving runtimes against NumPy and Keras (issue 23): parity, ratio to NumPy at batch 1, 32 and 1024, and the
cold start (export, load, first call), for dense, mlp, conv1d and a user's .keras CNN.

    python benchmarks/runtimes_table.py                    # the default cell budget, 3 processes: ~6 minutes on 2 cores
    python benchmarks/runtimes_table.py --quick            # --quick cells: a first look
    python benchmarks/runtimes_table.py --smoke            # batch 1 only, 1 process, 0.2 s cells: checks the script
    python benchmarks/runtimes_table.py --wall             # also (+3 min): the default run with and without them

1. builds and saves the CNN with Keras in a child process (this script never imports Keras), as
   ``benchmarks/cnn_sweep.py`` does: 28×28×1 input, Conv2D(8, 3, relu), MaxPooling2D(2), Conv2D(16, 3, relu),
   GlobalAveragePooling2D, Dense(10, softmax);
2. per model, ``kbench run --model M --runtime all --batch 1,32,1024 --no-report`` (the Keras paths too, so the
   table holds the best Keras path beside the runtimes), read back from its results.json and run.json;
3. prints, as markdown ready for the validation page: per model and runtime, parity (✓, ✗ with kbench's message,
   or the exporter's reason when the runtime could not take the model) and the ratio to NumPy at each batch, with
   the fastest Keras path for reference; then the cold-start table (export, load, first call; the Keras model's
   build apart) per runtime and model at batch 1; then the verdict kbench printed for each model.

With ``--wall``: ``kbench run --model dense`` (the default run) with and without ``--runtime all``, one after the
other, and their wall times. Exit status 1 when a runtime failed parity on a built-in model, 0 otherwise; the
figures are for reading, nothing is asserted about them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILD = """
import sys, keras
model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.MaxPooling2D(2), keras.layers.Conv2D(16, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
model.save(sys.argv[1])
"""
MODELS = ("dense", "mlp", "conv1d", "cnn.keras")
RUNTIMES = ("onnxruntime", "litert", "openvino")
KERAS = ("predict", "predict_on_batch", "call", "compiled", "xla")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def kbench(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kbench", *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    return proc, time.perf_counter() - t


def run_model(model: str, batches: str, timing: list[str], work: Path) -> dict:
    """One ``kbench run`` of ``model`` with every runtime: its rows, run.json, the verdict lines and stderr."""
    out = work / "reports" / model.replace(".", "_")
    proc, wall = kbench(["run", "--model", model, "--runtime", "all", "--batch", batches, "--no-report", *timing,
                         "--out", str(out)], work)  # fmt: skip
    runs = sorted(out.glob("*/run.json"))
    if not runs:
        return {"model": model, "error": (proc.stderr.strip().splitlines() or ["no run folder"])[-1], "wall": wall}
    rows = json.loads((runs[-1].parent / "results.json").read_text())["rows"]
    meta = json.loads(runs[-1].read_text())
    verdict = [ln for ln in proc.stdout.splitlines() if ln.startswith(("Serve with", "NumPy wins", "Keras wins"))]
    return {"model": model, "rows": rows, "meta": meta, "verdict": verdict, "code": proc.returncode, "wall": wall}


def ratio(row: dict | None) -> str:
    if row is None or row.get("ratio_to_numpy") is None:
        return "—"
    return f"{row['ratio_to_numpy']:.3g}×"


def parity_mark(rows: list[dict], reasons: list[str]) -> str:
    if not rows:
        return f"left out: {reasons[0]}" if reasons else "not run"
    bad = [r for r in rows if not r["parity_ok"]]
    return f"✗ {bad[0]['parity_message'][:120]}" if bad else "✓"


def batch_of(row: dict) -> int:
    return int(dict(kv.split("=") for kv in row["sizes"].split())["batch"])


def ratio_table(results: list[dict], batches: list[int]) -> tuple[list[str], bool]:
    """The markdown table of parity and ratios; whether a runtime failed parity on a built-in model."""
    head = "| model | path | parity | " + " | ".join(f"×NumPy at batch {b}" for b in batches) + " |"
    lines, failed = [head, "|---|---|---|" + "---|" * len(batches)], False
    for res in results:
        if "error" in res:
            lines.append(f"| {res['model']} | — | run failed: {res['error'][:160]} |" + " |" * len(batches))
            continue
        rows = res["rows"]
        for path in RUNTIMES:
            mine = [r for r in rows if r["path"] == path]
            reasons = [u["reason"] for u in res["meta"].get("unavailable_paths", []) if u["path"] == path]
            mark = parity_mark(mine, reasons)
            failed |= mark.startswith("✗") and not res["model"].endswith(".keras")
            by_batch = {batch_of(r): r for r in mine}
            lines.append(f"| {res['model']} | {path} | {mark} | " + " | ".join(ratio(by_batch.get(b)) for b in batches)
                         + " |")  # fmt: skip
        keras = {}
        for r in rows:
            if r["path"] in KERAS and r.get("median_s") and r["parity_ok"]:
                b = batch_of(r)
                keras[b] = min(keras.get(b, r), r, key=lambda x: x["median_s"])
        cells = " | ".join(f"{ratio(keras.get(b))} ({keras[b]['path']})" if b in keras else "—" for b in batches)
        lines.append(f"| {res['model']} | best Keras path | | {cells} |")
    return lines, failed


def ms(v) -> str:
    """Seconds in the unit that reads best (s, ms, µs)."""
    if v is None:
        return "—"
    unit, scale = next(((u, k) for u, k in (("s", 1.0), ("ms", 1e-3)) if v >= k), ("µs", 1e-6))
    return f"{v / scale:.3g} {unit}"


def cold_table(results: list[dict], batch: int) -> list[str]:
    lines = [f"| model | runtime | build (Keras model) | export | load | first call | steady call (batch {batch}) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for res in results:
        for r in res.get("rows", []):
            if r["path"] in RUNTIMES and batch_of(r) == batch:
                lines.append(f"| {res['model']} | {r['path']} ({r['runtime']}) | {ms(r['build_s'])} | "
                             f"{ms(r['export_s'])} | {ms(r['load_s'])} | {ms(r['first_call_s'])} | "
                             f"{ms(r.get('median_s'))} |")  # fmt: skip
    return lines


def wall_times(work: Path) -> list[str]:
    """The default run's wall time without and with ``--runtime all``."""
    out = []
    for extra in ([], ["--runtime", "all"]):
        proc, wall = kbench(["run", "--model", "dense", *extra, "--no-report", "--out", str(work / "wall")], work)
        out.append(f"kbench run --model dense {' '.join(extra)}".strip() + f": {wall:.1f} s wall (exit {proc.returncode})")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="kbench's --quick cells")
    ap.add_argument("--smoke", action="store_true", help="batch 1, one process, 0.2 s cells: checks the script only")
    ap.add_argument("--wall", action="store_true", help="also time the default run with and without --runtime all")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated; cnn.keras is built here")
    ap.add_argument("--workdir", type=Path, default=None, help="where cnn.keras and the run folders go")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="kbench-runtimes-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if "cnn.keras" in models:
        subprocess.run([sys.executable, "-c", BUILD, str(work / "cnn.keras")], check=True, env=ENV, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    batches = [1] if args.smoke else [1, 32, 1024]
    timing = ["--quick", "--processes", "1", "--cell-budget", "0.2"] if args.smoke else ["--quick"] if args.quick else []
    print(f"$ kbench run --model M --runtime all --batch {','.join(map(str, batches))} {' '.join(timing)}".rstrip())
    results = []
    for model in models:
        results.append(run_model(model, ",".join(map(str, batches)), timing, work))
        print(f"  {model}: {results[-1]['wall']:.1f} s", flush=True)
    table, failed = ratio_table(results, batches)
    print("\n" + "\n".join(table) + "\n\n" + "\n".join(cold_table(results, batches[0])) + "\n")
    for res in results:
        for line in res.get("verdict", []):
            print(f"{res['model']}: {line}")
    if args.wall:
        print("\n" + "\n".join(wall_times(work)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
