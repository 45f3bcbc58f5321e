import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kbench.store import results, schema
from kbench.orchestrate import rows as rows_mod
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import CellDone, PathResult
from kbench.orchestrate.rows import CellFacts
from kbench.core.errors import SchemaError
from kbench.measure.callpaths import PATHS
from kbench.measure.protocol import Cell


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


def _done(payload) -> CellDone:
    """The old payload shape as the worker's typed record (one process)."""
    paths = []
    for r in payload["rows"]:
        parity = ParityResult(r["path"], r["parity_ok"], r["parity_tol"], r["parity_max_abs_err"],
                              r["parity_max_rel_err"], r["parity_twin_max_abs_err"], r["parity_message"])
        paths.append(PathResult(r["path"], r["order"], r["build_s"], r["first_call_s"], parity, "cpu", "host", "float32",
                                tuple(r["samples"]), r["loops"], r["stop_reason"], r["loop_overhead_s"],
                                r["fixed_overhead_s"], 0, r["retrace_s"], r["retrace_batch"]))
    return CellDone(0, tuple(paths), tuple(payload["cold_order"]))


def cell_rows(run_id, backend, cell, flops, payload, imports, nbytes=0, peak=None):
    return rows_mod.cell_rows(CellFacts(run_id, backend, cell, flops, nbytes, imports, peak), {0: _done(payload)})


def test_cell_rows_compute_stats_ratio_and_keep_samples():
    rows, samples = cell_rows("r1", "tensorflow", _cell(), 123, _payload(), {"numpy": 0.05, "backend": 3.0})
    assert [r["path"] for r in rows] == ["numpy", "call"]
    numpy_row, call_row = rows
    assert numpy_row["median_s"] == pytest.approx(1e-6)
    assert call_row["median_s"] == pytest.approx(4e-6)
    assert call_row["ratio_to_numpy"] == pytest.approx(4.0)
    assert call_row["ratio_ci_low"] <= call_row["ratio_to_numpy"] <= call_row["ratio_ci_high"]
    assert numpy_row["import_s"] == 0.05 and call_row["import_s"] == 3.0
    assert math.isnan(numpy_row["build_s"]) and call_row["build_s"] == 0.01
    assert call_row["size_batch"] == 4 and call_row["sizes"] == "batch=4 features=8 units=8"
    assert call_row["options"] == {"activation": "relu"}
    assert call_row["loop_overhead_pct"] == pytest.approx(100 * 3e-8 / 4e-6)
    assert len(samples) == 20 and {s["path"] for s in samples} == {"numpy", "call"}
    assert call_row["flags"] == []


def test_parity_failure_is_flagged_with_its_reason():
    rows, _ = cell_rows("r1", "tensorflow", _cell(), 1, _payload(parity_ok=False), {"numpy": 0, "backend": 0})
    bad = rows[1]
    assert bad["parity_ok"] is False
    assert "parity_fail" in bad["flags"]
    assert any("parity failed: error 1e-1 exceeds" in w for w in bad["warnings"])


def test_unstable_cell_is_flagged():
    p = _payload()
    p["rows"][0]["samples"] = [1e-6, 2e-6] * 5
    rows, _ = cell_rows("r1", "tensorflow", _cell(), 1, p, {"numpy": 0, "backend": 0})
    assert "unstable" in rows[1]["flags"]
    assert any("IQR is" in w for w in rows[1]["warnings"])


def test_frame_has_every_column_in_schema_order():
    rows, _ = cell_rows("r1", "tensorflow", _cell(), 1, _payload(), {"numpy": 0, "backend": 0})
    df = results.frame(rows)
    assert [c for c in df.columns if not c.startswith("size_")] == results.COLUMNS
    sizes = list(df.columns).index("options") + 1  # the size_<name> family sits where the table declares it
    assert list(df.columns[sizes:sizes + 3]) == ["size_batch", "size_features", "size_units"]
    assert set(df["path"]) <= set(PATHS)


