"""The schema table: well formed, complete against what a v2 row carries and a written run holds, documented in the
docs/reference/schema.md exactly as :func:`kbench.store.schemadoc.markdown` renders it; values checked and migrations chained."""

import dataclasses
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from kbench.store import migrations, results, schema, schemadoc
from kbench.core.errors import SchemaError

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "schema.md"
MKDOCS = Path(__file__).resolve().parents[2] / "mkdocs.yml"
V2_ADDITIONS = {"n_processes", "process_medians_s", "ratio_process", "repeat_low_s", "repeat_high_s", "parity_culprit",
                "switch_warmup_calls", "peak_engine"}  # fmt: skip
V2_ADDITIONS |= {"conversion_in_s", "conversion_out_s", "overhead_s", "overhead_low_s", "overhead_high_s",
                 "dispatch_s"}  # where the time goes (kbench.measure.decompose)  # fmt: skip
V3_ADDITIONS = {"floor_s", "floor_name", "compute_s", "compute_from", "blas_threads"}  # v2's kernel_s, kernel_floor
V2_ADDITIONS |= schema.LATE_V2  # single calls, gaps, threads and memory (kbench.measure.latency)


def _timed_row(path: str, median: float, **over) -> dict:
    """A row as the v2 row builder makes it for a timed path of a dense cell measured by two worker processes."""
    row = {
        "run_id": "r1", "model": "dense", "backend": "tensorflow", "path": path,
        "sizes": "batch=32 features=128 units=128", "dtype": "float32", "options": {"activation": "linear"},
        "flops": 1_052_672,
        "size_batch": 32, "size_features": 128, "size_units": 128,
        "device": "cpu", "placement": "host", "precision": "float32",
        "parity_ok": True, "parity_tol": 2.2e-5, "parity_max_abs_err": 3e-7, "parity_max_rel_err": 4e-8,
        "parity_twin_max_abs_err": 0.0, "parity_message": "", "parity_culprit": "",
        "import_s": 3.5, "build_s": 0.006, "first_call_s": 0.05, "retrace_s": 0.06, "retrace_batch": 33,
        "cold_order": 1,
        "median_s": median, "q1_s": 0.9 * median, "q3_s": 1.1 * median, "iqr_s": 0.2 * median, "min_s": 0.8 * median,
        "max_s": 1.5 * median, "mean_s": median, "stdev_s": 0.1 * median, "ci_low_s": 0.95 * median,
        "ci_high_s": 1.05 * median, "repeat_low_s": 0.9 * median, "repeat_high_s": 1.1 * median, "n_samples": 40,
        "loops": 100, "stop_reason": "ci", "loop_overhead_pct": 0.4, "n_processes": 2,
        "process_medians_s": [0.99 * median, 1.01 * median], "switch_warmup_calls": 2,
        "ratio_to_numpy": median / 3e-6, "ratio_ci_low": 0.9 * median / 3e-6, "ratio_ci_high": 1.1 * median / 3e-6,
        "ratio_process": [0.98 * median / 3e-6, 1.02 * median / 3e-6],
        "bytes": 67_072, "gflops": 1_052_672 / median / 1e9, "gbps": 67_072 / median / 1e9, "pct_peak_flops": 12.0,
        "pct_peak_bw": 50.0, "peak_engine": "numpy", "flags": [], "warnings": [],
    }  # fmt: skip
    return {**row, **over}


def _parity_only_row() -> dict:
    """A `kbench run --mode parity` style row: nothing timed, a parity failure blamed on the twin."""
    row = {k: v for k, v in _timed_row("call", 1e-3).items() if not k.endswith("_s") or k in ("import_s", "build_s")}
    return {**row, "parity_ok": False, "parity_message": "error 1e-1 exceeds", "parity_culprit": "twin",
            "flags": ["parity_fail"], "warnings": ["parity failed: error 1e-1 exceeds"]}  # fmt: skip


def _samples(path: str, process: int) -> list[dict]:
    return [{"run_id": "r1", "model": "dense", "backend": "tensorflow", "path": path,
             "sizes": "batch=32 features=128 units=128", "dtype": "float32", "process": process, "sample": i,
             "loops": 100, "seconds": 3e-6} for i in range(2)]  # fmt: skip


