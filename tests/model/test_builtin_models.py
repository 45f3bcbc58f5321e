"""The built-in models mlp, embedding, layernorm, attention and conv1d: each twin against an independent float64
computation, FLOP counts on small cases, the honesty of the parity scale, and one real parity run of every new
model on every installed backend."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

from kbench import api
from kbench.core.errors import BadSizeError, ModelLoadError
from kbench.measure import parity
from kbench.model.loader import load_model
from kbench.model.spec import Tensor, validate_spec
from kbench.model.weights import make_inputs, make_weights

NEW = ("mlp", "embedding", "layernorm", "attention", "conv1d")
SMALL = {
    "mlp": {"batch": 3, "features": 5, "hidden": 7, "units": 4},
    "embedding": {"batch": 3, "seq": 5, "vocab": 11, "dim": 4},
    "layernorm": {"batch": 3, "features": 9},
    "attention": {"batch": 2, "seq": 5, "dim": 6},
    "conv1d": {"batch": 2, "length": 9, "channels": 3, "filters": 4, "kernel_size": 3},
}


def arrays(name, dtype="float64", sizes=None, seed=0):
    spec = load_model(name)
    sizes = sizes or SMALL[name]
    return spec, make_weights(spec, sizes, dtype, seed), make_inputs(spec, sizes, dtype, seed)


# ------------------------------------------------------------------------- independent float64 computations


def mlp_by_hand(w, x, activation):
    h = np.einsum("bf,fh->bh", x["x"], w["hidden_kernel"]) + w["hidden_bias"]
    h = np.where(h > 0, h, 0.0) if activation == "relu" else h
    return np.einsum("bh,hu->bu", h, w["out_kernel"]) + w["out_bias"]


def embedding_by_hand(w, x, **_):
    ids = x["ids"]
    rows = [w["embeddings"][int(i)] for i in ids.ravel()]
    return np.array(rows).reshape(*ids.shape, -1)


def layernorm_by_hand(w, x, **_):
    v = x["x"]
    mean = v.sum(axis=1, keepdims=True) / v.shape[1]
    var = np.var(v, axis=1, keepdims=True)
    return w["gamma"] * (v - mean) / np.sqrt(var + 1e-3) + w["beta"]


def attention_by_hand(w, x, **_):
    s = np.einsum("bid,bjd->bij", x["q"], x["k"]) / math.sqrt(x["q"].shape[-1])
    e = np.exp(s)  # small scores: the naive softmax is exact enough, and independent of the twin's stable one
    return e / e.sum(axis=-1, keepdims=True)


def conv1d_by_hand(w, x, activation):
    v, kernel = x["x"], w["kernel"]
    k = kernel.shape[0]
    steps = v.shape[1] - k + 1
    y = np.stack([sum(v[:, t + j, :] @ kernel[j] for j in range(k)) for t in range(steps)], axis=1) + w["bias"]
    return np.maximum(y, 0.0) if activation == "relu" else y


BY_HAND = {"mlp": mlp_by_hand, "embedding": embedding_by_hand, "layernorm": layernorm_by_hand,
           "attention": attention_by_hand, "conv1d": conv1d_by_hand}  # fmt: skip


CASES = [(name, opts) for name in NEW for opts in ([{}] if not load_model(name).options else
         [{k: v} for k, vs in load_model(name).options.items() for v in vs])]  # fmt: skip


@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_twin_matches_an_independent_float64_computation(name, options):
    spec, w, x = arrays(name)
    expected = BY_HAND[name](w, x, **{**spec.default_options, **options})
    got = spec.forward(w, x, **{**spec.default_options, **options})
    assert got.shape == expected.shape == spec.output_shape(SMALL[name])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NEW)
def test_float32_twin_passes_parity_against_the_independent_result(name):
    spec, w32, x32 = arrays(name, "float32", seed=3)
    _, w64, x64 = arrays(name, "float64", seed=3)
    expected = BY_HAND[name](w64, x64, **spec.default_options)
    twin = spec.forward(w32, x32, **spec.default_options)
    assert twin.dtype == np.float32
    tol = parity.tolerance("float32", spec.reduction(SMALL[name]))
    r = parity.check("numpy", twin, expected, twin, tol, parity.magnitude(spec, w32, x32, spec.default_options))
    assert r.ok, r.message


# ------------------------------------------------------------------------------------------------ FLOPs, K


@pytest.mark.parametrize("name, flops, k", [
    ("mlp", 2 * 3 * 5 * 7 + 3 * 7 + 2 * 3 * 7 * 4 + 3 * 4, 5 + 7),
    ("embedding", 0, 1),
    ("layernorm", 3 * (7 * 9 + 3), 9),
    ("attention", 2 * 2 * 5 * 5 * 6 + 5 * 2 * 5 * 5, 6),
    ("conv1d", 2 * 2 * 7 * 4 * 3 * 3 + 2 * 7 * 4, 3 * 3),
])  # fmt: skip
def test_flops_and_reduction_on_a_small_case(name, flops, k):
    spec = load_model(name)
    assert spec.flops(SMALL[name]) == flops
    assert spec.reduction(SMALL[name]) == k


# ----------------------------------------------------------------------------------------- integer indices


@pytest.mark.parametrize("dtype, int_dtype", [("float32", np.int32), ("float64", np.int64)])
def test_embedding_ids_are_integers_in_range_at_either_dtype(dtype, int_dtype):
    spec, w, x = arrays("embedding", dtype, sizes={"batch": 64, "seq": 16, "vocab": 11, "dim": 4})
    ids = x["ids"]
    assert ids.dtype == int_dtype and ids.min() >= 0 and ids.max() < 11
    assert set(np.unique(ids)) == set(range(11))  # 1024 draws cover a vocabulary of 11
    assert w["embeddings"].dtype == np.dtype(dtype)


def test_embedding_ids_are_the_same_in_float32_and_float64_runs():
    assert np.array_equal(arrays("embedding", "float32")[2]["ids"], arrays("embedding", "float64")[2]["ids"])


def test_reference_and_magnitude_keep_indices_as_indices():
    spec, w, x = arrays("embedding", "float32")
    ref = parity.reference(spec, w, x, {})
    assert ref.dtype == np.float64
    np.testing.assert_array_equal(ref, w["embeddings"].astype(np.float64)[x["ids"]])
    np.testing.assert_array_equal(parity.magnitude(spec, w, x, {}), np.abs(ref))


# ------------------------------------------------------------------------------------- parity's scale M


@pytest.mark.parametrize("name", ["layernorm", "attention"])
def test_model_magnitude_bounds_the_output_and_is_order_one(name):
    spec, w, x = arrays(name, sizes={**SMALL[name], "batch": 16})
    ref = parity.reference(spec, w, x, {})
    m = parity.magnitude(spec, w, x, {})
    assert m.shape == ref.shape and np.all(m >= np.abs(ref) * (1 - 1e-12))
    if name == "layernorm":  # standard normal inputs: M is of the order of |gamma| + |beta|, never tiny
        scale = np.abs(w["gamma"]) + np.abs(w["beta"])
        assert np.all(m >= 0.5 * np.abs(w["gamma"])) and np.median(m / scale) < 10
    else:  # probabilities: M is p times a factor of the score terms' size
        assert np.all(m <= ref * (1 + 2 * np.sqrt(SMALL[name]["dim"]) * 10))


def test_layernorm_magnitude_grows_with_an_offset_where_a_one_pass_variance_loses_digits():
    spec, w, x = arrays("layernorm")
    shifted = {"x": x["x"] + 1000.0}
    m0 = parity.magnitude(spec, w, x, {})
    m1 = parity.magnitude(spec, w, shifted, {})
    assert np.median(m1 / m0) > 100  # same outputs (a shift does not change them), far more rounding
    np.testing.assert_allclose(spec.forward(w, shifted), spec.forward(w, x), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, bug", [
    ("layernorm", lambda w, x: w["gamma"] * (x["x"] - x["x"].mean(1, keepdims=True)) / x["x"].std(1, keepdims=True)
     + w["beta"]),  # no epsilon
    ("attention", lambda w, x: attention_by_hand(w, {"q": x["q"] * math.sqrt(x["q"].shape[-1]), "k": x["k"]})),
    # ^ the 1 / sqrt(dim) scale left out
    ("conv1d", lambda w, x: conv1d_by_hand({**w, "kernel": w["kernel"][::-1]}, x, "linear")),  # flipped kernel
    ("mlp", lambda w, x: mlp_by_hand(w, x, "linear")),  # the relu left out
])  # fmt: skip
def test_planted_bugs_fail_parity_by_far(name, bug):
    spec, w32, x32 = arrays(name, "float32", sizes={**SMALL[name], "batch": 8})
    ref = parity.reference(spec, w32, x32, spec.default_options)
    m = parity.magnitude(spec, w32, x32, spec.default_options)
    tol = parity.tolerance("float32", spec.reduction({**SMALL[name], "batch": 8}))
    wrong = bug({k: v.astype(np.float64) for k, v in w32.items()}, {k: v.astype(np.float64) for k, v in x32.items()})
    r = parity.check("call", wrong.astype(np.float32), ref, ref, tol, m)
    assert not r.ok and r.max_rel_err > 10 * tol


# ------------------------------------------------------------------------- the spec fields these models use


@pytest.mark.parametrize("overrides, needle", [
    (dict(inputs=(Tensor("ids", ("batch", "seq"), init="index"),)), "init='index' (inputs only) and high="),
    (dict(inputs=(Tensor("ids", ("batch", "seq"), high="vocab"),)), "init='index' (inputs only) and high="),
    (dict(weights=(Tensor("table", ("vocab", "dim"), init="index", high="vocab"),)), "(inputs only)"),
    (dict(inputs=(Tensor("ids", ("batch", "seq"), init="index", high="words"),)), "high='words'"),
    (dict(inputs=(Tensor("ids", ("batch", "seq"), init="index", high=0),)), "high=0"),
    (dict(magnitude="abs"), "MODEL.magnitude must be callable or None"),
    (dict(output=("batch", "seq", lambda s: s["dim"], "nope")), "names size 'nope'"),
])  # fmt: skip
def test_validate_spec_rejects_bad_index_inputs_magnitudes_and_outputs(tmp_path, overrides, needle):
    spec = load_model("embedding")
    fields = {f: getattr(spec, f) for f in ("name", "summary", "sizes", "inputs", "weights", "output", "build_keras",
                                             "forward", "flops", "reduction")}  # fmt: skip
    with pytest.raises(ModelLoadError) as ei:
        validate_spec(type(spec)(**{**fields, **overrides}), tmp_path / "embedding.py")
    assert needle in str(ei.value) and "\n" not in str(ei.value)


def test_a_derived_output_length_is_checked_at_every_size():
    spec = load_model("conv1d")
    assert spec.output_shape({**SMALL["conv1d"], "kernel_size": 9}) == (2, 1, 4)
    with pytest.raises(BadSizeError, match="length=8 kernel_size=9"):
        spec.output_shape({**SMALL["conv1d"], "length": 8, "kernel_size": 9})


# ------------------------------------------------------------------------------------------- bad sizes


def test_conv1d_refuses_a_length_shorter_than_its_kernel():
    with pytest.raises(BadSizeError, match="conv1d needs length >= kernel_size, got length=2 kernel_size=3"):
        api.plan(["conv1d"], sizes={"length": "2"}, mode="parity")


# --------------------------------------------------------------------------- one real parity run, all of them


def installed_backends() -> list[str]:
    found = ["tensorflow"] + [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]
    if os.environ.get("CI") and len(found) < 3:
        pytest.fail("CI must test every backend; .ci/run installs jax and torch")
    return found


def test_every_new_model_passes_parity_on_every_backend():
    backends = installed_backends()
    plan = api.plan(list(NEW), sizes={"batch": "1,8"}, mode="parity", backends=backends, processes=1)
    result = api.run(plan, None)
    df = result.results
    assert result.ok, (result.failures, df[~df["parity_ok"]][["model", "backend", "path", "parity_message"]])
    assert set(df["model"]) == set(NEW) and set(df["backend"]) == set(backends)
    for (model, backend), rows in df.groupby(["model", "backend"]):
        assert {"numpy", "predict", "call", "compiled"} <= set(rows["path"]), (model, backend)
        assert (rows["parity_max_rel_err"] <= rows["parity_tol"]).all()
    exact = df[df["model"] == "embedding"]
    assert (exact["parity_max_abs_err"] == 0).all()  # a gather does not round
