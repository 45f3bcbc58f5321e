"""Single calls as shown (kbench.present.latency): the tables and the sentences at low load and under --rate."""

import pandas as pd

from kbench.measure.latency import TOO_SHORT
from kbench.present import latency

def _rows() -> pd.DataFrame:
    base = {"model": "dense", "sizes": "batch=1", "dtype": "float32", "options_label": "", "lat_note": "",
            "lat_gap_s": [0.0, 0.02]}  # fmt: skip
    return pd.DataFrame([
        {**base, "path": "numpy", "median_s": 3e-6, "lat_p50_s": None, "lat_p99_s": None, "lat_note": TOO_SHORT,
         "lat_gap_s": []},
        {**base, "path": "compiled", "median_s": 2.7e-4, "lat_p50_s": 2.7e-4, "lat_p99_s": 4e-4,
         "lat_gap_p50_s": [2.7e-4, 4e-4], "lat_gap_p99_s": [4e-4, 5.7e-4]},
        {**base, "path": "xla", "median_s": 2e-4, "lat_p50_s": 2e-4, "lat_p99_s": 2.5e-4,
         "lat_gap_p50_s": [2e-4, 3e-4], "lat_gap_p99_s": [2.5e-4, 4.1e-4]},
    ])  # fmt: skip


def test_the_verdict_names_the_gap_the_worst_tail_and_the_fastest_path_at_low_load():
    (t,) = latency.latency_tables(_rows(), ["model", "sizes", "dtype", "options_label"])
    assert t.gaps == ("20ms",) and [r.path for r in t.rows] == ["compiled", "xla"]
    assert t.sentence == ("After a 20 ms idle gap (≈ 50 requests/s), compiled's p99 is 2.11× its back-to-back "
                          "median; the fastest path at low load is xla (p99 410 µs, 2.05× its back-to-back median).")
    assert t.short.startswith("too short for single-call timing") and t.short.endswith(": numpy")


def test_a_path_slower_than_the_arrivals_is_named_as_overloaded():
    rows = [{"path": "predict", "lat_p50_s": 0.045}, {"path": "xla", "lat_p50_s": 2.6e-4}]
    assert latency.overload_sentence(rows, 50.0).startswith("At 50 requests/s, predict cannot keep up")
    assert latency.overload_sentence(rows[1:], 50.0).startswith("At 50 requests/s every path keeps up")
    assert latency.overload_sentence(rows, None) == ""
