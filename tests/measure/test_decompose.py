"""Where the time goes (kbench.measure.decompose): the arithmetic and its uncertainty on synthetic medians, the timer's budget
weights on a fake clock, the presentation, and the columns of a real tiny run."""

import itertools
import json
import math
import os
import subprocess
import sys

import pytest

from kbench.measure import decompose
from kbench.measure.decompose import Decomposition, Estimate
from kbench.core.fmt import fmt_time
from kbench.measure.protocol import Reference
from kbench.measure.timer import Timer, TimerConfig

US = 1e-6


def est(median_us, low_us, high_us) -> Estimate:
    return Estimate(median_us * US, low_us * US, high_us * US)


# -- the arithmetic ------------------------------------------------------------------------------------------------


def test_the_parts_add_up_to_the_path_and_the_overhead_interval_adds_the_sides_in_quadrature():
    d = decompose.decompose(est(100, 90, 115), est(50, 48, 53), est(10, 9, 12), est(5, 4, 9))
    assert d.overhead_s == pytest.approx(35 * US)
    assert d.kernel_s + d.conversion_in_s + d.conversion_out_s + d.overhead_s == pytest.approx(d.path_s)
    # low: the path's low side (10) with the references' high sides (3, 2, 4); high: the path's high side (15) with
    # the references' low sides (2, 1, 1)
    assert d.overhead_low_s == pytest.approx((35 - math.sqrt(10**2 + 3**2 + 2**2 + 4**2)) * US)
    assert d.overhead_high_s == pytest.approx((35 + math.sqrt(15**2 + 2**2 + 1**2 + 1**2)) * US)
    assert not d.within_noise
    assert d.shares() == pytest.approx({"kernel": 0.5, "conversion": 0.15, "overhead": 0.35})


def test_a_negative_overhead_within_noise_is_said_to_be_noise_and_never_shown_as_a_share():
    d = decompose.decompose(est(60, 50, 75), est(55, 52, 57), est(6, 5, 7), est(2, 2, 3))
    assert d.overhead_s == pytest.approx(-3 * US)
    assert d.overhead_low_s < 0 < d.overhead_high_s and d.within_noise
    assert d.shares()["overhead"] == 0.0
    shown, span = decompose.overhead_text(d, fmt_time)
    assert shown == "≈0 (noise)"
    assert span.startswith("−") and span.endswith("µs") and "…" in span


def test_references_that_exceed_the_path_beyond_noise_are_said_to_do_so():
    d = decompose.decompose(est(60, 59, 61), est(80, 79, 81), est(5, 5, 5), est(1, 1, 1))
    assert d.overhead_high_s < 0 and not d.within_noise
    assert "refs > path" in decompose.overhead_text(d, fmt_time)[0]
    assert "the references exceed the path beyond their noise" in decompose.cell_sentence("n=1", {"compiled": d})


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
            "to_numpy": est(2, 2, 2)}  # fmt: skip
    xla = decompose.row_columns("tensorflow", "xla", est(60, 58, 62), refs)
    compiled = decompose.row_columns("tensorflow", "compiled", est(80, 78, 82), refs)
    assert (xla["kernel_floor"], xla["kernel_s"]) == ("xla", pytest.approx(30 * US))
    assert (compiled["kernel_floor"], compiled["kernel_s"]) == ("tf.function", pytest.approx(50 * US))
    assert decompose.row_columns("jax", "compiled", est(80, 78, 82), refs)["kernel_floor"] == "jax.jit"
    fallback = {**{k: v for k, v in refs.items() if k != "kernel"}, "kernel_compile": refs["kernel"]}
    assert decompose.row_columns("torch", "compiled", est(80, 78, 82), fallback)["kernel_floor"] == "torch.compile"
    assert decompose.row_columns("tensorflow", "xla", est(60, 58, 62), {"kernel": refs["kernel"]}) == {}
    assert set(xla) == set(decompose.COLUMNS)


def test_references_are_pooled_over_processes_and_one_a_process_lacks_is_left_out():
    per_process = [(Reference("kernel", (1e-4, 1.1e-4, 0.9e-4), 10), Reference("to_numpy", (1e-6,) * 5, 100)),
                   (Reference("kernel", (1.2e-4, 1.0e-4, 1.1e-4), 10),)]  # fmt: skip
    refs = decompose.reference_estimates(per_process)
    assert set(refs) == {"kernel"}
    assert refs["kernel"].median == pytest.approx(1.05e-4)
    assert refs["kernel"].low <= refs["kernel"].median <= refs["kernel"].high


# -- the timer's budget weights ------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_callable_with_half_the_weight_gets_half_the_budget_of_the_others():
    clock = _Clock()

    def work(durations):
        cycle = itertools.cycle(durations)

        def fn():
            clock.now += next(cycle)

        return fn

    fns = {"path": work([1e-3, 3e-3]), "ref:kernel": work([1e-3, 3e-3])}  # too noisy to stop on the CI
    config = TimerConfig(budget_s=0.6, min_samples=5, target_ci=0.0001, min_sample_s=1e-3, warmup_s=0.0)
    measured = Timer(config, clock=clock).run(fns, {"path": 1.0, "ref:kernel": 0.5})
    spent = {n: sum(m.samples) * m.loops for n, m in measured.items()}
    assert {m.stop_reason for m in measured.values()} == {"budget"}
    assert spent["path"] == pytest.approx(0.4, rel=0.1)
    assert spent["ref:kernel"] == pytest.approx(0.2, rel=0.2)


# -- the presentation ----------------------------------------------------------------------------------------------


