"""The serving runtimes (issue 23): ONNX Runtime, LiteRT and OpenVINO as call paths of the TensorFlow worker, over the
file Keras' own ``model.export`` writes. Parity on a dense and a conv model with every setting recorded, the line a
missing runtime gets, the line a runtime that cannot take the model gets (the run goes on, its exit code unchanged),
the verdict that names the fastest way to serve, and the v3 -> v4 migration. No timed assertions."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from kbench import api
from kbench.backends import runtimes
from kbench.backends.base import PathContext
from kbench.cli import render
from kbench.core.errors import ExportError
from kbench.model.loader import load_model
from kbench.present import presentation
from kbench.store import migrations, schema
from kbench.store.results import load_run

from conftest import run_cli

RUNTIMES = ("onnxruntime", "litert", "openvino")


def need_runtimes() -> None:
    gone = {n: runtimes.missing(n) for n in RUNTIMES if runtimes.missing(n)}
    if gone:  # CI installs .[test,all], where a skip is a failure (tests/conftest.py)
        pytest.skip(f"serving runtimes not installed: {gone}")


@pytest.mark.parametrize("model, sizes", [("dense", {"batch": "3"}), ("conv1d", {"batch": "2"})])
def test_each_runtime_passes_parity_and_records_what_it_ran_with(model, sizes):
    need_runtimes()
    result = api.run(api.plan([model], sizes=sizes, mode="parity", runtimes="all", paths=["call"]), None)
    df = result.results.set_index("path")
    assert result.ok and set(RUNTIMES) <= set(df.index), result.failures
    for name in RUNTIMES:
        row = df.loc[name]
        assert bool(row["parity_ok"]), row["parity_message"]
        assert row["runtime"] and row["exporter"].startswith("keras ") and f'format="{name if name != "onnxruntime" else "onnx"}"' in row["exporter"]
        assert row["export_s"] > 0 and row["load_s"] > 0 and row["first_call_s"] > 0
        assert row["runtime_options"]["intra_op_threads"] >= 1
    assert df.loc["onnxruntime", "runtime_options"]["graph_optimization_level"] == runtimes.ORT_LEVEL
    assert "XNNPACK" in df.loc["litert", "runtime_options"]["delegate"]
    assert df.loc["litert", "runtime"].startswith(("ai-edge-litert", "tf.lite"))  # which interpreter ran
    assert df.loc["openvino", "runtime_options"]["inference_precision_hint"] == "f32"
    assert pd.isna(df.loc["call", "runtime"]) and pd.isna(df.loc["call", "export_s"])  # a Keras path has none


def test_runtimes_are_never_in_the_default_selection_and_are_asked_for_by_name_or_all():
    default = api.plan(["dense"]).paths
    assert not set(RUNTIMES) & set(default)
    if runtimes.missing("onnxruntime") is None:
        assert api.plan(["dense"], runtimes="onnxruntime,litert", paths=["call"]).paths == ("numpy", "call",
                                                                                            "onnxruntime", "litert")
    assert set(api.plan(["dense"], paths=["litert"]).paths) == {"numpy", "litert"}  # LiteRT needs only TensorFlow
    with pytest.raises(Exception, match="unknown runtime 'onnx'; did you mean 'onnxruntime'"):
        api.plan(["dense"], runtimes="onnx")


def test_a_run_with_a_runtime_has_no_time_goal_so_export_and_load_leave_its_sampling_alone():
    assert api.plan(["dense"]).cell_goal_s == 15.0
    assert api.plan(["dense"], runtimes="litert").cell_goal_s is None
    assert api.plan(["dense"], paths=["litert"]).cell_goal_s is None


def test_a_missing_runtime_is_skipped_with_one_line(monkeypatch):
    real = runtimes.importlib.util.find_spec
    monkeypatch.setattr(runtimes.importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    plan = api.plan(["dense"], runtimes="all", paths=["call"])
    assert "openvino" not in plan.paths and "litert" in plan.paths
    assert plan.unavailable == (("openvino", "openvino not installed; pip install 'kbench[openvino]'"),)
    out = io.StringIO()
    render.show_unavailable(Console(file=out, width=200), plan)
    assert out.getvalue().splitlines() == ["kbench: path 'openvino' skipped: openvino not installed; pip install "
                                           "'kbench[openvino]'"]  # fmt: skip


def test_runtimes_without_a_tensorflow_worker_are_skipped_with_the_fix():
    from kbench.orchestrate.planning import installed_paths

    kept, gone = installed_paths(("numpy", "call", "litert"), ("jax",))
    assert kept == ("numpy", "call")
    assert gone == (("litert", "a path of the TensorFlow worker (Keras exports from TensorFlow); add tensorflow to "
                                "--backend"),)  # fmt: skip
    assert installed_paths(("numpy", "litert"), ("jax", "tensorflow")) == (("numpy", "litert"), ())


class _Unexportable:
    """A model whose export fails as a converter does on an op it cannot take."""

    def export(self, *args, **kwargs):
        raise ValueError("Unsupported op: 'FancyOp'\nin node model/fancy")


def test_an_exporters_failure_is_an_export_error_with_its_reason(dense):
    ctx = PathContext(dense, {}, {"batch": 1, "features": 4, "units": 2}, {"activation": "linear"}, "float32")
    with pytest.raises(ExportError, match=r"^export failed: ValueError: Unsupported op: 'FancyOp' in node model/fancy$"):
        runtimes.prepare_for(runtimes.RUNTIMES["onnxruntime"])(ctx, _Unexportable())


def test_a_runtime_that_cannot_take_the_model_leaves_the_run_going_with_one_line(tmp_path):
    """OpenVINO's CPU plugin cannot infer in float64: that path alone is left out, the run's exit code stays 0."""
    need_runtimes()
    proc = run_cli("run", "--model", "dense", "--dtype", "float64", "--runtime", "openvino", "--path", "call",
                   "--quick", "--batch", "1", "--processes", "1", "--cell-budget", "0.2", "--no-report",
                   "--out", str(tmp_path), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if "path 'openvino'" in ln]
    assert lines == ["kbench: path 'openvino' left out (dense batch=1 features=128 units=128): load failed: "
                     "OpenVINO's CPU plugin infers in f32 at most, not float64"]  # fmt: skip
    run = load_run(next(p for p in tmp_path.iterdir() if p.is_dir()))
    assert set(run.results["path"]) == {"numpy", "call"}
    assert run.meta["unavailable_paths"][0]["path"] == "openvino"


def test_a_timed_run_with_every_runtime_names_the_fastest_way_to_serve(tmp_path):
    need_runtimes()
    proc = run_cli("run", "--model", "dense", "--runtime", "all", "--path", "compiled", "--quick", "--batch", "1",
                   "--processes", "1", "--cell-budget", "0.2", "--no-report", "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Serve with " in proc.stdout and "NumPy's time" in proc.stdout
    run = load_run(next(p for p in tmp_path.iterdir() if p.is_dir()))
    timed = run.results.set_index("path")
    assert set(RUNTIMES) <= set(timed.index) and timed.loc[list(RUNTIMES), "median_s"].gt(0).all()
    served = timed.loc[list(RUNTIMES)]  # where the time goes: each runtime's own steps, not TensorFlow's floor
    assert served["floor_name"].tolist() == [f"{n} run" for n in RUNTIMES] and served["compute_from"].eq("floor").all()
    assert served[["floor_s", "conversion_in_s", "conversion_out_s"]].gt(0).all().all()
    parts = served["floor_s"] + served["conversion_in_s"] + served["conversion_out_s"] + served["overhead_s"]
    assert (parts - served["median_s"]).abs().max() < 1e-12  # the parts add up to the path by construction
    assert timed.loc["compiled", "floor_name"] == "tf.function"


@pytest.mark.parametrize("name", RUNTIMES)
def test_a_runtimes_three_steps_are_its_own_call_taken_apart(name):
    """``bind`` then ``run`` then ``fetch`` on other inputs give what the timed call gives on those inputs: the
    run step infers on what bind bound (not on the inputs first bound), and fetch reads that run's output."""
    need_runtimes()
    from kbench.backends.base import RUNTIME_PARTS
    from kbench.measure.callpaths import PATHS
    from kbench.measure.cellinputs import prepare
    from kbench.measure.protocol import Cell

    sizes = (("batch", 3), ("features", 8), ("units", 5))
    inputs = prepare(Cell("dense", "", sizes, (("activation", "linear"),), "float32"), load_model("dense"), 0, "float32")
    served = inputs.build(PATHS[name], "tensorflow")
    first = np.asarray(served(inputs.inputs)())
    other = {k: (2.0 * v + 1.0).astype(v.dtype) for k, v in inputs.inputs.items()}
    expected = np.asarray(served(other)())
    steps = served.parts(other)
    assert tuple(steps) == RUNTIME_PARTS
    for step in RUNTIME_PARTS[:-1]:
        steps[step]()
    out = np.asarray(steps["fetch"]())
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(out, first)  # the other inputs were really bound


