"""Where the time goes, the arithmetic (kbench.analysis.decompose): the split and its uncertainty on synthetic
medians, the references pooled over processes, and the columns of a real tiny run."""

import math

import pytest

from kbench.analysis import decompose
from kbench.analysis.decompose import Decomposition, Estimate
from kbench.measure.protocol import Reference

US = 1e-6



def est(median_us, low_us, high_us) -> Estimate:
    return Estimate(median_us * US, low_us * US, high_us * US)


def test_the_parts_add_up_to_the_path_and_the_overhead_interval_adds_the_sides_in_quadrature():
    d = decompose.decompose(est(100, 90, 115), est(50, 48, 53), est(10, 9, 12), est(5, 4, 9))
    assert d.overhead_s == pytest.approx(35 * US)
    assert d.floor_s + d.conversion_in_s + d.conversion_out_s + d.overhead_s == pytest.approx(d.path_s)
    # low: the path's low side (10) with the references' high sides (3, 2, 4); high: the path's high side (15) with
    # the references' low sides (2, 1, 1)
    assert d.overhead_low_s == pytest.approx((35 - math.sqrt(10**2 + 3**2 + 2**2 + 4**2)) * US)
    assert d.overhead_high_s == pytest.approx((35 + math.sqrt(15**2 + 2**2 + 1**2 + 1**2)) * US)
    assert not d.within_noise
    # no dispatch measured: compute is the whole floor, dispatch no share
    assert d.shares() == pytest.approx({"compute": 0.5, "dispatch": 0.0, "conversion": 0.15, "overhead": 0.35})


def test_dispatch_is_split_off_the_floor_and_never_counted_beyond_it():
    path, floor, cin, cout = est(100, 90, 115), est(50, 48, 53), est(10, 9, 12), est(5, 4, 9)
    d = decompose.decompose(path, floor, cin, cout, dispatch=40 * US)
    assert (d.compute_s, d.dispatch_part_s) == (pytest.approx(10 * US), pytest.approx(40 * US))
    assert d.shares() == pytest.approx({"compute": 0.1, "dispatch": 0.4, "conversion": 0.15, "overhead": 0.35})
    assert d.overhead_s == pytest.approx(35 * US)  # the split of the floor leaves the overhead as it was
    slow_dispatch = decompose.decompose(path, floor, cin, cout, dispatch=60 * US)  # dispatch alone above the floor
    assert (slow_dispatch.compute_s, slow_dispatch.dispatch_part_s) == (0.0, pytest.approx(50 * US))
    assert sum(slow_dispatch.shares().values()) == pytest.approx(1.0)


def test_a_conversion_timed_as_a_difference_subtracts_its_base_with_the_sides_in_quadrature():
    refs = {"to_backend": est(30, 28, 33), "to_backend_base": est(20, 19, 24), "to_numpy": est(4, 3, 5)}
    cin = decompose.conversion(refs, "to_backend")
    assert cin.median == pytest.approx(10 * US)
    assert cin.low == pytest.approx((10 - math.hypot(2, 4)) * US)
    assert cin.high == pytest.approx((10 + math.hypot(3, 1)) * US)
    assert decompose.conversion(refs, "to_numpy") == refs["to_numpy"]
    assert decompose.conversion(refs, "nothing") is None


def test_each_path_is_decomposed_against_its_own_floor_and_only_when_every_reference_ran():
    refs = {"kernel": est(50, 49, 51), "kernel_xla": est(30, 29, 31), "to_backend": est(5, 5, 5),
            "to_numpy": est(2, 2, 2), "dispatch": est(40, 39, 41), "dispatch_xla": est(25, 24, 26)}  # fmt: skip
    xla = decompose.row_columns("tensorflow", "xla", est(60, 58, 62), refs)
    compiled = decompose.row_columns("tensorflow", "compiled", est(80, 78, 82), refs)
    assert (xla["floor_name"], xla["floor_s"]) == ("xla", pytest.approx(30 * US))
    assert (xla["dispatch_s"], xla["compute_s"]) == (pytest.approx(25 * US), pytest.approx(5 * US))  # its own
    assert (compiled["floor_name"], compiled["floor_s"]) == ("tf.function", pytest.approx(50 * US))
    assert (compiled["dispatch_s"], compiled["compute_s"]) == (pytest.approx(40 * US), pytest.approx(10 * US))
    assert compiled["compute_from"] == "floor-dispatch"
    jax_refs = {k: v for k, v in refs.items() if not k.startswith("dispatch")} | {"to_backend_base": est(3, 3, 3)}
    jax = decompose.row_columns("jax", "compiled", est(80, 78, 82), jax_refs)
    assert (jax["floor_name"], jax["dispatch_s"]) == ("jax.jit", pytest.approx(3 * US))  # the jitted touch
    fallback = {**{k: v for k, v in refs.items() if k not in ("kernel", "dispatch")}, "kernel_compile": refs["kernel"]}
    torch = decompose.row_columns("torch", "compiled", est(80, 78, 82), fallback)
    assert torch["floor_name"] == "torch.compile" and math.isnan(torch["dispatch_s"])
    assert (torch["compute_s"], torch["compute_from"]) == (pytest.approx(50 * US), "floor")  # dispatch not apart
    assert decompose.row_columns("tensorflow", "xla", est(60, 58, 62), {"kernel": refs["kernel"]}) == {}
    assert set(xla) == set(decompose.COLUMNS)


