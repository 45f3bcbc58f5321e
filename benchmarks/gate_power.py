"""The power of the `kbench compare` gate: does it flag a planted 1.25× slowdown, and stay quiet when nothing changed?

Runs N back-to-back A/A pairs of `kbench run --model dense` (plus the arguments after ``--``, e.g. ``--rigorous``;
``--model dense`` is added unless they name a model) and, for each pair A, B:

1. ``kbench compare A B --fail-above 1.10``: nothing changed, so an exit 1 is a **false alarm**;
2. per planted target (``--plant PATH:SIZE=V``, default ``compiled:batch=32`` and ``numpy:batch=32``): a copy B' of
   B in which that row's samples, and its stored median, quartiles, CI, repeat interval, process medians, rates and
   ratios to NumPy, are multiplied by ``--factor`` (default 1.25; planting on ``numpy`` divides the other paths'
   ratios to NumPy in that cell instead), then ``kbench compare A B' --fail-above 1.10``: **flagged** when it exits 1
   and a failure line names the planted path at the planted cell.

Planting on real A/A noise measures exactly the gate's statistical power for that effect size: B' is B, noise and
all, with one row shifted by exactly the factor, so a flag or a miss is decided by the two runs' own noise and the
gate's rule alone (Holm over every row, a 95% CI that excludes 1, a ratio above 1.10). It leaves out what a real
slowdown might add to that, such as more noise in the slowed row.

It prints one line per pair and then: the false alarms with a 95% Clopper-Pearson interval, and per target how many
pairs flagged it (with the same interval) and each pair's ratio of the planted row with its 95% CI (from
:func:`kbench.analysis.compare.compare_runs`, the numbers the gate judged).

    python benchmarks/gate_power.py                                        # 5 pairs of the default run
    python benchmarks/gate_power.py --out runs/rigorous -- --rigorous      # 5 pairs with --rigorous, kept
    python benchmarks/gate_power.py --from runs/rigorous                   # the kept pairs again, no new runs
    python benchmarks/gate_power.py --pairs 1 -- --batch 32 --processes 2 --cell-budget 0.5    # a smoke test

Issue 22's criteria: under ``--rigorous`` each target flagged in >= 4 of 5 pairs and no false alarm in 5 pairs
(``--check`` exits 1 otherwise), and the default run's power for the same slowdowns (the first command). How long:
two runs per pair; a default dense run takes about a minute on 2 cores (10 A/A pairs took ~20 minutes), so 5 pairs
~10 minutes, ``--rigorous`` as much longer as its runs are; each compare adds a few seconds. Run it unattended on a
quiet machine. To spread the pairs over sessions, give every session the same ``--out DIR`` and read them all with
``--from DIR`` at the end: complete runs are paired in start order (1-2, 3-4, ...) and an interrupted or failed run
is skipped, so delete its partner too. Exit status 0 (``--check``: 1 when a criterion fails).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from scipy import stats as sps

TIME_COLUMNS = ("median_s", "q1_s", "q3_s", "iqr_s", "min_s", "max_s", "mean_s", "stdev_s", "ci_low_s", "ci_high_s",
                "repeat_low_s", "repeat_high_s", "process_medians_s")  # fmt: skip
RATE_COLUMNS = ("gflops", "gbps", "pct_peak_flops", "pct_peak_bw")
RATIO_COLUMNS = ("ratio_to_numpy", "ratio_ci_low", "ratio_ci_high", "ratio_process")
CELL = ("model", "backend", "sizes", "dtype", "options", "threads")
COLUMN_KEYS = ("model", "backend", "dtype", "threads")  # a target's NAME=V that is a column, not a size
DEFAULT_TARGETS = ("compiled:batch=32", "numpy:batch=32")


class PlantError(ValueError):
    """A target that names no row (or no sample) of the run."""


# -- planting --------------------------------------------------------------------------------------------------------


def _text(key: str, v: Any) -> str:
    """A key column's value as text, the same whether it came from results.json, a CSV or a RowKey."""
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return ""
    if key == "threads":
        return str(int(float(v)))
    return json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)