@pytest.mark.parametrize("name", RUNTIMES)
def test_a_runtime_binds_each_input_of_a_two_input_model(name):
    """matmul's a @ b through each runtime, against NumPy on two pairs of inputs: both inputs are bound on every
    call (LiteRT's one-input call has a path of its own, so the loop over inputs is tested here)."""
    need_runtimes()
    from kbench.measure.callpaths import PATHS
    from kbench.measure.cellinputs import prepare
    from kbench.measure.protocol import Cell

    inputs = prepare(Cell("matmul", "", (("n", 4),), (), "float32"), load_model("matmul"), 0, "float32")
    served = inputs.build(PATHS[name], "tensorflow")
    for scale in (1.0, 3.0):
        x = {k: (scale * v + k.startswith("b")).astype(v.dtype) for k, v in inputs.inputs.items()}
        np.testing.assert_allclose(np.asarray(served(x)()), x["a"] @ x["b"], rtol=1e-5, atol=1e-5)


def _cell(medians: dict[str, float]) -> pd.DataFrame:
    rows = [{"model": "dense", "backend": "tensorflow", "path": p, "sizes": "batch=1", "dtype": "float32",
             "options": {}, "size_batch": 1, "median_s": m, "ci_low_s": m, "ci_high_s": m, "iqr_s": 0.0,
             "ratio_to_numpy": m / medians["numpy"], "ratio_ci_low": m / medians["numpy"],
             "ratio_ci_high": m / medians["numpy"], "flops": 2 * 128 * 128, "parity_ok": True, "parity_tol": 2e-5,
             "parity_max_abs_err": 1e-7, "parity_max_rel_err": 2e-7, "parity_twin_max_abs_err": 0.0,
             "parity_message": "", "flags": [], "warnings": []} for p, m in medians.items()]  # fmt: skip
    return pd.DataFrame(rows)


