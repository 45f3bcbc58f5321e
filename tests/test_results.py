import json
import math

import pandas as pd
import pytest

from kbench import results
from kbench.errors import RunNotFoundError, SchemaError
from kbench.paths import PATHS
from kbench.plan import Cell


def _cell():
    return Cell("dense", "models/dense.py", (("batch", 4), ("features", 8), ("units", 8)), (("activation", "relu"),), "float32")


def _payload(numpy_s=1e-6, call_s=4e-6, parity_ok=True):
    def row(path, per_call, order):
        return {
            "path": path, "build_s": None if path == "numpy" else 0.01, "first_call_s": 0.02, "parity_ok": parity_ok or path == "numpy",
            "parity_tol": 1e-5, "parity_max_abs_err": 1e-7, "parity_max_rel_err": 1e-8, "parity_twin_max_abs_err": 0.0,
            "parity_message": "" if (parity_ok or path == "numpy") else "error 1e-1 exceeds", "order": order,
            "samples": [per_call] * 9 + [per_call * 1.5], "loops": 100, "stop_reason": "ci",
            "loop_overhead_s": 3e-8, "fixed_overhead_s": 1e-7, "retrace_s": 0.5, "retrace_batch": 5,
        }  # fmt: skip
    # worker order is shuffled: results come back in registry order
    return {"rows": [row("call", call_s, 0), row("numpy", numpy_s, 1)], "cold_order": ["call", "numpy"]}


def test_cell_rows_compute_stats_ratio_and_keep_samples():
    rows, samples = results.cell_rows("r1", "tensorflow", _cell(), 123, _payload(), {"numpy": 0.05, "backend": 3.0})
    assert [r["path"] for r in rows] == ["numpy", "call"]
    numpy_row, call_row = rows
    assert numpy_row["median_s"] == pytest.approx(1e-6)
    assert call_row["median_s"] == pytest.approx(4e-6)
    assert call_row["ratio_to_numpy"] == pytest.approx(4.0)
    assert call_row["ratio_ci_low"] <= call_row["ratio_to_numpy"] <= call_row["ratio_ci_high"]
    assert numpy_row["import_s"] == 0.05 and call_row["import_s"] == 3.0
    assert math.isnan(numpy_row["build_s"]) and call_row["build_s"] == 0.01
    assert call_row["size_batch"] == 4 and call_row["sizes"] == "batch=4 features=8 units=8"
    assert json.loads(call_row["options"]) == {"activation": "relu"}
    assert call_row["loop_overhead_pct"] == pytest.approx(100 * 3e-8 / 4e-6)
    assert len(samples) == 20 and {s["path"] for s in samples} == {"numpy", "call"}
    assert call_row["flags"] == ""


def test_parity_failure_is_flagged_with_its_reason():
    rows, _ = results.cell_rows("r1", "tensorflow", _cell(), 1, _payload(parity_ok=False), {"numpy": 0, "backend": 0})
    bad = rows[1]
    assert bad["parity_ok"] is False
    assert "parity_fail" in bad["flags"].split(";")
    assert "parity failed: error 1e-1 exceeds" in bad["warnings"]


def test_unstable_cell_is_flagged():
    p = _payload()
    p["rows"][0]["samples"] = [1e-6, 2e-6] * 5
    rows, _ = results.cell_rows("r1", "tensorflow", _cell(), 1, p, {"numpy": 0, "backend": 0})
    assert "unstable" in rows[1]["flags"]
    assert "IQR is" in rows[1]["warnings"]


def test_frame_has_every_column_in_schema_order():
    rows, _ = results.cell_rows("r1", "tensorflow", _cell(), 1, _payload(), {"numpy": 0, "backend": 0})
    df = results.frame(rows)
    assert [c for c in df.columns if not c.startswith("size_")] == results.COLUMNS
    assert list(df.columns[8:11]) == ["size_batch", "size_features", "size_units"]
    assert set(df["path"]) <= set(PATHS)


def test_writer_is_incremental_atomic_and_round_trips(tmp_path):
    run_dir = tmp_path / "run1"
    w = results.RunWriter(run_dir, {"run_id": "run1", "command": "kbench run --model dense"})
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    rows, samples = results.cell_rows("run1", "tensorflow", _cell(), 1, _payload(), {"numpy": 0, "backend": 0})
    w.add(rows, samples)
    assert len(pd.read_csv(run_dir / "results.csv")) == 2  # on disk after the first cell already
    w.add(rows, samples)
    w.finish("complete")
    assert not list(run_dir.glob(".*.tmp")), "temporary files must be renamed away"
    data = results.load_run(run_dir)
    assert data.meta["status"] == "complete"
    assert len(data.results) == 4 and len(data.samples) == 40
    assert data.results["median_s"].iloc[1] == pytest.approx(4e-6)


def test_writer_refuses_to_reuse_a_folder(tmp_path):
    (tmp_path / "run1").mkdir()
    with pytest.raises(FileExistsError):
        results.RunWriter(tmp_path / "run1", {})


def test_load_refuses_unknown_schema(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"schema_version": 999}))
    with pytest.raises(SchemaError, match="schema version 999"):
        results.load_run(run_dir)


def test_resolve_run_by_folder_id_and_latest(tmp_path):
    for name in ("a", "b"):
        results.RunWriter(tmp_path / name, {"run_id": name})
    assert results.resolve_run(tmp_path / "a") == tmp_path / "a"
    assert results.resolve_run("a", tmp_path) == tmp_path / "a"
    assert results.resolve_run("latest", tmp_path) == tmp_path / "b"


@pytest.mark.parametrize("ref", ["missing", "notarun"])
def test_resolve_run_errors_are_one_line(tmp_path, ref):
    (tmp_path / "notarun").mkdir()
    with pytest.raises(RunNotFoundError) as err:
        results.resolve_run(ref, tmp_path)
    assert "\n" not in str(err.value)
    assert ("not a kbench run" in str(err.value)) == (ref == "notarun")


def test_latest_with_no_runs(tmp_path):
    with pytest.raises(RunNotFoundError, match="no runs"):
        results.resolve_run("latest", tmp_path)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1e-9, 1.0, allow_nan=False), min_size=1, max_size=60))
def test_a_sample_set_compared_with_itself_has_ratio_one(samples):
    payload = _payload()
    for row in payload["rows"]:
        row["samples"] = list(samples)
    rows, _ = results.cell_rows("r", "tensorflow", _cell(), 1, payload, {"numpy": 0, "backend": 0})
    call = rows[1]
    assert call["ratio_to_numpy"] == 1.0
    assert call["ratio_ci_low"] <= 1.0 <= call["ratio_ci_high"]