def _row(path, median_us, kernel_us=None, cin_us=10.0, cout_us=5.0, floor="tf.function"):
    row = {"path": path, "median_s": median_us * US, "sizes": "batch=1", "model": "dense"}
    if kernel_us is not None:
        exact = lambda us: est(us, us, us)  # noqa: E731
        d = decompose.decompose(est(median_us, median_us * 0.95, median_us * 1.05), exact(kernel_us), exact(cin_us),
                                exact(cout_us))  # fmt: skip
        row.update(kernel_s=d.kernel_s, kernel_floor=floor, conversion_in_s=d.conversion_in_s,
                   conversion_out_s=d.conversion_out_s, overhead_s=d.overhead_s, overhead_low_s=d.overhead_low_s,
                   overhead_high_s=d.overhead_high_s)  # fmt: skip
    return row


def test_the_sentence_names_the_fastest_keras_path_its_largest_share_and_the_kernel_against_numpy():
    rows = [_row("numpy", 20.0), _row("call", 1000.0, 50.0), _row("compiled", 400.0, 30.0)]
    decomps = {r["path"]: d for r in rows if (d := decompose.from_row(r)) is not None}
    assert set(decomps) == {"call", "compiled"}
    text = decompose.cell_sentence("batch=1", decomps, 20e-6)
    assert text.startswith("At batch=1, 89% of compiled (the fastest Keras path) is framework overhead")
    assert "kernel 8%, conversion 4%, overhead 89%" in text
    assert "the kernel alone takes 1.5× NumPy's time, the path 20×" in text
    assert decompose.cell_sentence("batch=1", {}) == ""
    with_dispatch = {"compiled": decompose.from_row({**rows[2], "dispatch_s": 20 * US})}
    text = decompose.cell_sentence("n=1", with_dispatch)
    assert "a trivial compiled call alone, the backend's dispatch, is 5%" in text


def test_a_cell_breakdown_shows_every_keras_path_with_a_bar_of_its_split_and_numpys_time():
    b = decompose.breakdown([_row("numpy", 20.0), _row("compiled", 400.0, 300.0), _row("h2d", 5.0)], "n=1024",
                            model="matmul")  # fmt: skip
    assert (b.numpy, b.model, [r.path for r in b.rows]) == ("20 µs", "matmul", ["compiled"])
    r = b.rows[0]
    assert (r.kernel, r.conversion, r.overhead, r.floor) == ("300 µs", "15 µs", "85 µs", "tf.function")
    assert r.bar == "██████░░"  # 75% kernel, 4% conversion, 21% overhead, of 8 characters
    assert decompose.breakdown([_row("numpy", 20.0)], "n=1").rows == ()


# -- a real tiny run -----------------------------------------------------------------------------------------------


def test_a_real_runs_keras_rows_carry_the_decomposition_and_the_parts_add_up(quick_run):
    result, _, _ = quick_run
    df = result.results
    keras = df[df["path"].isin(["predict", "predict_on_batch", "call", "compiled", "xla"])]
    assert len(keras) and keras["kernel_s"].notna().all() and keras["overhead_s"].notna().all()
    assert df.loc[df["path"] == "numpy", "kernel_s"].isna().all()
    assert not df["path"].astype(str).str.startswith(("ref:", "kernel", "to_")).any()  # references are never rows
    for _, r in keras.iterrows():
        parts = r["kernel_s"] + r["conversion_in_s"] + r["conversion_out_s"] + r["overhead_s"]
        assert parts == pytest.approx(r["median_s"])
        assert r["kernel_s"] <= r["ci_high_s"], r["path"]  # the floor is never above the path beyond its noise
        assert r["overhead_low_s"] <= r["overhead_s"] <= r["overhead_high_s"]
        assert r["kernel_floor"] == ("xla" if r["path"] == "xla" else "tf.function")
        assert r["dispatch_s"] > 0  # TensorFlow's identity tf.function
    d = decompose.from_row(keras.iloc[0].to_dict())
    assert isinstance(d, Decomposition) and d.path_s == keras.iloc[0]["median_s"]


# -- torch's floor -------------------------------------------------------------------------------------------------


def test_only_casts_that_return_their_input_are_dropped_from_a_traced_graph():
    torch = pytest.importorskip("torch")

    def f(x):
        same = x.to(torch.float32)  # a no-op: dropped
        wider = x.to(torch.float64)  # a real cast: kept
        copied = x.to(torch.float32, copy=True)  # a copy: kept
        return same + 1, wider, copied

    x = torch.ones(3, 4)
    traced = torch.jit.trace(f, (x,))
    assert decompose._drop_noop_casts(torch, traced.graph) == 1
    assert [n.kind() for n in traced.graph.nodes()].count("aten::to") == 2
    same, wider, copied = traced(x)
    assert torch.equal(same, x + 1) and wider.dtype == torch.float64 and copied.data_ptr() != x.data_ptr()


TORCH_FLOOR = """
import json, numpy as np, torch, keras
from kbench.measure import decompose
x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
inp = keras.Input(shape=(16,))
model = keras.Model(inp, keras.layers.Dense(4, activation="relu")(inp))
name, call = decompose._torch_floor(None, model, [torch.from_numpy(x)])
y = call([torch.from_numpy(x)])
with torch.no_grad():
    expected = model(torch.from_numpy(x), training=False).numpy()
print(json.dumps({"name": name, "close": bool(np.allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)),
                  "requires_grad": y.requires_grad, "grad_enabled": torch.is_grad_enabled()}))
"""


def test_torchs_floor_is_the_frozen_traced_model_computing_the_models_output_without_grad():
    pytest.importorskip("torch")
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", TORCH_FLOOR], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the floor, not the torch.compile fallback; the model's own output; no autograd graph, grad mode left alone
    assert got == {"name": "kernel", "close": True, "requires_grad": False, "grad_enabled": True}
