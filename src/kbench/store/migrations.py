"""The migrations of the results schema: data written by an older version brought up to
:data:`kbench.store.schema.SCHEMA_VERSION` in memory, through a chain of small functions, one per version step (as
asv does): ``v1 -> v2`` up to ``v4 -> v5``. Each step's docstring is its entry in the README
(:mod:`kbench.store.schemadoc`). The columns of older versions are frozen here, as they were written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from kbench.core.errors import SchemaError
from kbench.store.schema import SAMPLE_COLUMNS, SCHEMA_VERSION, coerce_row, is_missing, ordered

# version 1's results.csv columns, frozen as they were (v1 files are read with these)
V1_COLUMNS = (
    "schema_version", "run_id", "model", "backend", "path", "sizes", "dtype", "options", "flops",
    "device", "placement", "precision",
    "parity_ok", "parity_tol", "parity_max_abs_err", "parity_max_rel_err", "parity_twin_max_abs_err", "parity_message",
    "median_s", "q1_s", "q3_s", "iqr_s", "min_s", "max_s", "mean_s", "stdev_s", "ci_low_s", "ci_high_s",
    "n_samples", "loops", "stop_reason", "loop_overhead_pct",
    "ratio_to_numpy", "ratio_ci_low", "ratio_ci_high",
    "bytes", "gflops", "gbps", "pct_peak_flops", "pct_peak_bw",
    "import_s", "build_s", "first_call_s", "retrace_s", "retrace_batch", "cold_order",
    "flags", "warnings",
)  # fmt: skip
V1_SAMPLE_COLUMNS = ("run_id", "model", "backend", "path", "sizes", "dtype", "sample", "loops", "seconds")


@dataclass(frozen=True)
class RawRun:
    """A run folder's content as read, before or after migration: run.json, result rows, samples."""

    version: int
    meta: dict
    rows: tuple[dict, ...]
    samples: pd.DataFrame


def single_process_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 process columns of a row measured by one worker process: ``n_processes`` 1 and one-element lists."""
    med, ratio = row.get("median_s"), row.get("ratio_to_numpy")
    return {"n_processes": 1,
            "process_medians_s": [] if is_missing(med) else [float(med)],
            "ratio_process": [] if is_missing(ratio) else [float(ratio)]}  # fmt: skip


def v1_to_v2(raw: RawRun) -> RawRun:
    """v1 → v2: `flags` split on `;` and `warnings` on ` | ` into lists, `options` parsed from JSON text;
    `n_processes` 1, `process_medians_s` [`median_s`] and `ratio_process` [`ratio_to_numpy`] (v1 ran one worker
    process per backend); `peak_engine` `numpy` where `pct_peak_flops` is set (v1's peak was NumPy's BLAS); the other
    new columns empty; samples get `process` 0 and an empty `threads`."""
    rows = []
    for r in raw.rows:
        row = {**r, "schema_version": 2, **single_process_fields(r)}
        row["peak_engine"] = None if is_missing(r.get("pct_peak_flops")) else "numpy"
        rows.append(coerce_row(row, strict=False))
    samples = raw.samples.assign(process=0, threads=None)
    return RawRun(2, {**raw.meta, "schema_version": 2}, tuple(rows), samples[ordered(samples.columns, SAMPLE_COLUMNS)])


def compute_fields(floor: Any, dispatch: Any) -> dict[str, Any]:
    """``compute_s`` and ``compute_from`` from a row's floor and dispatch medians (both may be missing)."""
    if is_missing(floor):
        return {"compute_s": None, "compute_from": None}
    if is_missing(dispatch):
        return {"compute_s": float(floor), "compute_from": "floor"}
    return {"compute_s": float(floor) - float(dispatch), "compute_from": "floor-dispatch"}


def v2_to_v3(raw: RawRun) -> RawRun:
    """v2 → v3: `kernel_s` renamed `floor_s` and `kernel_floor` `floor_name` (the floor is compute and dispatch
    together, not the kernel alone); `compute_s` is `floor_s` minus `dispatch_s` (`compute_from`
    `floor-dispatch`), or `floor_s` where no dispatch was timed (`floor`); `blas_threads` empty. v2's `xla` rows
    subtracted nothing for dispatch: their `compute_s` uses the plain `tf.function` identity's `dispatch_s`, which
    v2 stored, and may read below zero."""
    rows = []
    for r in raw.rows:
        row = {k: v for k, v in r.items() if k not in ("kernel_s", "kernel_floor")}
        row.update(schema_version=3, floor_s=r.get("kernel_s"), floor_name=r.get("kernel_floor"),
                   **compute_fields(r.get("kernel_s"), r.get("dispatch_s")))
        rows.append(coerce_row(row, strict=False))
    return RawRun(3, {**raw.meta, "schema_version": 3}, tuple(rows), raw.samples)


def v3_to_v4(raw: RawRun) -> RawRun:
    """v3 → v4: the serving runtimes' columns `runtime`, `exporter`, `runtime_options`, `export_s` and `load_s`,
    empty (v3 timed no runtime); run.json's `unavailable_paths` empty."""
    rows = tuple(coerce_row({**r, "schema_version": 4}, strict=False) for r in raw.rows)
    meta = {**raw.meta, "schema_version": 4, "unavailable_paths": raw.meta.get("unavailable_paths", [])}
    return RawRun(4, meta, rows, raw.samples)


def v4_to_v5(raw: RawRun) -> RawRun:
    """v4 → v5: `others_cpu` empty (v4 did not read what other processes took of the CPUs, so no v4 row is
    flagged `contended`)."""
    rows = tuple(coerce_row({**r, "schema_version": 5}, strict=False) for r in raw.rows)
    return RawRun(5, {**raw.meta, "schema_version": 5}, rows, raw.samples)


# version k to k + 1
MIGRATIONS: dict[int, Callable[[RawRun], RawRun]] = {1: v1_to_v2, 2: v2_to_v3, 3: v3_to_v4, 4: v4_to_v5}


def migrate(raw: RawRun) -> RawRun:
    """Apply the chain of migrations from ``raw.version`` up to :data:`SCHEMA_VERSION`."""
    while raw.version < SCHEMA_VERSION:
        step = MIGRATIONS.get(raw.version)
        if step is None:
            raise SchemaError(f"no migration from results schema version {raw.version}; rerun the benchmark")
        out = step(raw)
        if out.version != raw.version + 1:
            raise RuntimeError(f"migration {step.__name__} returned version {out.version}, not {raw.version + 1}")
        raw = out
    return raw
