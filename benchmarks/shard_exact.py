"""Is a sharded run, merged, exactly the unsharded run's cells with the shards' own rows? Runs a small sweep as N
shards (separate `kbench run --shard K/N` commands, one after the other, as N CI jobs would), merges them with
`kbench merge`, and checks the merged folder against the plan (`kbench.api.plan`, the sweep is never run unsharded):

    python benchmarks/shard_exact.py                 # dense x 5 batches + matmul x 4 sizes = 9 cells, 4 shards
    python benchmarks/shard_exact.py --shards 3 --keep /tmp/shards

Checks (exit status 1 when one fails): the shards' cells are disjoint and together the plan's, in its order;
the merged ``plan.cells`` are the plan's cells, in order; the merged rows cover every (backend, cell) of the plan;
every line of the merged ``results.json`` rows and ``samples.csv`` is a shard's line, byte for byte, each used
once; each cell's rows come from one shard.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SWEEP = {"models": ["dense", "matmul"], "sizes": {"batch": "1,2,4,8,16", "n": "8,16,32,64"}}
TINY = ["--quick", "--cell-budget", "0.2", "--processes", "1", "--no-report"]


def cli_args() -> list[str]:
    sizes = [a for k, v in SWEEP["sizes"].items() for a in (f"--{k}", v)]
    return ["--model", ",".join(SWEEP["models"]), *sizes, *TINY]


def kbench(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kbench", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"kbench {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc, time.perf_counter() - t


def lines(run_dir: Path) -> tuple[list[str], list[str]]:
    """results.json's row lines and samples.csv's data lines, as text."""
    rows = [ln.rstrip(",") for ln in (run_dir / "results.json").read_text().splitlines()[1:-1]]
    return rows, (run_dir / "samples.csv").read_text().splitlines()[1:]


def run_shards(root: Path, count: int) -> list[Path]:
    folders = []
    for k in range(1, count + 1):
        out = root / f"shard-{k}"
        proc, wall = kbench("run", *cli_args(), "--shard", f"{k}/{count}", "--out", str(out))
        (folder,) = out.iterdir()
        meta = json.loads((folder / "run.json").read_text())
        print(f"shard {k}/{count}: cells {meta['shard']['cells']} of {meta['shard']['plan_cells']}, "
              f"{len(lines(folder)[0])} rows, {len(lines(folder)[1])} samples, {wall:.1f} s wall")  # fmt: skip
        folders.append(folder)
    return folders


def checks(plan, folders: list[Path], merged: Path) -> dict[str, bool]:
    from kbench.orchestrate.shard import cell_json

    metas = [json.loads((f / "run.json").read_text()) for f in folders]
    merged_meta = json.loads((merged / "run.json").read_text())
    indices = sorted(i for m in metas for i in m["shard"]["cells"])
    shard_rows = Counter(x for f in folders for x in lines(f)[0])
    shard_samples = Counter(x for f in folders for x in lines(f)[1])
    rows, samples = lines(merged)
    parsed = [json.loads(r) for r in rows]
    want = [cell_json(c) for c in plan.cells]
    covered = {(r["backend"], r["model"], r["sizes"], r["dtype"]) for r in parsed}
    owners: dict[tuple, set] = {}
    for r in parsed:
        owners.setdefault((r["model"], r["sizes"]), set()).add(r["run_id"])
    return {
        "shards disjoint, together the plan's cells": indices == list(range(len(plan.cells))),
        "merged plan.cells == api.plan cells, in order": merged_meta["plan"]["cells"] == want,
        "every (backend, cell) of the plan has rows": covered == {(b, c["model"], c["sizes"], c["dtype"])
                                                                  for b in plan.backends for c in want},
        "merged rows == shard rows, byte for byte": Counter(rows) == shard_rows,
        "merged samples == shard samples, byte for byte": Counter(samples) == shard_samples,
        "each cell's rows from one shard": all(len(v) == 1 for v in owners.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4, help="N, the number of shards (default 4)")
    parser.add_argument("--keep", type=Path, help="keep the shard and merged folders here (default: a temp folder)")
    opts = parser.parse_args()
    from kbench import api

    plan = api.plan(SWEEP["models"], sizes=SWEEP["sizes"], quick=True, cell_budget=0.2, processes=1)
    print(f"plan: {len(plan.cells)} cells x {len(plan.paths)} paths x {len(plan.backends)} backend(s), "
          f"{opts.shards} shards: kbench run {' '.join(cli_args())} --shard K/{opts.shards}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="kbench-shards-") as tmp:
        root = opts.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        folders = run_shards(root, opts.shards)
        proc, wall = kbench("merge", *map(str, folders), "--out", str(root / "merged"), "--no-report")
        print(f"merge: {proc.stdout.splitlines()[0]} ({wall:.1f} s wall)")
        results = checks(plan, folders, root / "merged")
    for name, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
