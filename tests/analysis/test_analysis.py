"""Crossovers, the overhead/throughput fit and the verdicts, on synthetic results with known answers."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kbench.analysis import sweep

BATCHES = [2**i for i in range(0, 15)]
FLOPS_PER_ROW = 2 * 128 * 128


def synthetic(paths: dict[str, tuple[float, float]], noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """paths: name -> (overhead_s, gflops). numpy must be among them; ratios and CIs computed like results.py."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in BATCHES:
        flops = FLOPS_PER_ROW * b
        for path, (a, g) in paths.items():
            t = (a + flops / (g * 1e9)) * (1 + noise * rng.standard_normal())
            rows.append({"model": "dense", "sizes": f"batch={b} features=128 units=128", "path": path,
                         "size_batch": b, "size_features": 128, "size_units": 128, "flops": flops,
                         "median_s": t, "ci_low_s": t * 0.98, "ci_high_s": t * 1.02, "parity_ok": True})  # fmt: skip
    df = pd.DataFrame(rows)
    base = df[df["path"] == "numpy"].set_index("sizes")
    df["ratio_to_numpy"] = df["median_s"] / df["sizes"].map(base["median_s"])
    df["ratio_ci_low"] = df["ci_low_s"] / df["sizes"].map(base["ci_high_s"])
    df["ratio_ci_high"] = df["ci_high_s"] / df["sizes"].map(base["ci_low_s"])
    return df


PATHS = {"numpy": (2e-6, 50.0), "compiled": (400e-6, 150.0), "predict": (40e-3, 100.0)}


def test_fit_recovers_overhead_and_throughput_exactly_without_noise():
    fits = sweep.fit_overhead(synthetic(PATHS)).set_index("path")
    for path, (a, g) in PATHS.items():
        assert fits.at[path, "overhead_s"] == pytest.approx(a, rel=1e-6)
        assert fits.at[path, "throughput_gflops"] == pytest.approx(g, rel=1e-6)
        assert fits.at[path, "fit_max_rel_err"] < 1e-6
    assert fits.at["compiled", "smallest_size"] == 1
    assert fits.at["compiled", "overhead_vs_smallest"] == pytest.approx(1, rel=0.01)


def test_fit_is_robust_to_one_wild_point():
    df = synthetic(PATHS)
    i = df.index[(df["path"] == "compiled") & (df["size_batch"] == 64)][0]
    df.loc[i, "median_s"] *= 5  # a stall in one cell
    fit = sweep.fit_overhead(df).set_index("path").loc["compiled"]
    assert fit["overhead_s"] == pytest.approx(400e-6, rel=0.05)
    assert fit["throughput_gflops"] == pytest.approx(150, rel=0.05)


def test_fit_keeps_parameters_non_negative():
    a, b = sweep.robust_fit(np.array([1.0, 10, 100, 1000]), np.array([5.0, 5.0, 5.0, 5.0]))
    assert a == pytest.approx(5.0) and b == 0.0
    a, b = sweep.robust_fit(np.array([1.0, 10, 100]), np.array([1.0, 10, 100]) * 1e-9)
    assert a == 0.0 and b == pytest.approx(1e-9)


def test_crossover_matches_the_analytic_one():
    cross = sweep.crossovers(synthetic(PATHS)).set_index("path")
    # compiled = numpy when 400e-6 + F/150e9 = 2e-6 + F/50e9  ->  F = 398e-6 / (1/50e9 - 1/150e9)
    f_star = 398e-6 / (1 / 50e9 - 1 / 150e9)
    expected = f_star / FLOPS_PER_ROW
    c = cross.loc["compiled"]
    assert c["direction"] == "keras_above" and c["crossings"] == 1
    assert c["crossover"] == pytest.approx(expected, rel=0.15)  # log-log interpolation between powers of 2
    assert c["crossover_low"] <= c["crossover"] <= c["crossover_high"]
    p = cross.loc["predict"]
    assert p["crossover"] is None or math.isnan(p["crossover"])
    assert p["nearest_at"] == 16384 and p["nearest_ratio"] == pytest.approx(p["ratio_at_largest"])