@dataclass(frozen=True)
class Target:
    """The rows a slowdown is planted on: ``path``, and each (name, value) a size of the cell (``batch=32``) or one
    of the columns model, backend, dtype, threads."""

    path: str
    where: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return self.path + (":" + ",".join(f"{k}={v}" for k, v in self.where) if self.where else "")

    def matches(self, row: Mapping[str, Any]) -> bool:
        if _text("path", row.get("path")) != self.path:
            return False
        sizes = _text("sizes", row.get("sizes")).split()
        return all(_text(k, row.get(k)) == v if k in COLUMN_KEYS else f"{k}={v}" in sizes for k, v in self.where)

    def named_in(self, where_label: str) -> bool:
        """Whether a gate failure's "PATH at MODEL (BACKEND) SIZES ... DTYPE" names this target."""
        tokens = where_label.split()
        return where_label.startswith(f"{self.path} at ") and all(
            (v in tokens or f"({v})" in tokens) if k in COLUMN_KEYS else f"{k}={v}" in tokens for k, v in self.where)


def parse_target(text: str) -> Target:
    """``"compiled:batch=32"`` or ``"numpy:batch=32,dtype=float32"`` -> :class:`Target`."""
    path, _, rest = text.partition(":")
    pairs = [p.split("=", 1) for p in rest.split(",") if p.strip()]
    if not path.strip() or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise PlantError(f"--plant {text!r}: expected PATH or PATH:NAME=VALUE[,NAME=VALUE...], e.g. compiled:batch=32")
    return Target(path.strip(), tuple((k.strip(), v.strip()) for k, v in pairs))


def _scale(v: Any, f: float) -> Any:
    """A number, a list of numbers, or their CSV text (``;``-joined), times ``f``; missing stays missing."""
    if v is None or v == "" or isinstance(v, bool):
        return v
    if isinstance(v, list):
        return [_scale(x, f) for x in v]
    if isinstance(v, str):
        return ";".join(repr(float(x) * f) if x.strip() else x for x in v.split(";"))
    return float(v) * f


