"""From worker records to result rows: one tidy row per (model, backend, path, sizes, dtype, options).

A cell of one backend is measured by every worker process of that backend (``--processes``); each process sends a
:class:`kbench.measure.protocol.CellDone`. This module merges them: the samples are pooled for the median and the spread,
the uncertainty comes from :mod:`kbench.core.stats` (which includes the spread *between* processes), the ratio to
NumPy is taken per process (both measured in the same process) and then combined, the cold-start figures are the
median over processes, and parity is the worst any process saw. The columns are documented in
:mod:`kbench.store.schema`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from kbench.analysis import decompose
from kbench.core import stats
from kbench.analysis.latency import latency_columns
from kbench.measure.parity import KERAS_ONLY
from kbench.measure.callpaths import BASELINE, PATHS
from kbench.measure.protocol import Cell
from kbench.measure.protocol import CellDone, PathResult
from kbench.measure.timer import UNSTABLE_IQR, Measurement

CONTENDED = 0.05  # a row timed while other processes took this share of the usable CPUs is ``contended``


@dataclass(frozen=True)
class CellFacts:
    """What a row needs to know about its cell besides the measurements."""

    run_id: str
    backend: str
    cell: Cell
    flops: int
    nbytes: int
    import_s: dict[str, float]  # {"numpy": s, "backend": s}: median over this backend's processes
    peak: Any = None  # kbench.machine.peak.Peak or None
    threads: int | None = None  # --threads of the workers that measured the cell; None: the default
    target_ci: float | None = None  # the timer's target for the median's CI (None: judge by the stop reason alone)


def _median_or_nan(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else math.nan


def _worst_parity(results: Sequence[PathResult]):
    failing = [r.parity for r in results if not r.parity.ok]
    pool = failing or [r.parity for r in results]
    return max(pool, key=lambda p: (p.max_rel_err if not math.isnan(p.max_rel_err) else -1.0))


def _pooled(results: Sequence[PathResult]) -> Measurement:
    samples = tuple(s for r in results for s in r.samples)
    reasons = [r.stop_reason for r in results]
    reason = "budget" if reasons and all(r == "budget" for r in reasons) else max(set(reasons), key=reasons.count)
    return Measurement(samples, int(statistics.median(r.loops for r in results)), reason,
                       results[0].loop_overhead_s, results[0].fixed_overhead_s)  # fmt: skip


def _timing(row: dict, results: Sequence[PathResult], base: Sequence[PathResult] | None, facts: CellFacts) -> list[str]:
    """Fill the steady-state columns; return the row's warnings about timing."""
    timed = [r for r in results if r.samples]
    if not timed:
        return []
    m = _pooled(timed)
    s = stats.summarize([r.samples for r in timed])
    row.update(
        median_s=s.median, q1_s=m.q1, q3_s=m.q3, iqr_s=m.iqr, min_s=m.min, max_s=m.max, mean_s=m.mean,
        stdev_s=m.stdev, ci_low_s=s.ci_low, ci_high_s=s.ci_high, repeat_low_s=s.repeat_low,
        repeat_high_s=s.repeat_high, n_samples=m.n, loops=m.loops, stop_reason=m.stop_reason,
        loop_overhead_pct=100 * m.per_loop_overhead_s / s.median if s.median > 0 else math.nan,
        n_processes=s.n_processes, process_medians_s=list(s.process_medians),
        switch_warmup_calls=int(statistics.median(r.switch_warmup_calls for r in timed)),
        others_cpu=max((r.others_cpu for r in timed if r.others_cpu is not None), default=math.nan),
    )  # fmt: skip
    base_timed = [r for r in base or () if r.samples]
    if len(base_timed) == len(timed):
        rs = stats.ratio([r.samples for r in timed], [r.samples for r in base_timed])
        row.update(ratio_to_numpy=rs.ratio, ratio_ci_low=rs.ci_low, ratio_ci_high=rs.ci_high,
                   ratio_process=list(rs.process_ratios))  # fmt: skip
    if s.median > 0:
        row.update(bytes=facts.nbytes, gflops=facts.flops / s.median / 1e9, gbps=facts.nbytes / s.median / 1e9)
        if facts.peak is not None and row["device"] == "cpu":  # the peak is the host's: a GPU row has none
            row.update(pct_peak_flops=100 * row["gflops"] / facts.peak.gflops(facts.cell.dtype),
                       pct_peak_bw=100 * row["gbps"] / facts.peak.copy_gbps,
                       peak_engine=getattr(facts.peak, "engine_for", lambda d: "numpy")(facts.cell.dtype))  # fmt: skip
    warnings = []
    if m.iqr > UNSTABLE_IQR * s.median:
        row["flags"].append("unstable")
        warnings.append(f"unstable: IQR is {100 * m.iqr / s.median:.1f}% of the median (threshold {UNSTABLE_IQR:.0%})")
    warnings += _ci_warning(row, s, m, facts.target_ci)
    return warnings + _contention_warning(row, sum(r.shared for r in timed), len(timed))