def test_writer_is_incremental_atomic_and_round_trips(tmp_path):
    run_dir = tmp_path / "run1"
    w = results.RunWriter(run_dir, {"run_id": "run1", "command": "kbench run --model dense"})
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    rows, samples = cell_rows("run1", "tensorflow", _cell(), 1, _payload(), {"numpy": 0, "backend": 0})
    w.add(rows, samples)
    assert len(pd.read_csv(run_dir / "results.csv")) == 2  # on disk after the first cell already
    assert len(json.loads((run_dir / "results.json").read_text())["rows"]) == 2
    w.add(rows, samples)
    w.finish("complete")
    assert not list(run_dir.glob(".*.tmp")), "temporary files must be renamed away"
    data = results.load_run(run_dir)
    assert data.meta["status"] == "complete" and data.meta.status == "complete"
    assert isinstance(data.meta, results.RunMeta) and data.source_version == results.SCHEMA_VERSION
    assert len(data.results) == 4 and len(data.samples) == 40
    assert data.results["median_s"].iloc[1] == pytest.approx(4e-6)
    # cell_rows' joined strings are stored as lists, its options JSON as an object
    assert data.results["flags"].iloc[1] == [] and data.results["options"].iloc[1] == {"activation": "relu"}
    assert (data.results["schema_version"] == results.SCHEMA_VERSION).all()


def test_writer_refuses_to_reuse_a_folder(tmp_path):
    (tmp_path / "run1").mkdir()
    with pytest.raises(FileExistsError):
        results.RunWriter(tmp_path / "run1", {})


def test_load_refuses_unknown_schema(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"schema_version": 999}))
    with pytest.raises(SchemaError, match="schema version 999") as err:
        results.load_run(run_dir)
    assert "\n" not in str(err.value) and "upgrade kbench" in str(err.value)


@pytest.mark.parametrize("version", [0, "2", None, True, 1.5])
def test_load_refuses_a_version_no_kbench_wrote(tmp_path, version):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"schema_version": version}))
    with pytest.raises(SchemaError, match="damaged") as err:
        results.load_run(run_dir)
    assert "\n" not in str(err.value)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1e-9, 1.0, allow_nan=False), min_size=1, max_size=60))
def test_a_sample_set_compared_with_itself_has_ratio_one(samples):
    payload = _payload()
    for row in payload["rows"]:
        row["samples"] = list(samples)
    rows, _ = cell_rows("r", "tensorflow", _cell(), 1, payload, {"numpy": 0, "backend": 0})
    call = rows[1]
    assert call["ratio_to_numpy"] == 1.0
    assert call["ratio_ci_low"] <= 1.0 <= call["ratio_ci_high"]


# -- schema v2: files, migration from v1, typed metadata ------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1-20261126-081219-dense-dot"
TRICKY = ["a;b", "x | y", 'say "hi", then \'bye\'', "line 1\nline 2\r\n", "ünïcødé ✓ 日本語 🙂", "", "NA", "nan",
          "null"]  # fmt: skip
VALUE = {"int": 7, "float": 0.125, "bool": True, "str": "text", "list[str]": ["one", "two"],
         "list[float]": [1.5e-6, 2.0e-6], "dict": {"activation": "relu"}}  # fmt: skip


def _v2_row(path="call", model="dense", sizes="batch=4", **over):
    """A row with every declared column set to a value of its type (the size family as size_batch)."""
    row = {c.name: VALUE[c.dtype] for c in schema.RESULT_COLUMNS if not c.is_family}
    row.update(schema_version=schema.SCHEMA_VERSION, run_id="run1", model=model, backend="tensorflow", path=path, sizes=sizes,
               dtype="float32", size_batch=4, parity_ok=path != "bad")  # fmt: skip
    return {**row, **over}


def _samples(model="dense", sizes="batch=4", path="call", process=0, n=3):
    return [{"run_id": "run1", "model": model, "backend": "tensorflow", "path": path, "sizes": sizes,
             "dtype": "float32", "process": process, "sample": i, "loops": 10, "seconds": 1e-6 * (i + 1)}
            for i in range(n)]  # fmt: skip


def _same(loaded, written) -> bool:
    """Equal value and type: a list stays a list, an int an int, a missing value comes back missing."""
    if written is None or (isinstance(written, float) and math.isnan(written)):
        return not isinstance(loaded, (list, dict)) and pd.isna(loaded)
    if isinstance(written, bool):
        return isinstance(loaded, (bool, np.bool_)) and loaded == written
    if isinstance(written, int):
        return isinstance(loaded, (int, np.integer)) and not isinstance(loaded, (bool, np.bool_)) and loaded == written
    if isinstance(written, float):
        return isinstance(loaded, (float, np.floating)) and loaded == written
    return type(loaded) is type(written) and loaded == written


