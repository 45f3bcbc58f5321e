"""The Python API end to end, through a real TensorFlow worker process."""

import subprocess
import sys

import pytest

from conftest import WORKER_MODELS
from kbench import api
from kbench.core import errors
from kbench.measure.callpaths import DEFAULT_PATHS
from kbench.measure.callpaths import paths_for

PATHS = paths_for("tensorflow", DEFAULT_PATHS)  # what a default run measures
from kbench.store.results import COLUMNS, load_run
from kbench.measure.timer import TimerConfig

FAST = TimerConfig(budget_s=0.2, min_samples=3, target_ci=0.5, min_sample_s=0.001, warmup_s=0.005)


def test_quick_run_measures_every_path_with_parity(quick_run):
    result, events, _ = quick_run
    df = result.results
    assert result.ok, result.failures
    assert len(df) == 2 * len(PATHS)
    assert set(df["path"]) == set(PATHS)
    assert df["parity_ok"].all()
    assert (df["parity_max_rel_err"] <= df["parity_tol"]).all()
    assert (df["median_s"] > 0).all() and (df["n_samples"] >= 3).all()
    assert (df["q1_s"] <= df["median_s"]).all() and (df["median_s"] <= df["q3_s"]).all()
    assert (df["ci_low_s"] <= df["median_s"]).all() and (df["median_s"] <= df["ci_high_s"]).all()
    numpy = df[df["path"] == "numpy"]
    assert (numpy["ratio_to_numpy"] == 1).all()
    keras_rows = df[df["path"] != "numpy"]
    assert keras_rows["build_s"].gt(0).all() and numpy["build_s"].isna().all()
    assert df["first_call_s"].gt(0).all() and df["retrace_s"].gt(0).all()
    assert set(df["retrace_batch"]) == {2, 3}
    assert df["import_s"].gt(0).all()
    # each worker process streams its events in the documented order
    for process in (0, 1):
        kinds = [type(p.event).__name__ for p in events if p.process == process and type(p.event).__name__ != "Phase"]
        assert kinds[0] == "Imported" and kinds[-1] == "Exited" and kinds[-2] == "Done"
        assert kinds.count("CellDone") == 2 and "RuntimeInit" in kinds
    # two processes' samples are merged into one row, and each process's median is kept
    assert (df["n_processes"] == 2).all()
    assert df["process_medians_s"].map(len).eq(2).all()
    assert set(result.samples["process"]) == {0, 1}


def test_run_folder_holds_what_the_api_returned(quick_run):
    result, _, out = quick_run
    data = load_run(result.run_dir)
    assert data.meta["status"] == "complete"
    assert data.meta["command"] == "kbench run --model dense --batch 1,2"
    assert data.meta["env"]["backends"]["tensorflow"]["tensorflow"]
    assert data.meta["env"]["host"]["cpu"]
    assert data.meta["imports"]["tensorflow"]["backend"] > data.meta["imports"]["tensorflow"]["numpy"] > 0
    assert [c for c in data.results.columns if not c.startswith("size_")] == COLUMNS
    assert len(data.results) == len(result.results)
    assert len(data.samples) == int(result.results["n_samples"].sum())
    assert (result.run_dir / "worker-tensorflow.log").is_file()
    assert result.run_dir.parent == out
    assert data.meta["peak"]["gflops_float32"] > 0 and data.meta["skipped"] == []
    timed = data.results
    assert (timed["gflops"] > 0).all() and (timed["pct_peak_flops"] > 0).all()
    expected_bytes = 4 * (1 * 128 + 128 * 128 + 128 + 1 * 128)  # batch 1: x, kernel, bias, output in float32
    assert set(timed[timed["size_batch"] == 1]["bytes"]) == {expected_bytes}
    blas = [p for p in data.meta["env"]["backends"]["tensorflow"]["blas"] if p.get("internal_api") == "openblas"]
    assert set(timed["blas_threads"]) == {blas[0]["num_threads"]}  # NumPy's BLAS, as the worker's pools say


def test_parity_mode_times_nothing_and_writes_nothing(tmp_path):
    plan = api.plan(["dot"], sizes={"batch": "3"}, options={"normalize": "true"}, mode="parity")
    result = api.run(plan, None)
    assert result.run_dir is None
    assert result.ok and len(result.results) == len(PATHS)
    assert result.results["median_s"].isna().all()
    assert result.samples.empty


@pytest.mark.parametrize("model", ["nobias", "transposed"])
def test_planted_wrong_build_or_twin_fails_parity(model, tmp_path):
    plan = api.plan([model], timer=FAST, processes=1, models_dirs=[WORKER_MODELS])
    result = api.run(plan, tmp_path)
    df = result.results
    assert not result.ok and not result.parity_ok
    keras_rows = df[df["path"] != "numpy"]
    assert not keras_rows["parity_ok"].any()
    assert keras_rows["flags"].str.contains("parity_fail").all()
    assert (keras_rows["parity_max_rel_err"] > 100 * keras_rows["parity_tol"]).all()
    # the failure is recorded on disk too, and the timings are still there (flagged, not dropped)
    saved = load_run(result.run_dir).results
    assert not saved[saved["path"] != "numpy"]["parity_ok"].any()
    assert saved["median_s"].notna().all()


