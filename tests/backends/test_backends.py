"""The JAX and PyTorch backends on the CPU: every path they implement, parity first, through real workers.

Skips locally when a backend is not installed; in CI (CI set) a missing backend is a failure, since .ci/run
installs both.
"""

import importlib.util
import os

import pytest

from kbench import api
from kbench.core import errors
from kbench.measure.callpaths import PATHS, paths_for
from kbench.store.results import load_run
from kbench.measure.timer import TimerConfig

FAST = TimerConfig(budget_s=0.2, min_samples=3, target_ci=0.5, min_sample_s=0.001, warmup_s=0.005)


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the {module} backend; .ci/run installs it")
        pytest.skip(f"{module} is not installed (pip install 'kbench[{module}]')")


@pytest.mark.parametrize("backend, models", [("jax", ["dense", "dot", "matmul"]), ("torch", ["dense"])])
def test_backend_paths_agree_with_numpy_and_are_timed(backend, models, tmp_path):
    need(backend)
    sizes = {"batch": "2", **({"n": "8"} if "matmul" in models else {})}
    plan = api.plan(models, sizes=sizes, timer=FAST, processes=1, backends=[backend])
    result = api.run(plan, tmp_path)
    df = result.results
    assert result.ok, result.failures
    expected = set(paths_for(backend, tuple(PATHS)))
    assert "xla" not in expected and "compiled" in expected
    for model in models:
        assert set(df[df["model"] == model]["path"]) == expected
    assert df["parity_ok"].all() and (df["backend"] == backend).all()
    assert (df["median_s"] > 0).all() and (df["first_call_s"] > 0).all()
    meta = load_run(result.run_dir).meta
    assert meta["imports"][backend]["backend"] > 0
    assert meta["env"]["backends"][backend]["backend"] == backend


def test_two_backends_in_one_run_keep_their_own_baselines(tmp_path):
    need("jax")
    plan = api.plan(["dense"], sizes={"batch": "2"}, timer=FAST, processes=1, backends=["tensorflow", "jax"])
    result = api.run(plan, tmp_path)
    df = result.results
    assert result.ok and set(df["backend"]) == {"tensorflow", "jax"}
    for backend, rows in df.groupby("backend"):
        numpy = rows[rows["path"] == "numpy"]
        assert len(numpy) == 1 and float(numpy["ratio_to_numpy"].iloc[0]) == 1.0
    assert set(df[df["backend"] == "tensorflow"]["path"]) >= {"xla"}
    assert (result.run_dir / "worker-jax.log").is_file() and (result.run_dir / "worker-tensorflow.log").is_file()


@pytest.mark.parametrize("names, words", [(["jx"], "unknown backend 'jx'; did you mean 'jax'?"),
                                          ([""], "--backend is empty")])
def test_bad_backend_names(names, words):
    with pytest.raises(errors.BackendError) as err:
        api.plan(["dense"], backends=names)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_backend_that_is_not_installed_names_its_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(errors.BackendError, match=r"backend 'jax' is not installed; pip install 'kbench\[jax\]'"):
        api.plan(["dense"], backends=["jax"])


def test_float64_on_jax_needs_x64(monkeypatch):
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    need("jax")
    with pytest.raises(errors.DtypeError, match="JAX_ENABLE_X64=1"):
        api.plan(["dense"], dtype="float64", backends=["jax"])


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_resident_paths_and_transfers_run_on_the_cpu_too(backend, tmp_path):
    need(backend)
    plan = api.plan(["dense"], sizes={"batch": "2"}, timer=FAST, processes=1, backends=[backend], resident=True,
                    precision="highest")  # fmt: skip
    result = api.run(plan, tmp_path)
    df = result.results.set_index("path")
    assert result.ok, result.failures
    assert {"call@device", "compiled@device", "h2d", "d2h"} <= set(df.index)
    assert (df.loc[["call@device", "compiled@device", "h2d", "d2h"], "placement"] == "device").all()
    assert df.loc["call", "placement"] == "host"
    assert df.loc["call@device", "parity_ok"] and df.loc["call@device", "parity_max_rel_err"] <= df.loc["call@device", "parity_tol"]
    assert df.loc["h2d", "parity_message"] == "transfer: no parity"
    assert (df["device"] == "cpu").all() and (df["precision"] == "float32").all()
    env = load_run(result.run_dir).meta["env"]["backends"][backend]
    assert env["device"] == "cpu" and env["matmul_precision"] == "float32"


def test_resident_paths_are_off_by_default_on_the_cpu(quick_run):
    result, _, _ = quick_run
    assert set(result.results["placement"]) == {"host"}


def test_device_gpu_without_a_gpu_is_a_usage_error(tmp_path):
    plan = api.plan(["dense"], sizes={"batch": "2"}, timer=FAST, processes=1, device="gpu")
    with pytest.raises(errors.DeviceError, match="no GPU is visible to the tensorflow backend"):
        api.run(plan, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tf32_widens_the_float32_tolerance_only():
    from kbench.measure.parity import tolerance

    assert tolerance("float32", 128, "tf32") == pytest.approx(tolerance("float32", 128) * 2.0**-10 / 2.0**-23)
    assert tolerance("float64", 128, "tf32") == tolerance("float64", 128)