def _page_body() -> str:
    """The docs' schema page below its generated header: the rendered table, as ``schemadoc.markdown()`` writes it."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.find("Schema version ")
    assert start > 0, "docs/reference/schema.md has no rendered schema; run `python docs/gen/schema_page.py`"
    return text[start:].rstrip("\n")


def test_the_docs_page_is_the_rendered_table():
    assert _page_body() == schemadoc.markdown().rstrip("\n"), (
        "docs/reference/schema.md differs from kbench.store.schemadoc.markdown(): run `python docs/gen/schema_page.py`"
    )
    for c in schema.RESULT_COLUMNS + schema.SAMPLE_COLUMNS + schema.RUN_FIELDS:
        assert f"| `{c.name}`" in _page_body()


def test_the_schema_page_is_in_the_docs_navigation():
    assert "reference/schema.md" in MKDOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize("table", [schema.RESULT_COLUMNS, schema.SAMPLE_COLUMNS, schema.RUN_FIELDS])
def test_tables_are_well_formed(table):
    names = [c.name for c in table]
    assert len(names) == len(set(names))
    for c in table:
        assert c.dtype in schema.DTYPES and c.since in range(1, schema.SCHEMA_VERSION + 1)
        assert re.fullmatch(r"[a-z][a-z0-9_]*(<name>)?", c.name), c.name
        one_sentence = c.meaning.endswith(".") and not re.search(r"\. [A-Z]", c.meaning) and "\n" not in c.meaning
        assert (c.meaning[0].isupper() or c.meaning[0] == "`") and one_sentence, c.name


def test_v1_columns_and_v2_additions_are_declared():
    declared = {c.name for c in schema.RESULT_COLUMNS}
    assert set(migrations.V1_COLUMNS) <= declared
    assert {c.name for c in schema.RESULT_COLUMNS if c.since == 2} == V2_ADDITIONS
    assert {c.name for c in schema.RESULT_COLUMNS if c.since == 3} == V3_ADDITIONS
    assert {c.name for c in schema.SAMPLE_COLUMNS if c.since == 2} == {"process", "threads"}
    assert set(migrations.V1_SAMPLE_COLUMNS) | {"process", "threads"} == set(schema.SAMPLE_COLUMN_NAMES)
    assert schema.column("size_batch").name == "size_<name>" and schema.column("size_") is None
    assert schema.column("sizes").name == "sizes" and schema.column("size_Batch") is None


def test_run_meta_fields_are_the_declared_run_fields():
    fields = [f.name for f in dataclasses.fields(results.RunMeta) if f.name != "extra"]
    assert fields == [c.name for c in schema.RUN_FIELDS]


def test_every_column_a_v2_row_carries_is_declared_and_every_declared_column_is_written(tmp_path):
    rows = [_timed_row("numpy", 3e-6, ratio_to_numpy=1.0), _timed_row("call", 1e-3), _parity_only_row()]
    samples = _samples("numpy", 0) + _samples("call", 0) + _samples("call", 1)
    for row in rows:
        assert all(schema.column(k) is not None for k in row), [k for k in row if schema.column(k) is None]
    w = results.RunWriter(tmp_path / "r1", {"run_id": "r1", "command": "kbench run --model dense"})
    w.put_cell(("tensorflow", 0), rows, samples)
    run_dir = tmp_path / "r1"
    written = json.loads((run_dir / "results.json").read_text())
    assert written["schema_version"] == schema.SCHEMA_VERSION and len(written["rows"]) == 3
    sizes = {"size_batch", "size_features", "size_units"}
    expected = set(schema.COLUMNS) | sizes
    assert all(set(r) == expected for r in written["rows"])
    assert set(pd.read_csv(run_dir / "results.csv").columns) == expected
    assert list(pd.read_csv(run_dir / "samples.csv").columns) == schema.SAMPLE_COLUMN_NAMES
    assert set(json.loads((run_dir / "run.json").read_text())) >= {c.name for c in schema.RUN_FIELDS}
    assert written["rows"][1]["process_medians_s"] == rows[1]["process_medians_s"]  # a list on disk, not text


def test_csv_export_is_flat_and_the_schema_page_says_how():
    flat = results.flat_frame([_timed_row("call", 1e-3, flags=["unstable", "ci_not_reached"])])
    assert flat["flags"].iloc[0] == "unstable;ci_not_reached"
    assert json.loads(flat["options"].iloc[0]) == {"activation": "linear"}
    assert flat["process_medians_s"].iloc[0].count(schema.LIST_SEPARATOR) == 1
    assert f"joined with `{schema.LIST_SEPARATOR}`" in " ".join(_page_body().split())


@pytest.mark.parametrize("name, value, expected", [
    ("flags", "parity_fail;unstable", ["parity_fail", "unstable"]),  # v1's joined text
    ("flags", "", []),
    ("warnings", "a; b | c", ["a; b", "c"]),
    ("warnings", None, []),
    ("options", '{"normalize": false}', {"normalize": False}),
    ("options", float("nan"), {}),
    ("process_medians_s", (1, 2.5), [1.0, 2.5]),
    ("n_processes", 2.0, 2),
    ("parity_culprit", math.nan, None),
    ("parity_ok", True, True),
])  # fmt: skip
def test_values_are_coerced_to_their_declared_type(name, value, expected):
    got = schema.coerce_value(schema.column(name), value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name, value", [("flags", 3), ("process_medians_s", ["x"]), ("options", "[1]"),
                                         ("options", "{not json"), ("n_processes", 1.5), ("median_s", True),
                                         ("model", 5), ("parity_ok", 1)])  # fmt: skip
def test_values_of_the_wrong_type_are_refused(name, value):
    with pytest.raises(SchemaError, match=f"'{name}'"):
        schema.coerce_value(schema.column(name), value)


def test_ordered_places_a_family_where_the_table_declares_it():
    names = ["warnings", "size_units", "model", "zzz_undeclared", "size_batch", "options", "run_id"]
    assert schema.ordered(names) == ["run_id", "model", "options", "size_batch", "size_units", "warnings",
                                     "zzz_undeclared"]  # fmt: skip


@pytest.mark.parametrize("table", [schema.RESULT_COLUMNS, schema.SAMPLE_COLUMNS, schema.RUN_FIELDS])
def test_the_indexed_lookup_finds_what_a_scan_of_the_table_finds(table):
    names = [c.name for c in table] + ["size_batch", "size_units", "size_", "zzz_undeclared", "Model", "size_Batch"]
    for name in names:
        scanned = next((c for c in table if c.matches(name)), None)
        assert schema.column(name, table) is scanned, name
        assert schema.column(name, list(table)) is scanned, name  # any other sequence: the scan itself


def test_migrations_form_a_chain_to_the_current_version():
    assert sorted(migrations.MIGRATIONS) == list(range(1, schema.SCHEMA_VERSION))
    v1_row = {c: None for c in migrations.V1_COLUMNS} | {"schema_version": 1, "flags": "unstable", "warnings": "w",
                                                     "options": "{}", "median_s": 2e-6, "ratio_to_numpy": 2.0}
    samples = pd.DataFrame([{c: 0 for c in migrations.V1_SAMPLE_COLUMNS}])
    raw = migrations.RawRun(1, {"schema_version": 1, "run_id": "old"}, (v1_row,), samples)
    out = migrations.migrate(raw)
    assert out.version == schema.SCHEMA_VERSION and out.meta["schema_version"] == schema.SCHEMA_VERSION
    (row,) = out.rows
    assert row["flags"] == ["unstable"] and row["warnings"] == ["w"] and row["options"] == {}
    assert row["n_processes"] == 1 and row["process_medians_s"] == [2e-6] and row["ratio_process"] == [2.0]
    assert row["peak_engine"] is None and row["repeat_low_s"] is None  # v1 had no peak figure for this row
    assert list(out.samples.columns) == schema.SAMPLE_COLUMN_NAMES and out.samples["process"].tolist() == [0]
    assert raw.rows[0]["flags"] == "unstable" and "process" not in raw.samples  # the input is left as it was


def test_v2_rows_get_compute_and_the_floor_under_its_v3_names():
    base = {"schema_version": 2, "path": "xla", "median_s": 3e-4}
    raw = migrations.RawRun(2, {"schema_version": 2, "run_id": "v2"}, (
        {**base, "kernel_s": 2.5e-4, "kernel_floor": "xla", "dispatch_s": 2.0e-4},
        {**base, "path": "compiled", "kernel_s": 1e-4, "kernel_floor": "torch.jit.trace", "dispatch_s": None},
        {**base, "path": "numpy"}), pd.DataFrame(columns=schema.SAMPLE_COLUMN_NAMES))  # fmt: skip
    tf_row, torch_row, numpy_row = migrations.migrate(raw).rows
    assert "kernel_s" not in tf_row and "kernel_floor" not in tf_row
    assert (tf_row["floor_s"], tf_row["floor_name"], tf_row["compute_from"]) == (2.5e-4, "xla", "floor-dispatch")
    assert tf_row["compute_s"] == pytest.approx(0.5e-4) and tf_row["blas_threads"] is None
    assert (torch_row["compute_s"], torch_row["compute_from"]) == (1e-4, "floor")  # no dispatch to subtract
    assert numpy_row["floor_s"] is None and numpy_row["compute_s"] is None and numpy_row["compute_from"] is None


def test_a_missing_migration_is_refused():
    with pytest.raises(SchemaError, match="no migration from results schema version 0"):
        migrations.migrate(migrations.RawRun(0, {}, (), pd.DataFrame()))


def test_v4_rows_get_an_empty_others_cpu_and_no_contended_flag():
    raw = migrations.RawRun(4, {"schema_version": 4, "run_id": "v4"}, ({"schema_version": 4, "path": "call",
                                                                         "median_s": 1e-3, "flags": ["unstable"]},),
                            pd.DataFrame(columns=schema.SAMPLE_COLUMN_NAMES))  # fmt: skip
    out = migrations.migrate(raw)
    (row,) = out.rows
    assert out.version == schema.SCHEMA_VERSION and out.meta["schema_version"] == schema.SCHEMA_VERSION
    assert row["others_cpu"] is None and row["flags"] == ["unstable"] and row["median_s"] == 1e-3
    assert {c.name for c in schema.RESULT_COLUMNS if c.since == 5} == {"others_cpu"}