def test_headline_names_the_size_below_which_numpy_wins():
    lines = sweep.headlines(synthetic(PATHS))
    assert len(lines) == 1
    assert lines[0].startswith("dense at features=128 units=128: below batch ≈ ")
    assert "NumPy is faster than every Keras path on this machine; above it compiled wins" in lines[0]


def test_headline_when_numpy_always_wins():
    lines = sweep.headlines(synthetic({"numpy": (2e-6, 50.0), "call": (1e-3, 40.0)}))
    assert "NumPy is faster than every Keras path at every batch in 1..16384" in lines[0]
    assert "closest: call" in lines[0]


def test_verdict_table_recommends_the_fastest_clean_path_with_margin():
    df = synthetic(PATHS)
    v = sweep.verdict_table(df).set_index("sizes")
    small, large = v.loc["batch=1 features=128 units=128"], v.loc["batch=16384 features=128 units=128"]
    assert small["recommended"] == "numpy" and small["runner_up"] == "compiled" and small["margin"] > 100
    assert large["recommended"] == "compiled" and large["margin"] > 1
    df.loc[df["path"] == "compiled", "parity_ok"] = False
    v = sweep.verdict_table(df).set_index("sizes")
    assert "compiled" not in set(v["recommended"]) | set(v["runner_up"])


def test_no_sweep_no_analysis():
    one = synthetic(PATHS)
    one = one[one["size_batch"] == 32]
    assert sweep.fit_overhead(one).empty and sweep.crossovers(one).empty and sweep.headlines(one) == []


@settings(max_examples=40, deadline=None)
@given(a=st.floats(1e-6, 1e-2), g=st.floats(1.0, 500.0), noise=st.floats(0, 0.02), seed=st.integers(0, 1000))
def test_fit_property_small_noise_small_error(a, g, noise, seed):
    # an overhead far below the noise of the smallest cell cannot be identified by any fit: require it to be
    # at least a quarter of the smallest cell's compute time
    assume(a >= 0.25 * FLOPS_PER_ROW / (g * 1e9))
    df = synthetic({"numpy": (2e-6, 50.0), "x": (a, g)}, noise=noise, seed=seed)
    fit = sweep.fit_overhead(df).set_index("path").loc["x"]
    assert fit["overhead_s"] == pytest.approx(a, rel=0.1 + 20 * noise)


def test_verdict_table_is_the_one_engine_for_keras_paths_and_exclusions():
    df = synthetic(PATHS)
    df.loc[(df["path"] == "predict") & (df["size_batch"] == 1), "parity_ok"] = False
    v = sweep.verdict_table(df).set_index("sizes")
    small = v.loc["batch=1 features=128 units=128"]
    assert small["keras_best"] == "compiled" and small["keras_slowest"] == "compiled"  # predict left out
    assert small["failed_parity"] == ("predict",) and small["keras_best_ratio"] > 100
    large = v.loc["batch=16384 features=128 units=128"]
    assert large["keras_best"] == "compiled" and large["keras_slowest"] == "predict" and large["failed_parity"] == ()
    assert large["baseline_median_s"] == pytest.approx(df[(df["path"] == "numpy") & (df["size_batch"] == 16384)]["median_s"].iloc[0])


def test_a_transfer_never_wins_a_cell_nor_crosses_numpy():
    """On a GPU the d2h copy (20 µs, 5 TB/s) beats NumPy at large batches, but it only copies the output: the
    verdict and the crossover sentence must name a path that computes the model (found on an H200 run)."""
    df = synthetic({**PATHS, "d2h": (20e-6, 5000.0), "h2d": (30e-6, 4000.0)})
    lines = sweep.headlines(df)
    assert "above it compiled wins" in lines[0], lines
    v = sweep.verdict_table(df)
    named = set(v["recommended"]) | set(v["runner_up"]) | set(v["keras_best"]) | set(v["keras_slowest"])
    assert not named & {"d2h", "h2d"}
    assert not set(sweep.crossovers(df)["path"]) & {"d2h", "h2d"}