def _assert_round_trip(frame: pd.DataFrame, written: list[dict]) -> None:
    assert len(frame) == len(written)
    for i, row in enumerate(written):
        for name, value in row.items():
            assert _same(frame[name].iloc[i], value), (i, name, frame[name].iloc[i], value)


def test_golden_v1_run_loads_as_v2_data_and_is_never_rewritten():
    before = {p.name: p.read_bytes() for p in GOLDEN.iterdir()}
    data = results.load_run(GOLDEN)
    direct = pd.read_csv(GOLDEN / "results.csv")
    df = data.results
    assert data.source_version == 1 and (df["schema_version"] == results.SCHEMA_VERSION).all()
    assert len(df) == len(direct) == 24 and len(data.samples) == len(pd.read_csv(GOLDEN / "samples.csv")) == 826
    for col in ("model", "backend", "path", "sizes", "dtype", "stop_reason"):
        assert list(df[col]) == list(direct[col])
    for col in ("median_s", "ci_low_s", "ratio_to_numpy", "ratio_ci_high", "gflops", "build_s"):
        np.testing.assert_array_equal(df[col].to_numpy(), direct[col].to_numpy())  # exact; NaN where v1 had none
    assert list(df["size_batch"]) == list(direct["size_batch"]) and df["size_batch"].dtype == "int64"
    # dot has no units: v1 read that column as floats, v2 keeps ints and marks the gaps
    assert df["size_units"].dtype == "Int64" and df["size_units"].isna().sum() == direct["size_units"].isna().sum() > 0
    assert list(df["size_units"].dropna()) == list(direct["size_units"].dropna()) == [128] * 12
    assert list(df["flags"]) == [f.split(";") if isinstance(f, str) else [] for f in direct["flags"]]
    assert list(df["warnings"]) == [w.split(" | ") if isinstance(w, str) else [] for w in direct["warnings"]]
    assert max(map(len, df["warnings"])) == 2  # a row with two warnings comes out as two list items
    assert list(df["options"]) == [json.loads(o) for o in direct["options"]]
    assert {"activation": "linear"} in list(df["options"]) and {"normalize": False} in list(df["options"])
    # v2 columns: one process per backend in v1, the rest empty
    assert (df["n_processes"] == 1).all()
    assert list(df["process_medians_s"]) == [[m] for m in direct["median_s"]]
    assert list(df["ratio_process"]) == [[r] for r in direct["ratio_to_numpy"]]
    assert set(df["peak_engine"]) == {"numpy"}
    assert df[["repeat_low_s", "repeat_high_s", "switch_warmup_calls"]].isna().all().all()
    assert df["parity_culprit"].isna().all()
    assert (data.samples["process"] == 0).all() and list(data.samples.columns) == results.SAMPLE_COLUMNS
    assert data.meta.backends == ("tensorflow",) and data.meta.status == "complete"
    assert data.meta["backend"] == "tensorflow" and data.meta.extra["worker_pid"] == {"tensorflow": 3775}
    assert {p.name: p.read_bytes() for p in GOLDEN.iterdir()} == before


def test_run_meta_keeps_every_key_of_a_run_json():
    raw = json.loads((GOLDEN / "run.json").read_text())
    meta = results.RunMeta.from_json(raw)
    written = meta.to_json()
    assert {k: written[k] for k in raw} == raw  # every key kept, values equal
    added = {c.name for c in schema.RUN_FIELDS if c.since >= 2}
    assert set(written) - set(raw) <= added  # only later versions' fields are new, at their defaults
    assert results.RunMeta.from_json(meta.to_json()) == meta
    assert meta.peak["gemm_n"] == 1024 and meta.imports["tensorflow"]["numpy"] > 0
    assert meta.failed_cells == () and meta.finished == "2026-11-26T08:12:46"