def _contention_warning(row: dict, shared: int, processes: int) -> list[str]:
    """``contended`` when, while some process timed the cell, other processes took :data:`CONTENDED` of its usable
    CPUs or more, or when ``shared`` of the ``processes`` found their CPU shared before calibrating (and sampled
    longer): the median holds others' time slices."""
    share = row["others_cpu"]
    took = not math.isnan(share) and share >= CONTENDED
    if not took and not shared:
        return []
    row["flags"].append("contended")
    what = f"other processes took {100 * share:.0f}% of the CPUs while the cell was timed" if took else \
        "the CPU was shared with other processes when the cell was timed"  # fmt: skip
    longer = f"; {shared} of {processes} processes sampled longer for it" if shared else ""
    return [f"contended: {what}, so the median holds their time slices{longer}"]


def _ci_warning(row: dict, s: stats.Summary, m: Measurement, target: float | None) -> list[str]:
    """``ci_not_reached`` when the *reported* 95% CI of the median (the spread between processes included) is
    wider than the timer's target; without a target, when every process spent its budget first."""
    if target is None:
        missed, half = m.stop_reason == "budget", m.ci_rel_halfwidth
    else:
        half = max(s.median - s.ci_low, s.ci_high - s.median) / s.median if s.median > 0 else math.inf
        missed = half > target
    if not missed:
        return []
    row["flags"].append("ci_not_reached")
    goal = "within a process" if target is None else f"target ±{100 * target:g}%"
    if m.stop_reason == "budget":  # every process ran out of its share first
        return [f"budget spent before the median's 95% CI reached the target (±{100 * half:.1f}%, {goal})"]
    return [f"the median's 95% CI (±{100 * half:.1f}%) is wider than the {goal}: the processes' medians differ "
            "more than each process's own CI"]


def _served(results: Sequence[PathResult]) -> dict[str, Any]:
    """A serving runtime's columns: which runtime and exporter, its settings, and its export and load (medians over
    the processes); empty for every other path."""
    first = results[0]
    if not first.runtime:
        return {"runtime": None, "exporter": None, "runtime_options": {}, "export_s": None, "load_s": None}
    return {"runtime": first.runtime, "exporter": first.exporter, "runtime_options": dict(first.runtime_options),
            "export_s": _median_or_nan([r.export_s for r in results]),
            "load_s": _median_or_nan([r.load_s for r in results])}  # fmt: skip


def path_row(facts: CellFacts, results: Sequence[PathResult], base: Sequence[PathResult] | None) -> dict:
    """One result row from one path's records, one per process that finished the cell."""
    cell, first = facts.cell, results[0]
    p = _worst_parity(results)
    row: dict[str, Any] = {
        "run_id": facts.run_id, "model": cell.model, "backend": facts.backend, "path": first.path,
        "sizes": cell.label, "dtype": cell.dtype, "options": cell.options_dict, "flops": facts.flops,
        **{f"size_{k}": v for k, v in cell.sizes},
        "device": first.device, "placement": first.placement, "precision": first.precision,
        "parity_ok": all(r.parity.ok for r in results), "parity_tol": p.tol, "parity_max_abs_err": p.max_abs_err,
        "parity_max_rel_err": p.max_rel_err, "parity_twin_max_abs_err": p.twin_max_abs_err,
        "parity_message": p.message, "parity_culprit": getattr(p, "culprit", ""),
        "import_s": facts.import_s["numpy" if first.path == BASELINE else "backend"],
        "build_s": _median_or_nan([r.build_s for r in results]),
        "first_call_s": _median_or_nan([r.first_call_s for r in results]),
        "retrace_s": _median_or_nan([r.retrace_s for r in results]), "retrace_batch": first.retrace_batch,
        "cold_order": first.order, "flags": [], "warnings": [], "threads": facts.threads,
        **_served(results),
    }  # fmt: skip
    row.update(latency_columns(results))
    if KERAS_ONLY in p.message:  # a model without a NumPy twin: say so on every row, whatever parity found
        row["flags"].append("no_twin")
        row["warnings"].append(p.message[: p.message.index(KERAS_ONLY) + len(KERAS_ONLY)])
        row["parity_message"] = p.message if not row["parity_ok"] else ""
    if not row["parity_ok"]:
        row["flags"].append("parity_fail")
        row["warnings"].append(f"parity failed: {p.message}")
    row["warnings"] += _timing(row, results, base, facts)
    return row


def cell_rows(facts: CellFacts, done: Mapping[int, CellDone]) -> tuple[list[dict], list[dict]]:
    """(result rows, sample rows) of one cell from every process that finished it (process index -> record)."""
    by_path: dict[str, list[PathResult]] = {}
    samples: list[dict] = []
    for process, d in sorted(done.items()):
        for r in d.paths:
            by_path.setdefault(r.path, []).append(r)
            samples += [{"run_id": facts.run_id, "model": facts.cell.model, "backend": facts.backend, "path": r.path,
                         "sizes": facts.cell.label, "dtype": facts.cell.dtype, "process": process, "sample": i,
                         "loops": r.loops, "seconds": s, "threads": facts.threads}
                        for i, s in enumerate(r.samples)]  # fmt: skip
    order = list(PATHS)
    names = sorted(by_path, key=lambda n: order.index(n) if n in order else len(order))
    base = by_path.get(BASELINE)
    rows = [path_row(facts, by_path[n], base) for n in names]
    blas = [d.blas_threads for _, d in sorted(done.items()) if d.blas_threads is not None]
    for row in rows:  # the processes run alike; where they differ, the most threads any of them had
        row["blas_threads"] = max(blas) if blas else None
    decompose.annotate(rows, [d.references for _, d in sorted(done.items())], facts.backend)  # where the time goes
    return rows, samples