def _cell(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(_text(k, row.get(k)) for k in CELL)


def _ratio_factor(row: Mapping[str, Any], planted: bool, target: Target, factor: float, cells: set) -> float:
    """What a row's ratios to NumPy are multiplied by: the factor for a planted Keras row, its inverse for the other
    paths in a cell whose NumPy row was planted."""
    if target.path != "numpy":
        return factor if planted else 1.0
    return 1 / factor if not planted and row.get("path") != "numpy" and _cell(row) in cells else 1.0


def plant_rows(rows: list[dict], target: Target, factor: float) -> tuple[list[dict], int]:
    """(the rows with ``target``'s slowed by ``factor``, how many): its times times ``factor``, its rates over it, its
    ratios to NumPy times it; for a NumPy target the other paths' ratios in the same cell are divided instead."""
    planted = [target.matches(r) for r in rows]
    cells = {_cell(r) for r, p in zip(rows, planted) if p}
    out = []
    for r, p in zip(rows, planted):
        r = dict(r)
        if p:
            r.update({c: _scale(r[c], factor) for c in TIME_COLUMNS if c in r})
            r.update({c: _scale(r[c], 1 / factor) for c in RATE_COLUMNS if c in r})
        ratio = _ratio_factor(r, p, target, factor, cells)
        if ratio != 1:
            r.update({c: _scale(r[c], ratio) for c in RATIO_COLUMNS if c in r})
        out.append(r)
    return out, sum(planted)


def _rewrite_csv(path: Path, change) -> int:
    """``change(rows) -> (rows, n)`` applied to a CSV's rows, written back quoted (kbench reads its numbers back
    exactly); returns ``n``."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), list(reader.fieldnames or [])
    rows, n = change(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return n


def _plant_samples(rows: list[dict], target: Target, factor: float) -> tuple[list[dict], int]:
    out = [{**r, "seconds": _scale(r["seconds"], factor)} if target.matches(r) else r for r in rows]
    return out, sum(map(target.matches, rows))


def plant(src: Path, dest: Path, target: Target, factor: float) -> int:
    """Copy the run folder ``src`` to ``dest`` (which must not exist) with ``target``'s rows and samples slowed by
    ``factor``; returns the number of rows planted. :class:`PlantError` when the target has no row or no sample."""
    shutil.copytree(src, dest)
    n_rows = 0
    if (dest / "results.json").is_file():
        doc = json.loads((dest / "results.json").read_text(encoding="utf-8"))
        doc["rows"], n_rows = plant_rows(doc["rows"], target, factor)
        body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in doc["rows"])
        text = f'{{"schema_version": {json.dumps(doc["schema_version"])}, "rows": [\n{body}\n]}}\n'
        (dest / "results.json").write_text(text, encoding="utf-8")
    if (dest / "results.csv").is_file():  # the source of truth in schema v1, a flat export since
        n_csv = _rewrite_csv(dest / "results.csv", lambda rows: plant_rows(rows, target, factor))
        n_rows = n_rows or n_csv
    n_samples = _rewrite_csv(dest / "samples.csv", lambda rows: _plant_samples(rows, target, factor)) \
        if (dest / "samples.csv").is_file() else 0  # fmt: skip
    if not n_rows or not n_samples:
        raise PlantError(f"{target.label} matches {n_rows} rows and {n_samples} samples of {src.name}: "
                         "nothing to plant")
    return n_rows


# -- running and comparing -------------------------------------------------------------------------------------------


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


def complete_runs(folder: Path) -> list[Path]:
    """The complete run folders under ``folder``, in start order (their ids begin with the start time)."""
    done = []
    for meta in sorted(folder.glob("*/run.json")):
        try:
            status = json.loads(meta.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError):
            status = None
        if status == "complete":
            done.append(meta.parent)
    return done


def gate(a: Path, b: Path, fail_above: str) -> tuple[int, list[str]]:
    """``kbench compare A B --fail-above F`` as a user runs it: (exit code, the failure lines' "where" parts)."""
    proc = subprocess.run([sys.executable, "-m", "kbench", "compare", str(a), str(b), "--fail-above", fail_above,
                           "--no-html"], capture_output=True, text=True)  # fmt: skip
    if proc.returncode not in (0, 1):
        sys.exit(f"kbench compare failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    lines = [line.split(": ") for line in proc.stderr.splitlines() if "slower than --fail-above" in line]
    return proc.returncode, [parts[2] for parts in lines if len(parts) > 2]


def planted_changes(a: Path, b: Path, target: Target, fail_above: str) -> list[str]:
    """The planted rows as the gate judged them: ``"1.27× [1.18–1.36], p=0.002"`` each."""
    from kbench.analysis import compare as cmp
    from kbench.analysis.gate import parse_factors
    from kbench.store.results import load_run

    c = cmp.compare_runs(load_run(a), load_run(b), parse_factors([fail_above]))
    return [f"{cmp.fmt_change(r.change)}, p={cmp.fmt_p(r.change.p_adjusted)}" for r in c.rows
            if target.matches(asdict(r.key))]  # fmt: skip


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    false_alarm: bool
    flagged: tuple[bool, ...]  # per target
    changes: tuple[str, ...]  # per target: the planted row(s) as judged


def one_pair(a: Path, b: Path, targets: list[Target], factor: float, fail_above: str, scratch: Path) -> PairResult:
    code, _ = gate(a, b, fail_above)
    flagged, changes = [], []
    for i, t in enumerate(targets):
        dest = scratch / f"{b.name}-{i}" / b.name
        plant(b, dest, t, factor)
        code_p, where = gate(a, dest, fail_above)
        flagged.append(code_p == 1 and any(t.named_in(w) for w in where))
        changes.append("; ".join(planted_changes(a, dest, t, fail_above)))
        shutil.rmtree(dest.parent)
    return PairResult(a.name, b.name, code == 1, tuple(flagged), tuple(changes))


# -- the report ------------------------------------------------------------------------------------------------------


def rate(k: int, n: int) -> str:
    if n == 0:
        return "—"
    ci = sps.binomtest(k, n).proportion_ci(0.95)
    return f"{k}/{n} = {k / n:.0%} (95% CI {ci.low:.0%}–{ci.high:.0%})"


def report(results: list[PairResult], targets: list[Target], factor: float) -> list[str]:
    n = len(results)
    lines = [f"false alarms (A/A pairs whose compare exited 1): {rate(sum(r.false_alarm for r in results), n)}",
             f"planted ×{factor:g}: flagged (exit 1 naming the path and cell) in"]  # fmt: skip
    width = max(len(t.label) for t in targets)
    for i, t in enumerate(targets):
        lines.append(f"  {t.label:<{width}}  {rate(sum(r.flagged[i] for r in results), n)}")
        lines += [f"  {'':<{width}}    pair {j + 1}: {'flagged' if r.flagged[i] else 'missed '} {r.changes[i]}"
                  for j, r in enumerate(results)]  # fmt: skip
    return lines


def passes(results: list[PairResult], targets: list[Target]) -> bool:
    """Issue 22's criterion: every target flagged in >= 80% of the pairs (4 of 5), no false alarm."""
    n = len(results)
    return n > 0 and not any(r.false_alarm for r in results) and \
        all(sum(r.flagged[i] for r in results) >= 0.8 * n for i in range(len(targets)))  # fmt: skip


def _pairs(args: argparse.Namespace, run_args: list[str], out: Path) -> Iterable[tuple[Path, Path]]:
    if args.source:
        done = complete_runs(args.source)
        yield from zip(done[0::2], done[1::2])
        return
    for _ in range(args.pairs):
        yield run_once(run_args, out), run_once(run_args, out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=5, help="A/A pairs to run (default 5)")
    p.add_argument("--plant", action="append", default=None, metavar="PATH:SIZE=V",
                   help=f"a row to slow down, repeatable (default {' and '.join(DEFAULT_TARGETS)})")
    p.add_argument("--factor", type=float, default=1.25, help="the planted slowdown (default 1.25)")
    p.add_argument("--fail-above", default="1.10", help="the compare gate's factor (default 1.10)")
    p.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--from", dest="source", type=Path, default=None,
                   help="use the complete runs already in this folder (1 and 2, 3 and 4, ... in start order)")
    p.add_argument("--check", action="store_true", help="exit 1 unless every target is flagged in >= 80%% of the "
                   "pairs and no pair false-alarms")
    p.add_argument("run_args", nargs="*", help="after --: arguments of `kbench run` (--model dense is added)")
    return p


def main() -> int:
    args = _parser().parse_args()
    try:
        targets = [parse_target(t) for t in (args.plant or DEFAULT_TARGETS)]
    except PlantError as exc:
        sys.exit(str(exc))
    named = any(a in ("-m", "--model") or a.startswith("--model=") for a in args.run_args)
    run_args = args.run_args if named else ["--model", "dense", *args.run_args]
    if args.source and not args.source.is_dir():
        sys.exit(f"--from {args.source}: no such folder")
    out = args.source or args.out or Path(tempfile.mkdtemp(prefix="kbench-gate-power-"))
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="kbench-planted-"))
    results: list[PairResult] = []
    try:
        for i, (a, b) in enumerate(_pairs(args, run_args, out)):
            t = time.perf_counter()
            r = one_pair(a, b, targets, args.factor, args.fail_above, scratch)
            results.append(r)
            flags = ", ".join(f"{tg.label} {'flagged' if f else 'missed'}" for tg, f in zip(targets, r.flagged))
            print(f"pair {i + 1}: {a.name} vs {b.name}: A/A {'FALSE ALARM' if r.false_alarm else 'passed'}; {flags} "
                  f"({time.perf_counter() - t:.0f} s to compare)", flush=True)  # fmt: skip
    except PlantError as exc:
        sys.exit(str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    command = json.loads((out / results[0].a / "run.json").read_text(encoding="utf-8")).get("command") \
        if results else "kbench run " + " ".join(run_args)  # fmt: skip
    print(f"runs in {out}: {command}; compare --fail-above {args.fail_above}")
    print("\n".join(report(results, targets, args.factor)) if results else "no complete pair of runs")
    return 1 if args.check and not passes(results, targets) else 0


if __name__ == "__main__":
    sys.exit(main())
