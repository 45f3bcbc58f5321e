"""Results: one tidy row per (model, backend, path, sizes, dtype), raw samples beside them, written as the run goes.

A run folder ``reports/<run-id>/`` holds

- ``run.json``     schema version, run id, the command that reproduces the run, the plan, the environment
                   fingerprint, import and runtime-init times, status (``running`` / ``complete`` / ``failed``);
- ``results.csv``  :data:`COLUMNS` plus one ``size_<name>`` column per size;
- ``samples.csv``  every per-call sample (seconds) of every path, with its loop count;
- ``worker.log``   the worker's stderr (TensorFlow's own messages land here).

Every file is rewritten whole through a temporary file and an atomic rename each time a cell finishes, so a
reader never sees half a file and a crash keeps every finished cell.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from kbench.errors import RunNotFoundError, SchemaError
from kbench.paths import BASELINE, PATHS
from kbench.plan import Cell
from kbench.timer import Measurement

SCHEMA_VERSION = 1

COLUMNS = [
    "schema_version", "run_id", "model", "backend", "path", "sizes", "dtype", "options", "flops",
    "device", "placement", "precision",
    "parity_ok", "parity_tol", "parity_max_abs_err", "parity_max_rel_err", "parity_twin_max_abs_err", "parity_message",
    "median_s", "q1_s", "q3_s", "iqr_s", "min_s", "max_s", "mean_s", "stdev_s", "ci_low_s", "ci_high_s",
    "n_samples", "loops", "stop_reason", "loop_overhead_pct",
    "ratio_to_numpy", "ratio_ci_low", "ratio_ci_high",
    "bytes", "gflops", "gbps", "pct_peak_flops", "pct_peak_bw",
    "import_s", "build_s", "first_call_s", "retrace_s", "retrace_batch", "cold_order",
    "flags", "warnings",
]  # fmt: skip
SAMPLE_COLUMNS = ["run_id", "model", "backend", "path", "sizes", "dtype", "sample", "loops", "seconds"]


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def cell_rows(
    run_id: str, backend: str, cell: Cell, flops: int, payload: dict, imports: dict[str, float],
    nbytes: int | None = None, peak: Any = None,
) -> tuple[list[dict], list[dict]]:
    """Turn one worker ``cell`` event into result rows and sample rows (statistics computed here, once).

    Achieved rates use the median: GFLOP/s = flops / median; GB/s = the bytes of inputs, weights and output (each
    touched once, the least any path must move) / median; % of peak against :mod:`kbench.peak`'s figures."""
    rows, samples = [], []
    measured = {r["path"]: Measurement(tuple(r["samples"]), r["loops"], r["stop_reason"], r["loop_overhead_s"],
                                       r["fixed_overhead_s"])
                for r in payload["rows"] if "samples" in r}  # fmt: skip
    base = measured.get(BASELINE)
    order = list(PATHS)
    for r in sorted(payload["rows"], key=lambda r: order.index(r["path"]) if r["path"] in order else len(order)):
        m = measured.get(r["path"])
        row: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "run_id": run_id, "model": cell.model, "backend": backend,
            "path": r["path"], "sizes": cell.label, "dtype": cell.dtype,
            "options": json.dumps(cell.options_dict, sort_keys=True), "flops": flops,
            **{f"size_{k}": v for k, v in cell.sizes},
            **{k: r.get(k) for k in ("parity_ok", "parity_tol", "parity_max_abs_err", "parity_max_rel_err",
                                     "parity_twin_max_abs_err", "parity_message")},
            "import_s": imports["numpy" if r["path"] == BASELINE else "backend"],
            "build_s": _num(r.get("build_s")), "first_call_s": r["first_call_s"],
            "retrace_s": _num(r.get("retrace_s")), "retrace_batch": r.get("retrace_batch"),
            "cold_order": r["order"],
            "device": r.get("device", "cpu"), "placement": r.get("placement", "host"),
            "precision": r.get("precision", "float32"),
        }  # fmt: skip
        flags, warnings = [], []
        if not r["parity_ok"]:
            flags.append("parity_fail")
            warnings.append(f"parity failed: {r['parity_message']}")
        if m is not None:
            row.update(
                median_s=m.median, q1_s=m.q1, q3_s=m.q3, iqr_s=m.iqr, min_s=m.min, max_s=m.max, mean_s=m.mean,
                stdev_s=m.stdev, ci_low_s=m.ci[0], ci_high_s=m.ci[1], n_samples=m.n, loops=m.loops,
                stop_reason=m.stop_reason, loop_overhead_pct=m.loop_overhead_pct,
            )
            if base is not None:
                row.update(
                    ratio_to_numpy=m.median / base.median,
                    ratio_ci_low=m.ci[0] / base.ci[1],
                    ratio_ci_high=m.ci[1] / base.ci[0],
                )
            if nbytes is not None and m.median > 0:
                row.update(bytes=nbytes, gflops=flops / m.median / 1e9, gbps=nbytes / m.median / 1e9)
                if peak is not None:
                    row.update(pct_peak_flops=100 * row["gflops"] / peak.gflops(cell.dtype),
                               pct_peak_bw=100 * row["gbps"] / peak.copy_gbps)  # fmt: skip
            if m.unstable:
                flags.append("unstable")
            if m.stop_reason == "budget":
                flags.append("ci_not_reached")
            warnings += m.warnings()
            for i, s in enumerate(m.samples):
                samples.append({"run_id": run_id, "model": cell.model, "backend": backend, "path": r["path"],
                                "sizes": cell.label, "dtype": cell.dtype, "sample": i, "loops": m.loops,
                                "seconds": s})  # fmt: skip
        row["flags"] = ";".join(flags)
        row["warnings"] = " | ".join(warnings)
        rows.append(row)
    return rows, samples


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    sizes = sorted(c for c in df.columns if c.startswith("size_"))
    return df[COLUMNS[:8] + sizes + COLUMNS[8:]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it into place (readable like any new file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunWriter:
    """Owns one run folder. Created lazily by the caller, so a run that fails validation writes nothing."""

    def __init__(self, run_dir: Path, meta: dict) -> None:
        self.run_dir = run_dir
        self.meta = {"schema_version": SCHEMA_VERSION, "status": "running", **meta}
        self.rows: list[dict] = []
        self.samples: list[dict] = []
        run_dir.mkdir(parents=True, exist_ok=False)
        self._write_meta()

    def _write_meta(self) -> None:
        atomic_write(self.run_dir / "run.json", json.dumps(self.meta, indent=2, default=str) + "\n")

    def update_meta(self, **fields: Any) -> None:
        self.meta.update(fields)
        self._write_meta()

    def add(self, rows: list[dict], samples: list[dict]) -> None:
        self.rows += rows
        self.samples += samples
        atomic_write(self.run_dir / "results.csv", frame(self.rows).to_csv(index=False))
        atomic_write(self.run_dir / "samples.csv", pd.DataFrame(self.samples, columns=SAMPLE_COLUMNS).to_csv(index=False))

    def finish(self, status: str, **fields: Any) -> None:
        self.update_meta(status=status, **fields)


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    meta: dict
    results: pd.DataFrame
    samples: pd.DataFrame


def resolve_run(ref: str | Path, reports_dir: str | Path = "reports") -> Path:
    """A run folder, a run id under ``reports_dir``, or ``latest``."""
    reports = Path(reports_dir)
    if str(ref) == "latest":
        runs = sorted((p for p in reports.glob("*/run.json")), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise RunNotFoundError(f"no runs under {reports}/; run `kbench run --model dense` first")
        return runs[-1].parent
    for cand in (Path(ref), reports / str(ref)):
        if (cand / "run.json").is_file():
            return cand
    if Path(ref).is_dir() or (reports / str(ref)).is_dir():
        raise RunNotFoundError(f"{ref} is not a kbench run (no run.json); pass a folder written by `kbench run`")
    raise RunNotFoundError(f"no run {str(ref)!r} (looked for {ref} and {reports / str(ref)}); see `ls {reports}`")


def load_run(ref: str | Path, reports_dir: str | Path = "reports") -> RunData:
    run_dir = resolve_run(ref, reports_dir)
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunNotFoundError(f"{run_dir}/run.json cannot be read ({exc}); the run folder is damaged") from None
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{run_dir} has results schema version {version!r}, this kbench reads version {SCHEMA_VERSION}; "
            "use the kbench version that wrote it or rerun the benchmark"
        )
    results_csv, samples_csv = run_dir / "results.csv", run_dir / "samples.csv"
    results = pd.read_csv(results_csv) if results_csv.is_file() else frame([])
    missing = [c for c in COLUMNS if c not in results.columns]
    if missing:
        raise SchemaError(f"{results_csv} lacks the columns {', '.join(missing[:4])}{'…' if len(missing) > 4 else ''}; "
                          "the run folder is damaged, rerun the benchmark")  # fmt: skip
    samples = pd.read_csv(samples_csv) if samples_csv.is_file() else pd.DataFrame(columns=SAMPLE_COLUMNS)
    return RunData(run_dir, meta, results, samples)