def test_run_meta_reads_like_the_dict_it_replaces():
    meta = results.RunMeta.from_json({"schema_version": schema.SCHEMA_VERSION, "run_id": "r", "skipped": [{"model": "m"}],
                                      "peak": None, "worker_pid": {"tensorflow": 1}})  # fmt: skip
    assert meta["skipped"] == [{"model": "m"}] and meta["failed_cells"] == []  # lists, as in run.json
    assert meta["worker_pid"] == {"tensorflow": 1} and meta.get("worker_pid") == {"tensorflow": 1}
    assert meta.get("peak") is None and meta.get("peak", {}) == {} and "peak" not in meta
    assert meta.get("no_such_key", 3) == 3 and "run_id" in meta
    with pytest.raises(KeyError):
        meta["no_such_key"]
    assert meta.updated(status="complete", custom=[1]).to_json()["custom"] == [1]
    assert dict(meta) == meta.to_json() and dict(meta)["skipped"] == [{"model": "m"}]
    with pytest.raises(TypeError):
        meta["status"] = "complete"  # read only: use meta.updated(status=...)


@pytest.mark.parametrize("field, value", [("backends", 3), ("schema_version", "2"), ("skipped", ["x"]),
                                          ("plan", []), ("status", None)])  # fmt: skip
def test_run_meta_refuses_a_field_of_the_wrong_type(field, value):
    with pytest.raises(SchemaError, match=field):
        results.RunMeta.from_json({"schema_version": 2, field: value})


def test_v2_round_trip_keeps_values_types_and_awkward_strings(tmp_path):
    rows = [
        _v2_row(model="dense", warnings=TRICKY, flags=TRICKY[:3], parity_message=TRICKY[3],
                options={"activation": "relu", "note": TRICKY[4], "x": [1, 2]}, stop_reason=""),
        _v2_row(path="bad", model=TRICKY[0], size_batch=None, median_s=None, retrace_batch=None, parity_culprit=None,
                process_medians_s=[], warnings=[], options={}),
        _v2_row(path="numpy", model=TRICKY[3], sizes=TRICKY[4]),
    ]  # fmt: skip
    samples = [*_samples(), *_samples(model=TRICKY[3], sizes=TRICKY[4], process=1), *_samples(model="")]
    w = results.RunWriter(tmp_path / "run1", {"run_id": "run1", "command": f"kbench run --model '{TRICKY[2]}'"})
    w.add(rows, samples)
    data = results.load_run(tmp_path / "run1")
    _assert_round_trip(data.results, rows)
    _assert_round_trip(data.samples, samples)
    assert data.meta.command == f"kbench run --model '{TRICKY[2]}'"
    assert [c for c in data.results.columns if not c.startswith("size_")] == results.COLUMNS


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(), max_size=5), st.lists(st.floats(allow_nan=False), max_size=4), st.text())
def test_any_text_and_number_lists_round_trip(texts, numbers, word):
    row = _v2_row(warnings=texts, flags=texts[:2], process_medians_s=numbers, parity_message=word,
                  options={word: texts})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        results.RunWriter(Path(tmp) / "r", {"run_id": "r"}).add([row], _samples(model=word))
        data = results.load_run(Path(tmp) / "r")
    _assert_round_trip(data.results, [row])
    _assert_round_trip(data.samples, _samples(model=word))


def test_put_cell_replaces_only_that_cell(tmp_path):
    w = results.RunWriter(tmp_path / "run1", {"run_id": "run1"})
    a, b = ("tensorflow", 0), ("tensorflow", 1)
    w.put_cell(a, [_v2_row(sizes="batch=4"), _v2_row(path="numpy", sizes="batch=4")], _samples(sizes="batch=4"))
    w.put_cell(b, [_v2_row(sizes="batch=8", size_batch=8)], _samples(sizes="batch=8", n=5))
    # a second worker process has finished cell a: its rows now merge both processes' samples
    merged = _v2_row(sizes="batch=4", n_processes=2, process_medians_s=[1e-6, 2e-6])
    w.put_cell(a, [merged], _samples(sizes="batch=4") + _samples(sizes="batch=4", process=1))
    data = results.load_run(tmp_path / "run1")
    assert list(data.results["sizes"]) == ["batch=4", "batch=8"]  # cell a keeps its place, its old rows are gone
    assert list(data.results["n_processes"]) == [2, 7] and data.results["process_medians_s"].iloc[0] == [1e-6, 2e-6]
    counts = data.samples.groupby(["sizes", "process"]).size().to_dict()
    assert counts == {("batch=4", 0): 3, ("batch=4", 1): 3, ("batch=8", 0): 5}
    w.add([_v2_row(sizes="batch=16", size_batch=16)], [])
    assert list(results.load_run(tmp_path / "run1").results["sizes"]) == ["batch=4", "batch=8", "batch=16"]