def test_the_verdict_names_the_fastest_runtime_and_whether_the_twin_still_wins():
    df = _cell({"numpy": 5e-6, "compiled": 400e-6, "onnxruntime": 7e-6, "litert": 9e-6, "openvino": 90e-6})
    lines = presentation.build(presentation.prepare(df), {}).screen.verdicts
    assert "Serve with onnxruntime: 1.4× NumPy's time; the NumPy twin is fastest of all paths." in lines
    assert "If you must call Keras, use compiled." in lines  # a runtime is not a Keras path
    faster = _cell({"numpy": 5e-6, "compiled": 400e-6, "litert": 4e-6})
    assert "Serve with litert: 0.8× NumPy's time." in presentation.build(presentation.prepare(faster), {}).screen.verdicts


def test_v3_rows_migrate_with_empty_runtime_columns():
    raw = migrations.RawRun(3, {"schema_version": 3, "run_id": "v3"}, ({"schema_version": 3, "path": "call",
                                                                         "median_s": 1e-3},),
                            pd.DataFrame(columns=schema.SAMPLE_COLUMN_NAMES))  # fmt: skip
    out = migrations.migrate(raw)
    (row,) = out.rows
    assert out.version == schema.SCHEMA_VERSION and out.meta["unavailable_paths"] == []
    assert row["runtime"] is None and row["exporter"] is None and row["runtime_options"] == {}
    assert row["export_s"] is None and row["load_s"] is None and row["median_s"] == 1e-3
    assert {c.name for c in schema.RESULT_COLUMNS if c.since == 4} == {"runtime", "exporter", "runtime_options",
                                                                        "export_s", "load_s"}  # fmt: skip
    assert json.dumps(row)  # plain values