def test_the_profilers_kernels_set_compute_and_the_rest_of_the_floor_is_dispatch():
    refs = {"kernel": est(300, 290, 310), "to_backend": est(5, 5, 5), "to_numpy": est(2, 2, 2),
            "dispatch": est(260, 250, 270), "profiled_kernel": est(18, 17, 19)}  # fmt: skip
    row = decompose.row_columns("tensorflow", "compiled", est(400, 390, 410), refs)
    assert (row["compute_s"], row["compute_from"]) == (pytest.approx(18 * US), "profiler")
    assert row["dispatch_s"] == pytest.approx(260 * US)  # the trivial call's median stays as measured
    d = decompose.from_row({**row, "median_s": 400 * US})
    assert (d.compute_s, d.dispatch_part_s) == (pytest.approx(18 * US), pytest.approx(282 * US))
    assert d.shares()["compute"] == pytest.approx(18 / 400) and d.shares()["dispatch"] == pytest.approx(282 / 400)
    inflated = decompose.row_columns("tensorflow", "compiled", est(400, 390, 410),
                                     {**refs, "profiled_kernel": est(350, 340, 360)})  # fmt: skip
    assert inflated["compute_s"] == pytest.approx(350 * US)  # stored as profiled; shown within the floor:
    assert decompose.from_row({**inflated, "median_s": 400 * US}).compute_s == pytest.approx(300 * US)


def test_references_are_pooled_over_processes_and_one_a_process_lacks_is_left_out():
    per_process = [(Reference("kernel", (1e-4, 1.1e-4, 0.9e-4), 10), Reference("to_numpy", (1e-6,) * 5, 100)),
                   (Reference("kernel", (1.2e-4, 1.0e-4, 1.1e-4), 10),)]  # fmt: skip
    refs = decompose.reference_estimates(per_process)
    assert set(refs) == {"kernel"}
    profiled_in_one = [(*per_process[0], Reference("profiled_kernel", (2e-5, 2.1e-5), 10)), per_process[1]]
    assert set(decompose.reference_estimates(profiled_in_one)) == {"kernel", "profiled_kernel"}  # process 0 only
    assert refs["kernel"].median == pytest.approx(1.05e-4)
    assert refs["kernel"].low <= refs["kernel"].median <= refs["kernel"].high


# -- a real tiny run ------------------------------------------------------------------------------------------------


def test_a_real_runs_keras_rows_carry_the_decomposition_and_the_parts_add_up(quick_run):
    result, _, _ = quick_run
    df = result.results
    keras = df[df["path"].isin(["predict", "predict_on_batch", "call", "compiled", "xla"])]
    assert len(keras) and keras["floor_s"].notna().all() and keras["overhead_s"].notna().all()
    assert df.loc[df["path"] == "numpy", "floor_s"].isna().all()
    assert not df["path"].astype(str).str.startswith(("ref:", "kernel", "to_")).any()  # references are never rows
    for _, r in keras.iterrows():
        parts = r["floor_s"] + r["conversion_in_s"] + r["conversion_out_s"] + r["overhead_s"]
        assert parts == pytest.approx(r["median_s"])
        assert r["floor_s"] <= r["ci_high_s"], r["path"]  # the floor is never above the path beyond its noise
        assert r["overhead_low_s"] <= r["overhead_s"] <= r["overhead_high_s"]
        assert r["floor_name"] == ("xla" if r["path"] == "xla" else "tf.function")
        assert r["dispatch_s"] > 0 and r["compute_from"] == "profiler"  # TensorFlow profiles its floors
        assert 0 < r["compute_s"] < r["floor_s"], r["path"]
    d = decompose.from_row(keras.iloc[0].to_dict())
    assert isinstance(d, Decomposition) and d.path_s == keras.iloc[0]["median_s"]
