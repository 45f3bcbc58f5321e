"""Does `kbench compare` catch a planted slowdown, and only a big enough one?

Runs `tests/worker_models/slowable.py` (a correct Dense layer whose NumPy forward does F times the matmul work when
``KBENCH_PLANTED_SLOWDOWN=F`` is set) three times: A without the variable, B with ``--factor`` (default 1.5), C with
``--small`` (default 1.05). Then checks, with ``kbench compare --fail-above 1.10``:

1. ``compare A B`` exits 1 and its failure line names the ``numpy`` path and the cell (its sizes);
2. ``compare A C`` exits 0: a 5% slowdown is under the 10% gate;
3. (a note, not a check) whether a Keras path was called slower: only the NumPy twin changed.

    python benchmarks/planted_slowdown.py
    python benchmarks/planted_slowdown.py -- --processes 2 --cell-budget 1

Everything after ``--`` is passed to ``kbench run`` (default: ``--path call --processes 5 --cell-budget 2``: five
processes, since one process slowed by a neighbour on a shared machine widens a 3-process CI a lot; the
model's one cell is batch=256 features=256 units=256). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "tests" / "worker_models"
CELL = "batch=256 features=256 units=256"


def run(args: list[str], out: Path, factor: float | None) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "KBENCH_PLANTED_SLOWDOWN"}
    if factor is not None:
        env["KBENCH_PLANTED_SLOWDOWN"] = str(factor)
    before = {p.parent for p in out.glob("*/run.json")}
    proc = subprocess.run([sys.executable, "-m", "kbench", "run", "--model", "slowable", "--models-dir", str(MODELS),
                           *args, "--out", str(out), "--no-report"], capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"kbench run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    (new,) = sorted({p.parent for p in out.glob("*/run.json")} - before)
    return new


def compare(a: Path, b: Path, html: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kbench", "compare", str(a), str(b), "--fail-above", "1.10",
                           "--html", str(html)], capture_output=True, text=True)  # fmt: skip
    print(f"$ kbench compare {a.name} {b.name} --fail-above 1.10  -> exit {proc.returncode}")
    print(proc.stdout.rstrip())
    print(proc.stderr.rstrip())
    return proc


def check(name: str, ok: bool) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return ok


def keras_slower(proc: subprocess.CompletedProcess) -> bool:
    return any(" slower" in line and not line.strip().startswith("numpy") for line in proc.stdout.splitlines()
               if line.strip().split(" ")[0] in ("predict", "predict_on_batch", "call", "compiled", "xla"))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=1.5, help="the planted slowdown that must be caught")
    parser.add_argument("--small", type=float, default=1.05, help="the planted slowdown that must pass the gate")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("run_args", nargs="*", help="after --: arguments of `kbench run`")
    args = parser.parse_args()
    run_args = args.run_args or ["--path", "call", "--processes", "5", "--cell-budget", "2"]
    out = args.out or Path(tempfile.mkdtemp(prefix="kbench-planted-"))
    out.mkdir(parents=True, exist_ok=True)
    a, b, c = run(run_args, out, None), run(run_args, out, args.factor), run(run_args, out, args.small)
    big, small = compare(a, b, out / "compare-big.html"), compare(a, c, out / "compare-small.html")
    failure_lines = [line for line in big.stderr.splitlines() if "slower than --fail-above" in line]
    results = [
        check(f"{args.factor}x: compare exits 1", big.returncode == 1),
        check(f"{args.factor}x: the failure names the numpy path and the cell {CELL}",
              any(line.split(": ")[2].startswith(f"numpy at slowable") and CELL in line for line in failure_lines)),
        check(f"{args.small}x: compare exits 0 under --fail-above 1.10", small.returncode == 0),
    ]  # fmt: skip
    if keras_slower(big) or keras_slower(small):  # noise, not the plant: reported, not a failed check
        print("note: a Keras path was called slower although only the NumPy twin changed (an A/A false positive)")
    print(f"runs and reports in {out}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
