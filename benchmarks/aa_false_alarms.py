"""How often does `kbench compare` cry wolf? Runs N A/A pairs (the same plan twice, back to back, as separate
`kbench run` commands), compares each pair with `kbench compare A B --fail-above 1.10`, and prints

- the **false-alarm rate**: the share of pairs whose compare exited 1 (nothing changed, so every exit 1 is false),
  with its 95% Clopper-Pearson interval;
- the **per-row false-significance rate**: the share of matched rows called `slower` or `faster` (the test's own
  level is 5%), also with its interval, and per path.

    python benchmarks/aa_false_alarms.py                                  # 10 pairs of `kbench run --model dense`
    python benchmarks/aa_false_alarms.py --pairs 1 -- --model dense --batch 32 --processes 2 --cell-budget 1

Everything after ``--`` is passed to ``kbench run`` (default: ``--model dense``). Runs go to a fresh temporary
folder (``--out DIR`` to keep them). Run it on a quiet machine: 10 default pairs take ~20 minutes on 2 cores.
Exit status 0 always (``--max-false-alarms R`` to exit 1 when the false-alarm rate is above R).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy import stats as sps


def run_once(args: list[str], out: Path) -> Path:
    before = {p.parent for p in out.glob("*/run.json")}
    proc = subprocess.run([sys.executable, "-m", "kbench", "run", *args, "--out", str(out), "--no-report"],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"kbench run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    new = sorted({p.parent for p in out.glob("*/run.json")} - before)
    if len(new) != 1:
        sys.exit(f"expected one new run folder under {out}, found {len(new)}")
    return new[0]


def compare_pair(a: Path, b: Path, fail_above: str) -> tuple[int, list]:
    """(compare's exit code, the rows of the comparison) for one pair."""
    from kbench.analysis import compare as cmp
    from kbench.analysis.gate import parse_factors
    from kbench.store.results import load_run

    proc = subprocess.run([sys.executable, "-m", "kbench", "compare", str(a), str(b), "--fail-above", fail_above,
                           "--no-html"], capture_output=True, text=True)  # fmt: skip
    if proc.returncode not in (0, 1):
        sys.exit(f"kbench compare failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    c = cmp.compare_runs(load_run(a), load_run(b), parse_factors([fail_above]))
    return proc.returncode, list(c.rows)


def rate(k: int, n: int) -> str:
    if n == 0:
        return "—"
    ci = sps.binomtest(k, n).proportion_ci(0.95)
    return f"{k}/{n} = {k / n:.1%} (95% CI {ci.low:.1%}–{ci.high:.1%})"


def report(codes: list[int], rows: list) -> None:
    significant = [r for r in rows if r.change.significant]
    print(f"false-alarm rate (pairs where compare exited 1): {rate(sum(c == 1 for c in codes), len(codes))}")
    print(f"per-row false significance (slower or faster):   {rate(len(significant), len(rows))}")
    for path in dict.fromkeys(r.key.path for r in rows):
        mine = [r for r in rows if r.key.path == path]
        print(f"  {path:<18} {rate(sum(r.change.significant for r in mine), len(mine))}")
    worst = max(rows, key=lambda r: abs(r.change.ratio - 1), default=None)
    if worst is not None:
        from kbench.analysis.compare import fmt_change, fmt_p, where

        print(f"largest A/A change: {where(worst.key)}: {fmt_change(worst.change)}, p={fmt_p(worst.change.p_value)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10, help="A/A pairs to run (default 10)")
    parser.add_argument("--fail-above", default="1.10", help="the compare gate's factor (default 1.10)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--max-false-alarms", type=float, default=None, help="exit 1 above this false-alarm rate")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="compare pairs already run into this folder (runs 1 and 2, 3 and 4, ... by start time)")
    parser.add_argument("run_args", nargs="*", help="after --: arguments of `kbench run` (default --model dense)")
    args = parser.parse_args()
    run_args = args.run_args or ["--model", "dense"]
    out = args.out or Path(tempfile.mkdtemp(prefix="kbench-aa-"))
    out.mkdir(parents=True, exist_ok=True)
    codes, rows = [], []
    done = sorted(p.parent for p in args.source.glob("*/run.json")) if args.source else []
    pairs = len(done) // 2 if args.source else args.pairs
    for i in range(pairs):
        t = time.perf_counter()
        a, b = (done[2 * i], done[2 * i + 1]) if args.source else (run_once(run_args, out), run_once(run_args, out))
        code, pair_rows = compare_pair(a, b, args.fail_above)
        codes.append(code)
        rows += pair_rows
        sig = sum(r.change.significant for r in pair_rows)
        print(f"pair {i + 1}/{pairs}: {a.name} vs {b.name}: exit {code}, {sig}/{len(pair_rows)} rows "
              f"significant ({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
    print(f"runs in {out}; kbench run {' '.join(run_args)}; compare --fail-above {args.fail_above}")
    report(codes, rows)
    too_many = args.max_false_alarms is not None and sum(c == 1 for c in codes) / max(len(codes), 1) > args.max_false_alarms
    return 1 if too_many else 0


if __name__ == "__main__":
    sys.exit(main())