@pytest.mark.parametrize("row, words", [({"bogus": 1}, "'bogus' is not declared"), ({"flags": 5}, "'flags'"),
                                        ({"n_samples": 2.5}, "'n_samples'"), ({"parity_ok": "yes"}, "'parity_ok'")])
def test_writer_refuses_undeclared_columns_and_wrong_types(tmp_path, row, words):
    w = results.RunWriter(tmp_path / "run1", {"run_id": "run1"})
    with pytest.raises(SchemaError, match=words):
        w.add([_v2_row(**row)], [])
    assert not (tmp_path / "run1" / "results.json").exists()


def test_writer_meta_is_typed_and_keeps_the_callers_nested_dicts(tmp_path):
    meta = {"run_id": "run1", "env": {"backends": {}}, "imports": {}, "worker_pid": {}}
    w = results.RunWriter(tmp_path / "run1", meta)
    assert isinstance(w.meta, results.RunMeta) and w.meta.status == "running" and w.meta.schema_version == schema.SCHEMA_VERSION
    meta["env"]["backends"]["jax"] = {"backend": "jax"}  # what the run adds after the first cell
    meta["worker_pid"]["jax"] = 12
    w.finish("complete", failures=["x"], imports_per_process={"jax": []})
    saved = json.loads((tmp_path / "run1" / "run.json").read_text())
    assert saved["env"]["backends"] == {"jax": {"backend": "jax"}} and saved["worker_pid"] == {"jax": 12}
    assert saved["status"] == "complete" and saved["failures"] == ["x"] and saved["imports_per_process"] == {"jax": []}


def _v2_run(tmp_path) -> Path:
    w = results.RunWriter(tmp_path / "run1", {"run_id": "run1"})
    w.add([_v2_row(), _v2_row(path="numpy")], _samples())
    return tmp_path / "run1"


def _edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


DAMAGE = {
    "truncated results.json": lambda d: (d / "results.json").write_text((d / "results.json").read_text()[:200]),
    "results.json a list": lambda d: (d / "results.json").write_text("[]"),
    "row without median_s": lambda d: _edit_json(d / "results.json", lambda j: j["rows"][0].pop("median_s")),
    "text in a number column": lambda d: _edit_json(d / "results.json", lambda j: j["rows"][1].update(median_s="fast")),
    "a number in a list column": lambda d: _edit_json(d / "results.json", lambda j: j["rows"][1].update(flags=3)),
    "results.json of another version": lambda d: _edit_json(d / "results.json", lambda j: j.update(schema_version=1)),
    "samples.csv without seconds": lambda d: (d / "samples.csv").write_text("run_id,model\nr,m\n"),
    "text in samples' seconds": lambda d: (d / "samples.csv").write_text(
        (d / "samples.csv").read_text().replace("1e-06", "soon")),
    "samples.csv not text": lambda d: (d / "samples.csv").write_bytes(b"\xff\xfe\x00garbage"),
    "run.json with a bad field": lambda d: _edit_json(d / "run.json", lambda j: j.update(backends=3)),
}  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_files_are_refused_in_one_line(tmp_path, damage):
    run_dir = _v2_run(tmp_path)
    assert len(results.load_run(run_dir).results) == 2
    DAMAGE[damage](run_dir)
    with pytest.raises(SchemaError) as err:
        results.load_run(run_dir)
    message = str(err.value)
    assert "\n" not in message and ("damaged" in message or "lacks the columns" in message), message


def test_a_damaged_v1_folder_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"schema_version": 1, "run_id": "old", "status": "complete"}))
    (run_dir / "results.csv").write_text("model,path\ndense,call\n")
    with pytest.raises(SchemaError, match="lacks the columns") as err:
        results.load_run(run_dir)
    assert "\n" not in str(err.value)
