"""Merging the records of several worker processes into one row per path."""

import math
import statistics
from dataclasses import replace

import pytest
from scipy import stats as scipy_stats

from kbench.core import stats
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import Cell
from kbench.measure.protocol import CellDone, PathResult
from kbench.orchestrate.rows import CellFacts, cell_rows

CELL = Cell("dense", "models/dense.py", (("batch", 4), ("features", 8), ("units", 8)), (), "float32")
FACTS = CellFacts("r1", "tensorflow", CELL, 1000, 400, {"numpy": 0.05, "backend": 3.0})


def _path(path, samples, first=0.02, ok=True, rel=1e-8, build=0.01):
    parity = ParityResult(path, ok, 1e-5, 1e-7, rel, 0.0, "" if ok else "error exceeds tolerance")
    return PathResult(path, 0, None if path == "numpy" else build, first, parity, "cpu", "host", "float32",
                      tuple(samples), 10, "ci", 2e-8, 5e-8, 3, 0.5, 5)  # fmt: skip


def _done(numpy, call, **call_kw):
    return CellDone(0, (_path("numpy", numpy), _path("call", call, **call_kw)), ("numpy", "call"))


# three processes: the call path's level moves between processes, NumPy's less
NUMPY = [[1.0e-6, 1.1e-6, 1.0e-6], [1.05e-6, 1.0e-6, 1.1e-6], [1.0e-6, 1.02e-6, 0.98e-6]]
CALL = [[4.0e-6, 4.1e-6, 3.9e-6], [4.6e-6, 4.4e-6, 4.5e-6], [4.2e-6, 4.3e-6, 4.1e-6]]


def test_three_processes_make_one_row_per_path_with_the_spread_between_them():
    done = {i: _done(NUMPY[i], CALL[i], first=0.01 * (i + 1)) for i in range(3)}
    rows, samples = cell_rows(FACTS, done)
    numpy_row, call_row = rows
    assert call_row["median_s"] == statistics.median(s for p in CALL for s in p)
    assert call_row["process_medians_s"] == [statistics.median(p) for p in CALL]
    assert call_row["n_processes"] == 3 and call_row["n_samples"] == 9
    # the CI is the t interval over the per-process medians (log scale, 2 degrees of freedom), not the in-process one
    logs = [math.log(statistics.median(p)) for p in CALL]
    half = scipy_stats.t.ppf(0.975, 2) * statistics.stdev(logs) / math.sqrt(3)
    assert call_row["ci_low_s"] == pytest.approx(call_row["median_s"] * math.exp(-half), rel=1e-9)
    assert call_row["ci_high_s"] == pytest.approx(call_row["median_s"] * math.exp(half), rel=1e-9)
    assert call_row["repeat_low_s"] < call_row["ci_low_s"] and call_row["repeat_high_s"] > call_row["ci_high_s"]
    # the ratio is paired per process (both paths measured in the same process)
    assert call_row["ratio_process"] == pytest.approx([statistics.median(c) / statistics.median(n)
                                                       for c, n in zip(CALL, NUMPY)])  # fmt: skip
    expected = stats.ratio(CALL, NUMPY)
    assert (call_row["ratio_to_numpy"], call_row["ratio_ci_low"], call_row["ratio_ci_high"]) == (
        expected.ratio, expected.ci_low, expected.ci_high)
    assert call_row["first_call_s"] == pytest.approx(0.02)  # the median of 0.01, 0.02, 0.03
    assert numpy_row["ratio_to_numpy"] == 1.0
    assert sorted({(s["path"], s["process"]) for s in samples}) == [(p, i) for p in ("call", "numpy") for i in range(3)]


def test_a_missing_process_keeps_the_others_and_their_indices():
    rows, samples = cell_rows(FACTS, {0: _done(NUMPY[0], CALL[0]), 2: _done(NUMPY[2], CALL[2])})
    assert rows[1]["n_processes"] == 2
    assert {s["process"] for s in samples} == {0, 2}


def test_parity_is_the_worst_any_process_saw():
    done = {0: _done(NUMPY[0], CALL[0]), 1: _done(NUMPY[1], CALL[1], ok=False, rel=3e-3)}
    rows, _ = cell_rows(FACTS, done)
    call_row = rows[1]
    assert call_row["parity_ok"] is False and call_row["parity_max_rel_err"] == 3e-3
    assert "parity_fail" in call_row["flags"]


