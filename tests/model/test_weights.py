"""Seeded arrays: determinism, independence of batch size and dtype, no exact zeros, init ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kbench.model import weights as W
from kbench.model.loader import load_model
from kbench.model.spec import ModelSpec, Tensor
from kbench.model.weights import SUPPORTED_DTYPES, draw, make_arrays, make_inputs, make_weights

DENSE_SIZES = {"batch": 32, "features": 128, "units": 128}


def make_spec(weights=(), inputs=None, sizes=None, name="m") -> ModelSpec:
    return ModelSpec(
        name=name,
        summary="s",
        sizes=sizes or {"batch": (1,), "features": (3,)},
        inputs=inputs or (Tensor("x", ("batch", "features")),),
        weights=tuple(weights),
        output=("batch",),
        build_keras=lambda *a, **k: None,
        forward=lambda w, inputs, **o: inputs["x"].sum(axis=1),
        flops=lambda s: 1,
        reduction=lambda s: 1,
    )


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        np.testing.assert_array_equal(a[k], b[k])


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_same_seed_same_arrays(dense, dtype):
    assert_same(make_weights(dense, DENSE_SIZES, dtype, 7), make_weights(dense, DENSE_SIZES, dtype, 7))
    assert_same(make_inputs(dense, DENSE_SIZES, dtype, 7), make_inputs(dense, DENSE_SIZES, dtype, 7))


def test_different_seed_different_arrays(dense):
    a, b = make_weights(dense, DENSE_SIZES, "float64", 0), make_weights(dense, DENSE_SIZES, "float64", 1)
    for k in a:
        assert not np.any(a[k] == b[k]), k
    xa, xb = make_inputs(dense, DENSE_SIZES, "float64", 0), make_inputs(dense, DENSE_SIZES, "float64", 1)
    assert not np.any(xa["x"] == xb["x"])


def test_inputs_and_weights_use_different_streams():
    # same tensor name, same shape and init in both roles: the role keys the stream
    spec = make_spec(weights=(Tensor("y", ("batch", "features")),), inputs=(Tensor("x", ("batch", "features")),))
    t = (Tensor("x", ("batch", "features")),)
    as_input = make_arrays(spec, t, "input", {"batch": 4, "features": 3}, "float64", 0)["x"]
    as_weight = make_arrays(spec, t, "weight", {"batch": 4, "features": 3}, "float64", 0)["x"]
    assert not np.any(as_input == as_weight)


def test_model_name_keys_the_stream():
    sizes = {"batch": 4, "features": 3}
    a = make_inputs(make_spec(name="a"), sizes, "float64", 0)["x"]
    b = make_inputs(make_spec(name="b"), sizes, "float64", 0)["x"]
    assert not np.any(a == b)


def test_dot_inputs_a_and_b_differ(dot):
    x = make_inputs(dot, {"batch": 8, "features": 16}, "float64", 0)
    assert not np.any(x["a"] == x["b"])


def test_adding_a_tensor_does_not_shift_another():
    sizes = {"batch": 2, "features": 3}
    one = make_weights(make_spec(weights=(Tensor("w", ("features", 4)),)), sizes, "float64", 3)
    two = make_weights(
        make_spec(weights=(Tensor("v", ("features", 5), init="uniform"), Tensor("w", ("features", 4)))),
        sizes, "float64", 3,
    )
    np.testing.assert_array_equal(one["w"], two["w"])


def test_order_of_calls_does_not_matter(dense):
    first = make_weights(dense, DENSE_SIZES, "float32", 5)
    make_inputs(dense, DENSE_SIZES, "float32", 5)
    make_weights(dense, {**DENSE_SIZES, "units": 7}, "float32", 5)
    assert_same(first, make_weights(dense, DENSE_SIZES, "float32", 5))


# ---------------------------------------------------------------------------------------------- batch independence


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_weights_identical_across_batch_sizes(dense, dtype):
    ref = make_weights(dense, {**DENSE_SIZES, "batch": 1}, dtype, 11)
    for batch in (2, 32, 1024):
        assert_same(ref, make_weights(dense, {**DENSE_SIZES, "batch": batch}, dtype, 11))


def test_weights_change_with_their_own_shape(dense):
    a = make_weights(dense, {**DENSE_SIZES, "units": 16}, "float64", 0)
    b = make_weights(dense, {**DENSE_SIZES, "units": 17}, "float64", 0)
    assert a["kernel"].shape == (128, 16) and b["kernel"].shape == (128, 17)
    # keyed on the resolved shape: a new shape is a new stream, not a prefix of the old one
    assert not np.array_equal(a["kernel"], b["kernel"][:, :16])


def test_inputs_follow_the_batch(dense):
    x1 = make_inputs(dense, {**DENSE_SIZES, "batch": 1}, "float32", 0)["x"]
    x32 = make_inputs(dense, {**DENSE_SIZES, "batch": 32}, "float32", 0)["x"]
    assert x1.shape == (1, 128) and x32.shape == (32, 128)


# ---------------------------------------------------------------------------------------------- dtypes


def test_float32_and_float64_agree_up_to_rounding(dense):
    for make in (make_weights, make_inputs):
        a32 = make(dense, DENSE_SIZES, "float32", 4)
        a64 = make(dense, DENSE_SIZES, "float64", 4)
        for k in a64:
            # drawn once in float64 and cast: the float32 array is exactly the rounded float64 array
            np.testing.assert_array_equal(a32[k], a64[k].astype(np.float32))
            rel = np.abs(a32[k].astype(np.float64) - a64[k]) / np.abs(a64[k])
            assert rel.max() <= np.finfo(np.float32).eps / 2


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_output_dtype_and_shape(dense, dot, dtype):
    w = make_weights(dense, DENSE_SIZES, dtype, 0)
    x = make_inputs(dense, DENSE_SIZES, dtype, 0)
    assert w["kernel"].shape == (128, 128) and w["bias"].shape == (128,) and x["x"].shape == (32, 128)
    for arr in (*w.values(), *x.values()):
        assert isinstance(arr, np.ndarray)
        assert arr.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(arr))
    assert make_weights(dot, {"batch": 3, "features": 4}, dtype, 0) == {}
    xs = make_inputs(dot, {"batch": 3, "features": 4}, dtype, 0)
    assert set(xs) == {"a", "b"} and all(v.dtype == np.dtype(dtype) for v in xs.values())


# ---------------------------------------------------------------------------------------------- no exact zeros


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_no_exact_zeros_in_builtin_arrays(dtype):
    for name, sizes in (("dense", DENSE_SIZES), ("dot", {"batch": 64, "features": 128}), ("matmul", {"n": 100})):
        spec = load_model(name)
        for seed in range(5):
            for arr in (*make_weights(spec, sizes, dtype, seed).values(), *make_inputs(spec, sizes, dtype, seed).values()):
                assert np.count_nonzero(arr == 0) == 0


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize("init", ["normal", "uniform", "glorot_uniform"])
def test_zero_scale_draw_is_replaced(dtype, init):
    # scale=0 makes every draw an exact zero: the replacement path must turn each into eps(dtype)
    spec = make_spec(weights=(Tensor("w", ("features", 5), init=init, scale=0.0),))
    w = make_weights(spec, {"batch": 1, "features": 3}, dtype, 0)["w"]
    assert w.dtype == np.dtype(dtype)
    assert np.all(w == np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_zero_replacement_with_a_fake_draw(monkeypatch, dtype):
    planted = np.array([[0.0, -0.0, 1.5], [-2.0, 1e-300, 0.0]])

    def fake_draw(tensor, shape, rng):
        assert shape == (2, 3)
        return planted.copy()

    monkeypatch.setattr(W, "draw", fake_draw)
    spec = make_spec(weights=(Tensor("w", (2, 3)),))
    w = make_weights(spec, {"batch": 1, "features": 3}, dtype, 0)["w"]
    eps = np.finfo(dtype).eps
    assert np.count_nonzero(w == 0) == 0
    assert w[0, 0] == eps and w[0, 1] == eps and w[1, 2] == eps
    assert w[0, 2] == 1.5 and w[1, 0] == -2.0
    # 1e-300 survives in float64 but underflows to zero when cast to float32, and is then replaced
    assert w[1, 1] == (1e-300 if dtype == "float64" else eps)


def test_zero_replacement_uses_a_fake_generator():
    class ZeroRng:
        def standard_normal(self, shape):
            return np.zeros(shape)

    values = draw(Tensor("w", (3,)), (3,), ZeroRng())  # type: ignore[arg-type]
    assert np.all(values == 0)  # draw itself may return zeros; make_arrays is where they are replaced


def test_draw_rejects_unknown_init():
    with pytest.raises(ValueError, match="unknown init 'zeros'"):
        draw(Tensor("w", (2,), init="zeros"), (2,), np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------- init ranges


@pytest.mark.parametrize("shape", [(128, 128), (3, 200), (200, 3), (1, 1), (7,)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_glorot_uniform_respects_its_limit(shape, scale):
    spec = make_spec(weights=(Tensor("k", shape, init="glorot_uniform", scale=scale),))
    k = make_weights(spec, {"batch": 1, "features": 3}, "float64", 0)["k"]
    fan_in, fan_out = shape[0], shape[-1]
    limit = scale * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(k).max() <= limit
    if k.size >= 500:
        assert np.abs(k).max() > 0.95 * limit  # it uses the whole range, not a narrower one
        assert abs(k.mean()) < 0.1 * limit


def test_dense_kernel_glorot_limit(dense):
    for sizes in (DENSE_SIZES, {"batch": 1, "features": 5, "units": 300}):
        k = make_weights(dense, sizes, "float32", 2)["kernel"]
        limit = math.sqrt(6.0 / (sizes["features"] + sizes["units"]))
        assert np.abs(k).max() <= np.float32(limit)


def test_uniform_within_scale_and_normal_scaled():
    spec = make_spec(
        weights=(Tensor("u", (100, 100), init="uniform", scale=0.3), Tensor("n", (200, 200), init="normal", scale=0.1))
    )
    w = make_weights(spec, {"batch": 1, "features": 3}, "float64", 0)
    assert np.abs(w["u"]).max() <= 0.3 and np.abs(w["u"]).max() > 0.29
    assert 0.095 < w["n"].std() < 0.105 and abs(w["n"].mean()) < 0.005


def test_dense_bias_scale(dense):
    b = make_weights(dense, {**DENSE_SIZES, "units": 4096}, "float64", 0)["bias"]
    assert 0.09 < b.std() < 0.11


# ---------------------------------------------------------------------------------------------- findings


@pytest.mark.parametrize("init", ["uniform", "glorot_uniform"])
def test_scalar_tensor_uniform_inits(init):
    spec = make_spec(weights=(Tensor("s", (), init=init),))
    w = make_weights(spec, {"batch": 1, "features": 3}, "float32", 0)["s"]
    assert isinstance(w, np.ndarray) and w.shape == () and w != 0


def test_scalar_tensor_normal_init():
    spec = make_spec(weights=(Tensor("s", ()),))
    w = make_weights(spec, {"batch": 1, "features": 3}, "float32", 0)["s"]
    assert isinstance(w, np.ndarray) and w.shape == () and w != 0


def test_numpy_int_sizes_draw_the_same_arrays(dense):
    a = make_weights(dense, DENSE_SIZES, "float32", 0)
    b = make_weights(dense, {k: np.int64(v) for k, v in DENSE_SIZES.items()}, "float32", 0)
    assert_same(a, b)


def test_seeds_beyond_32_bits_are_distinct(dense):
    a = make_weights(dense, DENSE_SIZES, "float64", 0)
    b = make_weights(dense, DENSE_SIZES, "float64", 2**32)
    assert not np.array_equal(a["kernel"], b["kernel"])
