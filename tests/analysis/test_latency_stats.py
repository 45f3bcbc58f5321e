"""Statistics over single calls (kbench.analysis.latency): percentiles, pooling over processes and gaps, the result
columns, the thread-setting labels."""

import math

import pandas as pd
import pytest

from kbench.analysis import latency
from kbench.measure.latency import TOO_SHORT, LatencySeries
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import PathResult

PARITY = ParityResult("call", True, 2.2e-5, 1e-7, 3e-8, 2e-7, "")


def _result(path: str, series: tuple[LatencySeries, ...], **kw) -> PathResult:
    return PathResult(path, 0, 0.01, 0.02, PARITY, "cpu", "host", "float32", (1e-3,), 1, "ci", latency=series, **kw)


def test_percentiles_of_known_data():
    p = latency.percentiles(float(x) for x in range(100, 0, -1))  # 1..100, unsorted
    assert p.n == 100
    assert p.p50 == pytest.approx(50.5) and p.p90 == pytest.approx(90.1) and p.p99 == pytest.approx(99.01)
    assert p.max == 100.0
    empty = latency.percentiles([])
    assert empty.n == 0 and math.isnan(empty.p99)


def test_latency_columns_pool_every_process_and_keep_each_gap():
    a = (LatencySeries(0.0, (1.0, 2.0), (1e-6, 1e-6)), LatencySeries(0.02, (5.0,), (0.0201,)))
    b = (LatencySeries(0.0, (3.0, 4.0), (1e-6, 1e-6)), LatencySeries(0.02, (7.0,), (0.0203,)))
    row = latency.latency_columns([_result("call", a, mem_py_peak_b=100), _result("call", b)])
    assert row["lat_n"] == 4 and row["lat_p50_s"] == pytest.approx(2.5) and row["lat_max_s"] == 4.0
    assert sorted(row["lat_samples_s"]) == [1.0, 2.0, 3.0, 4.0]
    assert row["lat_gap_s"] == [0.0, 0.02] and row["lat_gap_n"] == [4.0, 2.0]
    assert row["lat_gap_p50_s"][1] == pytest.approx(6.0) and row["lat_gap_actual_s"][1] == pytest.approx(0.0202)
    assert row["mem_py_peak_b"] == 100 and row["mem_rss_growth_b"] is None  # only process 0 measures memory


def test_a_path_without_single_calls_keeps_its_note_and_empty_columns():
    row = latency.latency_columns([_result("numpy", (), latency_note=TOO_SHORT)])
    assert row["lat_note"] == "too short for single-call timing" and "lat_p50_s" not in row


def test_rows_of_two_thread_settings_never_share_a_key():
    from kbench.analysis.compare import _keys

    row = {"model": "dense", "backend": "tensorflow", "path": "call", "sizes": "batch=1", "dtype": "float32",
           "options": {}}  # fmt: skip
    keys = _keys(pd.DataFrame([{**row, "threads": 1}, {**row, "threads": 2}, {**row, "threads": None}]))
    assert len(keys) == 3 and {k.threads for k in keys} == {"1", "2", ""}
    labelled = latency.by_threads(pd.DataFrame([{**row, "threads": 1}, {**row, "threads": None}]))
    assert list(labelled["model"]) == ["dense · threads=1", "dense · threads=default"]