def test_one_process_uses_the_in_process_order_statistics_ci():
    rows, _ = cell_rows(FACTS, {0: _done(NUMPY[0] * 4, CALL[0] * 4)})
    s = stats.summarize([CALL[0] * 4])
    assert (rows[1]["ci_low_s"], rows[1]["ci_high_s"]) == (s.ci_low, s.ci_high)
    assert rows[1]["n_processes"] == 1


def test_rates_and_peak_use_the_median_and_name_the_engine():
    class Peak:
        copy_gbps = 10.0

        def gflops(self, dtype):
            return 100.0

        def engine_for(self, dtype):
            return "jax"

    facts = CellFacts("r1", "tensorflow", CELL, 1000, 400, {"numpy": 0.05, "backend": 3.0}, Peak())
    rows, _ = cell_rows(facts, {0: _done(NUMPY[0], CALL[0])})
    call_row = rows[1]
    assert call_row["gflops"] == pytest.approx(1000 / call_row["median_s"] / 1e9)
    assert call_row["pct_peak_flops"] == pytest.approx(call_row["gflops"])  # against 100 GFLOP/s
    assert call_row["peak_engine"] == "jax"
    # the peak is the host's: a row computed on a GPU has a rate but no share of the CPU's peak
    gpu = CellDone(0, (_path("numpy", NUMPY[0]), replace(_path("call", CALL[0]), device="gpu")), ("numpy", "call"))
    rows, _ = cell_rows(facts, {0: gpu})
    assert rows[0]["pct_peak_flops"] > 0 and rows[1]["gflops"] > 0
    assert "pct_peak_flops" not in rows[1] and "peak_engine" not in rows[1]


def test_a_ci_wider_than_the_target_names_its_cause_budget_or_spread_between_processes():
    facts = replace(FACTS, target_ci=0.02)
    # every process stopped on its own CI ("ci"), yet their medians differ by ~12%: the reported CI misses ±2%
    spread = {i: _done(NUMPY[i], CALL[i]) for i in range(3)}
    call_row = cell_rows(facts, spread)[0][1]
    assert "ci_not_reached" in call_row["flags"]
    assert any("wider than the target ±2%" in w and "processes' medians differ" in w for w in call_row["warnings"])
    assert not any(w.startswith("budget spent") for w in call_row["warnings"])
    # the same samples with every process out of budget: the budget is named
    spent = {i: CellDone(0, (_path("numpy", NUMPY[i]), replace(_path("call", CALL[i]), stop_reason="budget")),
                         ("numpy", "call")) for i in range(3)}  # fmt: skip
    call_row = cell_rows(facts, spent)[0][1]
    assert any(w.startswith("budget spent before the median's 95% CI reached the target") for w in call_row["warnings"])


def test_a_row_whose_timing_thread_waited_for_a_cpu_is_flagged_contended_with_the_worst_process():
    def done(wait_numpy, wait_call):
        base = _done(NUMPY[0], CALL[0])
        numpy, call = base.paths
        return replace(base, paths=(replace(numpy, others_cpu=wait_numpy), replace(call, others_cpu=wait_call)))

    rows, _ = cell_rows(FACTS, {0: done(0.01, 0.02), 1: done(0.0, 0.31), 2: done(None, 0.0)})
    numpy_row, call_row = rows
    assert numpy_row["others_cpu"] == 0.01 and "contended" not in numpy_row["flags"]
    assert call_row["others_cpu"] == 0.31 and "contended" in call_row["flags"]
    assert any("other processes took 31% of the CPUs" in w for w in call_row["warnings"])
    unknown, _ = cell_rows(FACTS, {0: done(None, None)})
    assert math.isnan(unknown[1]["others_cpu"]) and "contended" not in unknown[1]["flags"]


def test_a_process_that_found_its_cpu_shared_flags_the_row_even_without_a_cpu_share_figure():
    base = _done(NUMPY[0], CALL[0])
    numpy, call = base.paths
    done = {0: replace(base, paths=(numpy, replace(call, shared=True))), 1: base}
    call_row = cell_rows(FACTS, done)[0][1]
    assert "contended" in call_row["flags"] and math.isnan(call_row["others_cpu"])
    assert any("the CPU was shared with other processes" in w and "1 of 2 processes sampled longer" in w
               for w in call_row["warnings"])  # fmt: skip
