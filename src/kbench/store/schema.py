"""The results schema: one table that declares every column of a run's files, and how a value is checked against it.

- :data:`RESULT_COLUMNS`: the rows of ``results.json`` (and its flat export ``results.csv``), in order. The family
  ``size_<name>`` (one column per size a model declares) is one entry of the table, at the place its columns go.
- :data:`SAMPLE_COLUMNS`: ``samples.csv``'s rows, one per sample; :data:`RUN_FIELDS`: ``run.json``'s fields.

:func:`coerce_row` checks a row against the table and turns it into plain JSON-ready Python values. Data written by
an older version is brought up to :data:`SCHEMA_VERSION` by :mod:`kbench.store.migrations`; the README's
``## Results schema`` section is rendered from this table by :mod:`kbench.store.schemadoc`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from kbench.core.errors import SchemaError

SCHEMA_VERSION = 5
DTYPES = ("str", "int", "float", "bool", "list[str]", "list[float]", "dict", "list[dict]")
LIST_SEPARATOR = ";"  # list cells in the flat results.csv export
_IDENT = r"[a-z_][a-z0-9_]*"


@dataclass(frozen=True)
class Column:
    """One column (or, when ``name`` holds ``<...>``, a family of columns such as ``size_<name>``)."""

    name: str
    dtype: str
    unit: str
    meaning: str
    since: int = 1  # the schema version that added it

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name!r}: unknown dtype {self.dtype!r}; one of {', '.join(DTYPES)}")

    @property
    def is_family(self) -> bool:
        return "<" in self.name

    def matches(self, name: str) -> bool:
        if not self.is_family:
            return name == self.name
        return re.fullmatch(re.sub(r"<[^>]*>", _IDENT, self.name), name) is not None


def _c(name: str, dtype: str, unit: str, meaning: str, since: int = 1) -> Column:
    return Column(name, dtype, unit, meaning, since)


RESULT_COLUMNS: tuple[Column, ...] = (
    _c("schema_version", "int", "", "The results schema version the row follows."),
    _c("run_id", "str", "", "The run's id: the name of its folder under `reports/`."),
    _c("model", "str", "", "The model's name (its file under `models/` or `--models-dir`)."),
    _c("backend", "str", "", "The Keras backend whose worker measured the row (`tensorflow`, `jax` or `torch`)."),
    _c("path", "str", "", "The call path timed; `numpy` is the hand-written NumPy twin."),
    _c("sizes", "str", "", "The cell's sizes as one label, e.g. `batch=32 features=128 units=128`."),
    _c("dtype", "str", "", "The floating-point dtype of the weights and inputs (`float32` or `float64`)."),
    _c("options", "dict", "", "The model's options in effect, name to value, e.g. `{\"activation\": \"relu\"}`."),
    _c("size_<name>", "int", "", "One column per size of the model (`size_batch`, `size_n`, ...); empty for a model "
                                 "without that size."),
    _c("flops", "int", "FLOP", "Floating-point operations of one call, from the model file's FLOP count."),
    _c("device", "str", "", "The device the backend computed on (`cpu` unless a GPU was asked for)."),
    _c("placement", "str", "", "`host`: NumPy in, NumPy out; `device`: inputs placed on the device once and the "
                               "output synchronised, not copied back."),
    _c("precision", "str", "", "The matmul precision in effect: the dtype, or `tf32` when float32 matmuls ran in "
                               "TF32."),
    _c("runtime", "str", "", "A serving runtime's path: the runtime that ran it and its version, e.g. "
                             "`onnxruntime 1.32.0`, `ai-edge-litert 2.3.0 Interpreter`; empty for the others.", 4),
    _c("exporter", "str", "", "What wrote the runtime's file: Keras' `model.export(format=...)` and its converter.", 4),
    _c("runtime_options", "dict", "", "The runtime's settings in effect: `intra_op_threads`, ONNX Runtime's "
                                      "`graph_optimization_level`, LiteRT's `delegate`, OpenVINO's hints.", 4),
    _c("threads", "int", "", "`--threads`: the threads the worker ran with (BLAS, OpenMP, the backend's intra- and "
                             "inter-op pools, XLA), part of the row's identity; empty for the backend's default.", 2),
    _c("blas_threads", "int", "", "NumPy's BLAS threads in the worker that timed the row (threadpoolctl).", 3),
    _c("parity_ok", "bool", "", "Whether the path's first output matched the float64 reference and the NumPy twin "
                                "within `parity_tol`."),
    _c("parity_tol", "float", "", "The parity tolerance, relative to each element's scale: 16 · eps · √K."),
    _c("parity_max_abs_err", "float", "", "The largest absolute difference from the float64 reference, in the "
                                          "output's own units."),
    _c("parity_max_rel_err", "float", "", "The largest difference from the reference over each element's scale "
                                          "(compared with `parity_tol`)."),
    _c("parity_twin_max_abs_err", "float", "", "The largest absolute difference from the NumPy twin's output in "
                                               "the run's dtype."),
    _c("parity_message", "str", "", "Why parity failed; empty when it passed."),
    _c("parity_culprit", "str", "", "Whom a parity failure is blamed on: `twin`, a path name, or empty when "
                                    "parity passed or nobody was blamed.", 2),
    _c("median_s", "float", "s", "The median time of one call in the steady state."),
    _c("q1_s", "float", "s", "The first quartile of the per-call samples."),
    _c("q3_s", "float", "s", "The third quartile of the per-call samples."),
    _c("iqr_s", "float", "s", "The interquartile range, `q3_s - q1_s`."),
    _c("min_s", "float", "s", "The fastest sample."),
    _c("max_s", "float", "s", "The slowest sample."),
    _c("mean_s", "float", "s", "The mean of the samples."),
    _c("stdev_s", "float", "s", "The standard deviation of the samples."),
    _c("ci_low_s", "float", "s", "The low end of the median's 95% confidence interval: a t interval over the "
                                 "worker processes' medians, never narrower than the order-statistics interval of "
                                 "all samples pooled (which alone decides with one process)."),
    _c("ci_high_s", "float", "s", "The high end of that confidence interval."),
    _c("n_samples", "int", "", "Samples taken in the steady state."),
    _c("loops", "int", "", "Calls per sample, calibrated so a sample outlasts the timer's fixed cost."),
    _c("stop_reason", "str", "", "Why sampling stopped: `ci` (the CI reached its target), `budget` (the path's "
                                 "share of the cell's time was spent) or `max_samples`."),
    _c("loop_overhead_pct", "float", "%", "The timing loop's own per-call cost as a share of the median (reported, "
                                          "never subtracted)."),
    _c("n_processes", "int", "", "Worker processes whose samples were merged into the row.", 2),
    _c("process_medians_s", "list[float]", "s", "Each worker process's own median, in process order.", 2),
    _c("repeat_low_s", "float", "s", "The low end of the 95% interval where another run's median is expected.", 2),
    _c("repeat_high_s", "float", "s", "The high end of that interval.", 2),
    _c("ratio_to_numpy", "float", "×", "`median_s` over the NumPy twin's median in the same cell."),
    _c("ratio_ci_low", "float", "×", "The ratio's low bound: this path's `ci_low_s` over NumPy's `ci_high_s`."),
    _c("ratio_ci_high", "float", "×", "The ratio's high bound: this path's `ci_high_s` over NumPy's `ci_low_s`."),
    _c("ratio_process", "list[float]", "×", "Each worker process's own ratio to its own NumPy median, in process "
                                            "order.", 2),
    _c("bytes", "int", "B", "Bytes of the inputs, weights and output in the cell's dtype: the least any path must "
                            "move."),
    _c("gflops", "float", "GFLOP/s", "Achieved rate: `flops` over `median_s`."),
    _c("gbps", "float", "GB/s", "Achieved bandwidth: `bytes` over `median_s`."),
    _c("pct_peak_flops", "float", "%", "`gflops` as a share of the machine's peak GEMM rate in this dtype (the "
                                       "host's: empty on rows computed on a GPU)."),
    _c("pct_peak_bw", "float", "%", "`gbps` as a share of the machine's memory copy bandwidth (empty on GPU rows)."),
    _c("peak_engine", "str", "", "The engine whose GEMM rate is the machine's peak that `pct_peak_flops` is "
                                 "measured against (e.g. `numpy`).", 2),
    _c("import_s", "float", "s", "Import time in a fresh process (the fork server, or each worker with `--spawn`): "
                                 "NumPy's on the `numpy` row, Keras with its backend on the others."),
    _c("build_s", "float", "s", "Building the Keras model from the shared weights and wrapping it for the path, no "
                                "call; empty for `numpy`."),
    _c("export_s", "float", "s", "A serving runtime's `model.export` to its file, conversion included; empty for "
                                 "every other path (`build_s` is then the Keras model alone).", 4),
    _c("load_s", "float", "s", "A serving runtime's session, interpreter or compiled model made from that file.", 4),
    _c("first_call_s", "float", "s", "The first call on a freshly built model at the cell's sizes."),
    _c("retrace_s", "float", "s", "The first call at batch+1, after the steady state; empty for a model without a "
                                  "batch size."),
    _c("retrace_batch", "int", "", "The batch size of that retrace call."),
    _c("cold_order", "int", "", "The path's place in the cell's shuffled cold-start order, from 0."),
    _c("switch_warmup_calls", "int", "", "Untimed calls made to the path at the start of each visit that follows "
                                         "another path (the timer's switch warm-up).", 2),
    _c("others_cpu", "float", "", "The share of the usable CPUs that other processes took while the cell was timed "
                                  "(Linux's /proc/stat; the most of any process); 5% or more flags `contended`.", 5),
    _c("lat_n", "int", "", "Single calls timed back to back, one call between two clock reads, pooled over the "
                           "processes (after the steady state).", 2),
    _c("lat_p50_s", "float", "s", "The median of those single calls.", 2),
    _c("lat_p90_s", "float", "s", "Their 90th percentile.", 2),
    _c("lat_p99_s", "float", "s", "Their 99th percentile.", 2),
    _c("lat_max_s", "float", "s", "The slowest single call.", 2),
    _c("lat_samples_s", "list[float]", "s", "Every single call behind `lat_p50_s`, process by process (the "
                                            "report's ECDF).", 2),
    _c("lat_note", "str", "", "Why a path has no single-call figures, e.g. `too short for single-call timing` (a "
                              "call under 20 µs).", 2),
    _c("lat_gap_s", "list[float]", "s", "With `--gap`: the idle gaps before single calls, 0 (back to back) first, "
                                        "then each gap asked; the other `lat_gap_*` lists follow this order.", 2),
    _c("lat_gap_actual_s", "list[float]", "s", "The median idle gap actually observed before each call, per gap.",
       2),
    _c("lat_gap_n", "list[float]", "", "Single calls timed after each gap, pooled over the processes.", 2),
    _c("lat_gap_p50_s", "list[float]", "s", "The median single call after each gap.", 2),
    _c("lat_gap_p90_s", "list[float]", "s", "The 90th percentile after each gap.", 2),
    _c("lat_gap_p99_s", "list[float]", "s", "The 99th percentile after each gap.", 2),
    _c("lat_gap_max_s", "list[float]", "s", "The slowest single call after each gap.", 2),
    _c("lat_rate_per_s", "float", "1/s", "With `--rate`: the mean rate of the open-loop Poisson arrivals, served one "
                                          "at a time.", 2),
    _c("lat_rate_n", "int", "", "Requests sent at that rate, pooled over the processes.", 2),
    _c("lat_rate_p50_s", "float", "s", "The median request's latency from its arrival to the end of its call, "
                                       "queueing included.", 2),
    _c("lat_rate_p99_s", "float", "s", "The 99th percentile of that latency.", 2),
    _c("lat_rate_max_s", "float", "s", "The slowest request.", 2),
    _c("lat_rate_wait_p50_s", "float", "s", "The median wait in the queue before a request's call started.", 2),
    _c("mem_rss_growth_b", "int", "B", "Peak resident memory during a few calls after the timed ones over the "
                                       "resident memory before them (first worker process).", 2),
    _c("mem_py_peak_b", "int", "B", "The peak of Python's allocations (tracemalloc) over those calls.", 2),
    _c("mem_device_peak_b", "int", "B", "A `@device` path's peak device memory where the backend reports it; "
                                        "empty on a CPU.", 2),
    _c("floor_s", "float", "s", "Where the time goes: the median of the model compiled by the backend on resident "
                                "inputs, synced, not converted (v2: `kernel_s`); a runtime's: its run on bound inputs.", 3),
    _c("floor_name", "str", "", "Which floor: `tf.function`, `xla`, `jax.jit`, `torch.jit.trace`, or `torch.compile` "
                                "where tracing failed (v2: `kernel_floor`); `<runtime> run`.", 3),
    _c("compute_s", "float", "s", "The backend's kernels inside the floor, by `compute_from`.", 3),
    _c("compute_from", "str", "", "`profiler` (the backend's profiler, per call), `floor-dispatch` (`floor_s` less "
                                  "`dispatch_s`), or `floor` (torch, runtimes: no dispatch timed; compute holds it).", 3),
    _c("dispatch_s", "float", "s", "The median of the backend's call with no arithmetic (TF: the floor's function "
                                   "on an empty batch, else an identity; JAX: a jitted touch; torch: none).", 2),
    _c("conversion_in_s", "float", "s", "Converting the inputs to the backend (GPU: the copy in; a runtime: bind).", 2),
    _c("conversion_out_s", "float", "s", "The median of converting a result of the output's shape to NumPy (on a "
                                         "GPU: the device-to-host copy; a runtime: its fetch).", 2),
    _c("overhead_s", "float", "s", "Framework overhead: `median_s` minus `floor_s` and both conversions; below 0 it "
                                   "is within noise when `overhead_high_s` >= 0.", 2),
    _c("overhead_low_s", "float", "s", "The low end of the overhead's 95% interval (the four CIs in quadrature).", 2),
    _c("overhead_high_s", "float", "s", "The high end of that interval.", 2),
    _c("flags", "list[str]", "", "Machine-readable flags: `parity_fail`, `unstable` (IQR over 10% of the median), "
                                 "`ci_not_reached` (the median's 95% CI is wider than the timer's `target_ci`; in v1: the "
                                 "budget was spent before it got there), `contended` (others took 5% or more of "
                                 "the CPUs, `others_cpu`, or a process sampled longer on a shared CPU)."),
    _c("warnings", "list[str]", "", "Human-readable warnings, one sentence each."),
)  # fmt: skip

SAMPLE_COLUMNS: tuple[Column, ...] = (
    _c("run_id", "str", "", "The run's id."),
    _c("model", "str", "", "The model's name."),
    _c("backend", "str", "", "The Keras backend of the worker that took the sample."),
    _c("path", "str", "", "The call path timed."),
    _c("sizes", "str", "", "The cell's sizes label, as in the results."),
    _c("dtype", "str", "", "The cell's dtype."),
    _c("process", "int", "", "Which worker process took the sample, from 0 (the index into `process_medians_s`).",
       2),
    _c("threads", "int", "", "`--threads` of the worker that took the sample; empty for the default.", 2),
    _c("sample", "int", "", "The sample's index in the order taken, per path, cell and process."),
    _c("loops", "int", "", "Calls timed together in the sample."),
    _c("seconds", "float", "s", "The sample's time over `loops`: seconds per call."),
)  # fmt: skip

RUN_FIELDS: tuple[Column, ...] = (
    _c("schema_version", "int", "", "The results schema version of the folder's files."),
    _c("run_id", "str", "", "The run's id (its folder's name)."),
    _c("command", "str", "", "The command line that reproduces the run."),
    _c("started", "str", "", "When the run started, ISO 8601 local time to the second."),
    _c("finished", "str", "", "When it ended; null while it runs."),
    _c("status", "str", "", "`running`, `complete`, `failed` or `interrupted`."),
    _c("mode", "str", "", "`run` (timed) or `parity` (parity only)."),
    _c("backends", "list[str]", "", "The Keras backends, one worker each, in the order they ran."),
    _c("plan", "dict", "", "The plan: `paths`, `seed`, `timer` (the timer's settings), `cells` (model, sizes, "
                           "options, dtype), `run_budget_s` (`--budget`), `cell_goal_s` (the time goal per cell "
                           "of a run that set no time of its own) and `workers`: `forked` (from one process that "
                           "imported the backend) or `spawned` (`--spawn`, `--rigorous`: each imports it)."),
    _c("env", "dict", "", "The environment fingerprint: `host`, and per backend what its worker reported."),
    _c("peak", "dict", "", "The machine peak the `pct_peak_*` columns use (GFLOP/s per dtype, copy GB/s); null "
                           "when not measured."),
    _c("imports", "dict", "s", "Per backend: `numpy` and `backend` import times in its fresh worker (or in the "
                               "fork server its workers were forked from)."),
    _c("runtime_init_s", "dict", "s", "Per backend: the runtime's first use, paid once before the first cell."),
    _c("skipped", "list[dict]", "", "Cells not run, each with `model`, `sizes`, `reason` (and `backend`)."),
    _c("failed_cells", "list[dict]", "", "Cells lost to a worker failure, each with `model`, `sizes`, `backend`, "
                                         "`reason`."),
    _c("failures", "list[str]", "", "One line per worker failure that was not the user's input."),
    _c("processes", "int", "", "Worker processes per backend (`--processes`); 1 for a v1 run.", since=2),
    _c("models", "dict", "", "Per model: its `summary` and model `file`, as the report shows them.", since=2),
    _c("machine", "list[str]", "", "The machine check's short block, as printed at the top of the run.", since=2),
    _c("machine_findings", "list[dict]", "", "Every machine-check finding: `kind`, `level`, `found`, `cost`, `fix`.",
       since=2),
    _c("imports_per_process", "dict", "s", "Per backend: the import times of every process that imported "
                                           "(each spawned worker, or each fork server once; `imports` holds their "
                                           "median).", since=2),
    _c("runtime_init_s_per_process", "dict", "s", "Per backend: every worker process's runtime first use.",
       since=2),
    _c("unavailable_paths", "list[dict]", "", "Serving runtimes left out: `path` and `reason` (not installed), "
                                              "with `backend`, `model`, `sizes` where a cell's export failed.", 4),
)  # fmt: skip
# Columns added to version 2 after files were written with it: a v2 file without them loads with them empty
LATE_V2: frozenset[str] = frozenset((
    "threads lat_n lat_p50_s lat_p90_s lat_p99_s lat_max_s lat_samples_s lat_note lat_gap_s lat_gap_actual_s "
    "lat_gap_n lat_gap_p50_s lat_gap_p90_s lat_gap_p99_s lat_gap_max_s mem_rss_growth_b mem_py_peak_b "
    "mem_device_peak_b lat_rate_per_s lat_rate_n lat_rate_p50_s lat_rate_p99_s lat_rate_max_s lat_rate_wait_p50_s "
    "conversion_in_s conversion_out_s overhead_s overhead_low_s overhead_high_s dispatch_s "
).split())  # dispatch_s: where the time goes (kbench.measure.decompose)
COLUMNS: list[str] = [c.name for c in RESULT_COLUMNS if not c.is_family]
SAMPLE_COLUMN_NAMES: list[str] = [c.name for c in SAMPLE_COLUMNS]


def _index(table: tuple[Column, ...]) -> tuple[Mapping[str, Column], tuple[tuple[re.Pattern, Column], ...]]:
    """A table as (its plain columns by name, each family's compiled pattern with the family), for :func:`column`:
    writing a default run's rows scanned the table for every field, 62k times (0.9 s)."""
    exact = {c.name: c for c in reversed(table) if not c.is_family}  # the first of a repeated name wins
    families = tuple((re.compile(re.sub(r"<[^>]*>", _IDENT, c.name)), c) for c in table if c.is_family)
    return MappingProxyType(exact), families


_INDEXES = MappingProxyType({id(t): _index(t) for t in (RESULT_COLUMNS, SAMPLE_COLUMNS, RUN_FIELDS)})  # built once


def column(name: str, table: Iterable[Column] = RESULT_COLUMNS) -> Column | None:
    """The declared column ``name`` (a family's member resolves to its family), or None."""
    index = _INDEXES.get(id(table))
    if index is None:
        return next((c for c in table if c.matches(name)), None)
    exact, families = index
    found = exact.get(name)
    return found if found is not None else next((c for p, c in families if p.fullmatch(name)), None)


def ordered(names: Iterable[str], table: Iterable[Column] = RESULT_COLUMNS) -> list[str]:
    """``names`` in table order, a family's members sorted at its place, undeclared names last."""
    names, table = list(dict.fromkeys(names)), table if isinstance(table, tuple) else tuple(table)
    found = {n: column(n, table) for n in names}
    out = []
    for c in table:
        out += sorted(n for n in names if found[n] is c) if c.is_family else [c.name] * (c.name in found)
    return out + [n for n in names if found[n] is None]


# -- values ---------------------------------------------------------------------------------------------------------

# the string forms version 1 stored list columns in, still accepted by coerce_value (kbench.store.migrations)
V1_SEPARATORS = {"flags": ";", "warnings": " | "}


def is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _wrong(col: Column, v: Any) -> SchemaError:
    return SchemaError(f"column {col.name!r} holds {type(v).__name__} {str(v)[:40]!r}, expected {col.dtype}")


def _scalar(col: Column, dtype: str, v: Any) -> Any:
    """One scalar as plain Python (None when missing), or SchemaError."""
    if is_missing(v):
        return None
    if dtype == "str" and isinstance(v, str):
        return v
    if dtype == "bool" and isinstance(v, (bool, np.bool_)):
        return bool(v)
    if dtype == "int" and isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    if dtype == "int" and isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)  # pandas turns an int column with a gap into floats
    numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    if dtype == "float" and numeric:
        return float(v)
    if dtype == "dict" and isinstance(v, Mapping):
        return dict(v)
    raise _wrong(col, v)