@pytest.mark.parametrize("model, words", [("kerasshape", "returns shape (2, 1)"), ("twinshape", "MODEL.output declares")])
def test_shape_disagreement_is_a_usage_error_and_writes_nothing(model, words, tmp_path):
    plan = api.plan([model], timer=FAST, processes=1, models_dirs=[WORKER_MODELS])
    with pytest.raises(errors.ModelShapeError) as err:
        api.run(plan, tmp_path)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_model_printing_to_stdout_does_not_break_the_protocol(tmp_path):
    plan = api.plan(["noisy"], timer=FAST, processes=1, models_dirs=[WORKER_MODELS])
    result = api.run(plan, tmp_path)
    assert result.ok and len(result.results) == len(PATHS)
    assert "noisy forward" in (result.run_dir / "worker-tensorflow.log").read_text()


def test_worker_failure_is_reported_not_raised(tmp_path):
    plan = api.plan(["crash"], timer=FAST, processes=1, models_dirs=[WORKER_MODELS])
    result = api.run(plan, tmp_path)
    assert not result.ok
    assert len(result.failures) == 1 and "planted failure inside build_keras" in result.failures[0]
    assert list(tmp_path.iterdir()) == []  # no cell finished, so no run folder


def test_finished_cells_are_kept_when_a_later_cell_fails(tmp_path):
    plan = api.plan(["dense", "crash"], sizes={"batch": "2"}, timer=FAST, processes=1, models_dirs=[WORKER_MODELS])
    result = api.run(plan, tmp_path)
    assert result.failures and "crash" in result.failures[0]
    saved = load_run(result.run_dir)
    assert saved.meta["status"] == "failed"
    assert set(saved.results["model"]) == {"dense"} and len(saved.results) == len(PATHS)


def test_environment_reads_backend_versions_from_a_worker():
    env = api.environment()
    assert env["backend"]["backend"] == "tensorflow"
    assert env["backend"]["tensorflow"] == env["host"]["packages"]["tensorflow"]
    assert env["imports"]["backend_s"] > 0


def test_list_models_has_the_builtins():
    names = {s.name for s in api.list_models()}
    assert {"dense", "dot", "matmul"} <= names


def test_parent_never_imports_tensorflow(tmp_path):
    code = (
        "import sys; from kbench import api; from kbench.cli import app; from kbench.measure.timer import TimerConfig\n"
        "plan = api.plan(['dense'], sizes={'batch': '1'}, mode='parity')\n"
        "r = api.run(plan, None)\n"
        "assert r.ok\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_a_run_budget_too_small_for_the_processes_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(errors.BadSizeError, match=r"--processes 3 cannot fit --budget 10s: 3 worker process\(es\)"):
        api.plan(["dense"], sizes={"batch": "1,2"}, timer=FAST, run_budget="10s", processes=3)
    with pytest.raises(errors.BadSizeError, match="--processes 1 cannot fit --budget 0.001s"):
        api.plan(["dense"], timer=FAST, run_budget="0.001s", processes=1)


@pytest.mark.parametrize("kwargs, words", [
    ({"processes": 0}, "--processes 0 must be a whole number of 1 or more"),
    ({"processes": -2}, "--processes -2 must be a whole number of 1 or more"),
    ({"processes": 50, "cell_budget": 0.1}, "--processes 50 leaves each process 0.002 s of the 0.1 s cell budget"),
    ({"cell_budget": 0}, "--cell-budget 0 must be more than 0 seconds"),
    ({"min_samples": 0}, "--min-samples 0 must be at least 1"),
    ({"target_ci": 1.5}, "--target-ci 1.5 must be a fraction between 0 and 1"),
    ({"cell_timeout": -1}, "--cell-timeout -1 must be more than 0 seconds"),
    ({"max_cells": 0}, "--max-cells 0 must be at least 1"),
])  # fmt: skip
def test_the_library_refuses_bad_timing_input_with_the_clis_words(kwargs, words):
    with pytest.raises(errors.UsageError) as err:
        api.plan(["dense"], **kwargs)
    assert str(err.value).startswith(words) and "\n" not in str(err.value)


def test_the_public_api_is_importable_from_the_package_and_cheap():
    code = ("import sys, kbench\n"
            "print(sorted(m for m in ('pandas', 'tensorflow', 'keras', 'rich') if m in sys.modules))\n"
            "plan = kbench.plan('dense', sizes={'batch': [1, 32]}, processes=2)\n"
            "print(plan.processes, [c.label for c in plan.cells], callable(kbench.run), callable(kbench.load_run))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "[]"
    assert second == "2 ['batch=1 features=128 units=128', 'batch=32 features=128 units=128'] True True"


@pytest.mark.parametrize("spawn", [False, True], ids=["forked", "spawned"])
def test_workers_forked_from_one_import_or_spawned_each_measure_every_process(spawn, tmp_path):
    plan = api.plan(["dense"], sizes={"batch": "4", "features": "8", "units": "8"}, timer=FAST, processes=3,
                    paths=["numpy", "call"], spawn=spawn)  # fmt: skip
    assert plan.fork is not spawn
    result = api.run(plan, tmp_path)
    assert result.ok, result.failures
    saved = load_run(result.run_dir)
    assert saved.meta["plan"]["workers"] == ("spawned" if spawn else "forked")
    assert sorted(set(saved.samples["process"])) == [0, 1, 2]
    assert len(saved.meta["runtime_init_s_per_process"]["tensorflow"]) == 3  # each process starts its runtime
    imports = saved.meta["imports_per_process"]["tensorflow"]
    assert len(imports) == (3 if spawn else 1) and all(i["backend"] > 0 for i in imports)  # forked: imported once
    logs = sorted(p.name for p in result.run_dir.glob("worker-*.log"))
    assert logs == ["worker-tensorflow-2.log", "worker-tensorflow-3.log", "worker-tensorflow.log"]
    assert all(len(r) == 3 for r in saved.results["process_medians_s"])
