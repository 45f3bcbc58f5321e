"""The JAX and PyTorch backends on the CPU: every path they implement, parity first, through real workers.

Skips locally when a backend is not installed; in CI (CI set) a missing backend is a failure, since .ci/run
installs both.
"""

import importlib.util
import os

import pytest

from kbench import api, errors
from kbench.paths import PATHS, paths_for
from kbench.results import load_run
from kbench.timer import TimerConfig

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
    plan = api.plan(models, sizes=sizes, timer=FAST, backends=[backend])
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
    plan = api.plan(["dense"], sizes={"batch": "2"}, timer=FAST, backends=["tensorflow", "jax"])
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