def coerce_value(col: Column, v: Any) -> Any:
    """A value of ``col`` as JSON-ready Python: lists for list columns (empty when missing), a dict for ``dict``
    (empty when missing), None for a missing scalar. The transitional string forms are accepted: ``flags`` joined
    with ``;``, ``warnings`` with `` | `` and ``options`` as JSON text (what v1 stored)."""
    if col.dtype.startswith("list["):
        if isinstance(v, str) and col.name in V1_SEPARATORS:
            return [s for s in v.split(V1_SEPARATORS[col.name]) if s]
        if is_missing(v):
            return []
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise _wrong(col, v)
        element = col.dtype[5:-1]
        return [_scalar(col, element, x) for x in v]
    if col.dtype == "dict":
        if isinstance(v, str):
            try:
                return _scalar(col, "dict", json.loads(v) if v else {})
            except json.JSONDecodeError:
                raise _wrong(col, v) from None
        return {} if is_missing(v) else _scalar(col, "dict", v)
    return _scalar(col, col.dtype, v)


def coerce_row(row: Mapping[str, Any], table: tuple[Column, ...] = RESULT_COLUMNS, strict: bool = True) -> dict:
    """``row`` checked against ``table`` as plain Python values, every declared column present (missing ones as
    None, ``[]`` or ``{}``). ``strict``: an undeclared column is a :class:`SchemaError` (writing); otherwise it is
    kept as it is (reading)."""
    out: dict[str, Any] = {}
    for name, v in row.items():
        col = column(name, table)
        if col is None:
            if strict:
                raise SchemaError(f"column {name!r} is not declared in kbench.store.schema; add it to the table there")
            out[name] = v
        else:
            out[name] = coerce_value(col, v)
    for col in table:
        if not col.is_family and col.name not in out:
            out[col.name] = coerce_value(col, None)
    return {n: out[n] for n in ordered(out, table)}


def typed_frame(rows: list[dict], table: tuple[Column, ...] = RESULT_COLUMNS) -> pd.DataFrame:
    """Coerced rows as a DataFrame in table order, every declared column present, typed by :func:`apply_dtypes`."""
    names = ordered([c.name for c in table if not c.is_family] + [k for r in rows for k in r], table)
    return apply_dtypes(pd.DataFrame(rows, columns=names), table)


def apply_dtypes(df: pd.DataFrame, table: tuple[Column, ...] = RESULT_COLUMNS) -> pd.DataFrame:
    """Declared numeric columns as numbers: float64 (NaN when missing) for floats; int64 for ints, or pandas' nullable
    Int64 (``pd.NA`` when missing) where one is missing, so an int stays an int; bool when complete. Text, lists and
    dicts stay Python objects. A value that is not a number in a numeric column is a :class:`SchemaError`."""
    df = df.copy()
    for name in df.columns:
        col = column(name, table)
        if col is None or col.dtype not in ("float", "int", "bool"):
            continue
        complete = bool(df[name].notna().all()) and len(df) > 0
        if col.dtype == "bool":
            if complete and df[name].map(lambda v: isinstance(v, (bool, np.bool_))).all():
                df[name] = df[name].astype(bool)
            continue
        try:
            values = pd.to_numeric(df[name].where(df[name].notna(), None), errors="raise")
        except (ValueError, TypeError):
            raise SchemaError(f"column {name!r} holds a value that is not a number") from None
        if col.dtype == "int" and not values.dropna().map(lambda v: float(v).is_integer()).all():
            raise SchemaError(f"column {name!r} holds a number that is not an integer")
        df[name] = values.astype("float64" if col.dtype == "float" else "int64" if complete else "Int64")
    return df
