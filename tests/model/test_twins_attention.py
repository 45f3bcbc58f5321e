"""The MultiHeadAttention twin against Keras (TensorFlow, JAX and torch) and its refusals.

Named models are built and saved by Keras on TensorFlow in one child process (:func:`test_autotwin.build_models`,
weights keyed as kbench reads them: ``<layer>/<query|key|value|attention_output>/<variable>``), loaded again on JAX
and torch, and each twin, generated from the saved config alone, is checked with kbench's parity rule. Unit tests
without Keras pin shapes, weights, FLOPs, values against an einsum reference, and every refusal. The random
configurations are in ``test_twins_property.py``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import test_autotwin
from hypothesis import given, settings
from hypothesis import strategies as st
from test_autotwin import _case, _check, build_models

from kbench.model import autotwin, keras_file, keras_spec
from kbench.model.twins import registry
from kbench.model.twins.base import Call, Unsupported

TWO = "q, v = Input((4, 6)), Input((7, 3)); return Model([q, v], {})"
THREE = "q, v, k = Input((4, 6)), Input((5, 3)), Input((5, 2)); return Model([q, v, k], {})"
SELF = "x = Input((5, 8)); return Model(x, {})"

MODELS: dict[str, str] = {
    "mha_self": SELF.format("L.MultiHeadAttention(2, 4)(x, x)"),
    "mha_self_dropout": SELF.format("L.MultiHeadAttention(2, 4, dropout=0.3)(x, x)"),
    "mha_cross_value_dim": TWO.format("L.MultiHeadAttention(3, 2, value_dim=5)(q, v)"),
    "mha_output_shape_list": TWO.format("L.MultiHeadAttention(2, 3, output_shape=(2, 3))(q, v)"),
    "mha_key": THREE.format("L.MultiHeadAttention(2, 3, output_shape=7)(q, v, k)"),
    "mha_keywords_nobias": THREE.format("L.MultiHeadAttention(2, 3, use_bias=False)(query=q, key=k, value=v)"),
    "mha_two_axes": "x = Input((3, 4, 6)); return Model(x, L.MultiHeadAttention(2, 3)(x, x))",
    "transformer_block": textwrap.dedent("""\
        x = Input((10, 16))
        h = L.LayerNormalization()(L.Add()([x, L.MultiHeadAttention(4, 8)(x, x)]))
        h = L.LayerNormalization()(L.Add()([h, L.Dense(16)(L.Dense(32, activation='relu')(h))]))
        return Model(x, L.Dense(3, activation='softmax')(L.GlobalAveragePooling1D()(h)))"""),
    # Keras on TensorFlow adds a head size 1 projection's bias along the steps when there are as many steps as heads
    "mha_bias_bug": "q, v = Input((3, 4)), Input((2, 3)); return Model([q, v], L.MultiHeadAttention(2, 1)(q, v))",
    "mha_causal": SELF.format("L.MultiHeadAttention(2, 4, name='m')(x, x, use_causal_mask=True)"),
    "mha_mask": "x, m = Input((5, 8)), Input((5, 5), dtype='int32'); "
                "return Model([x, m], L.MultiHeadAttention(2, 4, name='m')(x, x, attention_mask=m))",
    "mha_axes": "x = Input((3, 4, 6)); "
                "return Model(x, L.MultiHeadAttention(2, 3, attention_axes=(2,), name='m')(x, x))",
    "mha_gate": SELF.format("L.MultiHeadAttention(2, 4, use_gate=True, name='m')(x, x)"),
}
NO_TWIN = {"mha_causal": "use_causal_mask", "mha_mask": "attention_mask", "mha_axes": "attention_axes",
           "mha_gate": "use_gate"}  # fmt: skip
KERAS_WRONG = {"mha_bias_bug"}  # on TensorFlow only: see twin_property.keras_bug
WITH_TWIN = [n for n in MODELS if n not in NO_TWIN]

# test_autotwin's builder keys weights "<layer>/<variable name>": MultiHeadAttention's four projections all name
# theirs kernel and bias, so here the builder keys them as kbench reads a model (keras_spec.weight_keys)
_FLAT_KEYS = ('    weights = {f"{l.name}/{v.name}": keras.ops.convert_to_numpy(v.value) for l in model.layers '
              'for v in l.weights}\n')
_KBENCH_KEYS = ("    from kbench.model.keras_spec import weight_keys\n"
                "    weights = {k: keras.ops.convert_to_numpy(v.value) for l in model.layers "
                "for k, v in weight_keys(l)}\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("twins_attention")
    assert _FLAT_KEYS in test_autotwin.BUILDER
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_autotwin, "BUILDER", test_autotwin.BUILDER.replace(_FLAT_KEYS, _KBENCH_KEYS))
        build_models(folder, list(MODELS), MODELS)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in WITH_TWIN if n not in KERAS_WRONG])
def test_twin_matches_keras(built, name):
    spec, inputs, weights, keras_out = _case(built, name)
    assert spec.no_twin == "" and spec.forward is not None, spec.no_twin
    result = _check(spec, inputs, weights, keras_out, name)
    assert result.ok, f"{name}: {result.message}"


@pytest.mark.slow
def test_keras_on_tensorflow_adds_a_unit_heads_bias_along_the_steps(built):
    """Keras' bug, not the twin's: its TensorFlow ``ops.add`` squeezes the key projection's ``(2, 1)`` bias to a
    vector and, the key having 2 steps as there are 2 heads, adds it along the steps (NCHW). The twin passes the
    same model on JAX and torch (:func:`test_twin_matches_keras_on_jax_and_torch`). Once this fails, Keras has
    fixed it: drop the ``mha_bias`` case of ``twin_property.keras_bug`` and this test."""
    spec, inputs, weights, keras_out = _case(built, "mha_bias_bug")
    assert not _check(spec, inputs, weights, keras_out, "mha_bias_bug").ok


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NO_TWIN))
def test_an_option_the_twin_lacks_means_no_twin_naming_it(built, name):
    spec = keras_spec.load_spec(built / f"{name}.keras")
    assert spec.forward is None and spec.no_twin.startswith("no NumPy twin (layer 'm'")
    assert NO_TWIN[name] in spec.no_twin


# Keras itself cannot run these on a backend: on JAX, jax.nn.dot_product_attention wants the value's head size to
# be the key's, and Keras' fallback after it fails raises too ("cannot reshape array"); the random configurations
# with a value_dim of their own are counted as refused by Keras there (twin_property)
KERAS_CANNOT = {("jax", "mha_cross_value_dim")}


@pytest.fixture(scope="module")
def on_backend(built):
    """``ensure(backend)``: Keras' outputs on ``backend`` computed once per module, then reused."""
    done: set[str] = set()

    def ensure(backend: str) -> None:
        if backend not in done:
            test_autotwin.run_on_backend(built, [n for n in WITH_TWIN if (backend, n) not in KERAS_CANNOT], backend)
            done.add(backend)

    return ensure


@pytest.mark.slow
@pytest.mark.parametrize("backend,name", [(b, n) for b in ("jax", "torch") for n in WITH_TWIN
                                          if (b, n) not in KERAS_CANNOT])  # fmt: skip
def test_twin_matches_keras_on_jax_and_torch(built, on_backend, backend, name):
    on_backend(backend)
    test_autotwin.check_on_backend(built, name, backend)


# -- unit tests, without Keras ----------------------------------------------------------------------------------------


def _emit(config: dict, *shapes: tuple, kwargs: dict | None = None):
    node = keras_file.Node("l", "MultiHeadAttention", {"name": "l", **config},
                           tuple(f"t{i}" for i in range(len(shapes))), kwargs or {})  # fmt: skip
    return registry.LAYERS["MultiHeadAttention"](Call(node, tuple(f"x{i}" for i in range(len(shapes))), shapes))


def _reference(q, v, k, w, heads_bias=True):
    """Keras' MultiHeadAttention as einsums, in float64."""
    b = (lambda n: w[n]) if heads_bias else (lambda n: 0.0)
    qh = np.einsum("btd,dnh->btnh", q, w["l/query/kernel"]) + b("l/query/bias")
    kh = np.einsum("bsd,dnh->bsnh", k, w["l/key/kernel"]) + b("l/key/bias")
    vh = np.einsum("bsd,dnh->bsnh", v, w["l/value/kernel"]) + b("l/value/bias")
    s = np.einsum("btnh,bsnh->bnts", qh / math.sqrt(qh.shape[-1]), kh)
    p = np.exp(s - s.max(-1, keepdims=True))
    mixed = np.einsum("bnts,bsnh->btnh", p / p.sum(-1, keepdims=True), vh)
    return np.einsum("btnh,nho->bto", mixed, w["l/attention_output/kernel"]) + b("l/attention_output/bias")


def test_cross_attention_shapes_weights_flops_and_values():
    emitted = _emit({"num_heads": 3, "key_dim": 4, "value_dim": 2, "output_shape": [5]}, (6, 7), (9, 3), (9, 2))
    assert emitted.shape == (6, 5)
    assert emitted.weights == (("query/kernel", (7, 3, 4)), ("query/bias", (3, 4)), ("key/kernel", (2, 3, 4)),
                               ("key/bias", (3, 4)), ("value/kernel", (3, 3, 2)), ("value/bias", (3, 2)),
                               ("attention_output/kernel", (3, 2, 5)), ("attention_output/bias", (5,)))  # fmt: skip
    project = 2 * 3 * (6 * 7 * 4 + 9 * 2 * 4 + 9 * 3 * 2) + 2 * 6 * 3 * 2 * 5
    biases = 3 * (6 * 4 + 9 * 4 + 9 * 2) + 6 * 5
    attend = 6 * 3 * 4 + 3 * 6 * 9 * (2 * 4 + 3 + 2 * 2)
    assert emitted.flops == project + biases + attend
    assert emitted.reduction == 7 + 4 + 2 * 9 + 3 * 2
    rng = np.random.default_rng(0)
    w = {f"l/{n}": rng.standard_normal(s) for n, s in emitted.weights}
    q, v, k = rng.standard_normal((2, 6, 7)), rng.standard_normal((2, 9, 3)), rng.standard_normal((2, 9, 2))
    scope = {"np": np, "W": w, "x0": q, "x1": v, "x2": k}
    exec(registry.helpers_for(emitted.code), scope)  # noqa: S102
    np.testing.assert_allclose(eval(emitted.code, scope), _reference(q, v, k, w), rtol=1e-12)  # noqa: S307


def test_self_attention_reads_one_tensor_twice_and_keeps_float32():
    inp = {"module": "keras.layers", "class_name": "InputLayer", "name": "in", "inbound_nodes": [],
           "config": {"batch_shape": [None, 5, 4], "dtype": "float32", "name": "in"}}  # fmt: skip
    t = {"class_name": "__keras_tensor__", "config": {"shape": [None, 5, 4], "keras_history": ["in", 0, 0]}}
    layer = {"module": "keras.layers", "class_name": "MultiHeadAttention", "name": "l",
             "config": {"name": "l", "num_heads": 2, "key_dim": 3, "use_bias": False},
             "inbound_nodes": [{"args": [], "kwargs": {"query": t, "value": t}}]}  # fmt: skip
    body = {"name": "m", "layers": [inp, layer], "input_layers": [["in", 0, 0]], "output_layers": [["l", 0, 0]]}
    twin = autotwin.build(keras_file.graph_from_config({"class_name": "Functional", "config": body}, "m"))
    assert isinstance(twin, autotwin.Twin) and twin.output_shape == (5, 4)
    assert [k for k, _ in twin.weights] == [f"l/{p}/kernel" for p in ("query", "key", "value", "attention_output")]
    rng = np.random.default_rng(1)
    w = {k: rng.standard_normal(s).astype(np.float32) for k, s in twin.weights}
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    out = twin.forward(w, {"in": x})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(x, x, x, w, heads_bias=False), rtol=2e-4, atol=1e-5)
    assert "_mha(x0, x0, x0" in twin.source and "_softmax" in twin.source


def test_two_attended_axes_are_their_steps_flattened():
    emitted = _emit({"num_heads": 2, "key_dim": 3}, (3, 4, 6), (3, 4, 6))
    assert emitted.shape == (3, 4, 6) and emitted.reduction == 6 + 3 + 2 * 12 + 2 * 3
    rng = np.random.default_rng(2)
    w = {f"l/{n}": rng.standard_normal(s) for n, s in emitted.weights}
    x = rng.standard_normal((2, 3, 4, 6))
    scope = {"np": np, "W": w, "x0": x, "x1": x}
    exec(registry.helpers_for(emitted.code), scope)  # noqa: S102
    flat = x.reshape(2, 12, 6)
    np.testing.assert_allclose(eval(emitted.code, scope), _reference(flat, flat, flat, w).reshape(2, 3, 4, 6),
                               rtol=1e-12)  # fmt: skip  # noqa: S307


MHA = {"num_heads": 2, "key_dim": 3}
TENSOR = {"class_name": "__keras_tensor__", "config": {"keras_history": ["m", 0, 0]}}
REFUSALS = [
    ({**MHA, "num_heads": 0}, [(4, 6), (5, 3)], {}, "num_heads", True),
    ({**MHA, "num_heads": "2"}, [(4, 6), (5, 3)], {}, "num_heads", True),
    ({**MHA, "key_dim": None}, [(4, 6), (5, 3)], {}, "key_dim", True),
    ({**MHA, "key_dim": 2.5}, [(4, 6), (5, 3)], {}, "key_dim", True),
    ({**MHA, "value_dim": -1}, [(4, 6), (5, 3)], {}, "value_dim", True),
    ({**MHA, "use_bias": "yes"}, [(4, 6), (5, 3)], {}, "use_bias", True),
    ({**MHA, "output_shape": [0]}, [(4, 6), (5, 3)], {}, "output_shape", True),
    ({**MHA, "output_shape": "7"}, [(4, 6), (5, 3)], {}, "output_shape", True),
    ({**MHA, "output_shape": []}, [(4, 6), (5, 3)], {}, "output_shape", True),
    ({**MHA, "dropout": 1.5}, [(4, 6), (5, 3)], {}, "dropout", True),
    ({**MHA, "dropout": "0.1"}, [(4, 6), (5, 3)], {}, "dropout", True),
    ({**MHA, "attention_axes": ["a"]}, [(4, 6), (5, 3)], {}, "attention_axes", True),
    ({**MHA, "attention_axes": [2]}, [(3, 4, 6), (3, 4, 6)], {}, "attention_axes", False),
    ({**MHA, "attention_axes": -3}, [(3, 4, 6), (3, 4, 6)], {}, "attention_axes", False),
    ({**MHA, "use_gate": True}, [(4, 6), (5, 3)], {}, "use_gate", False),
    ({**MHA, "use_gate": "no"}, [(4, 6), (5, 3)], {}, "use_gate", True),
    ({**MHA, "sliding_window": 2}, [(4, 6), (5, 3)], {}, "sliding_window", False),
    (MHA, [(4, 6), (5, 3)], {"use_causal_mask": True}, "use_causal_mask", False),
    (MHA, [(4, 6), (5, 3)], {"return_attention_scores": True}, "return_attention_scores", False),
    (MHA, [(4, 6), (5, 3), (5, 5)], {"attention_mask": TENSOR}, "attention_mask", False),
    (MHA, [(4, 6), (5, 3)], {"value_mask": [[True]]}, "value_mask", False),
    (MHA, [(4, 6), (5, 3), (5, 3), (4,)], {}, "mask", False),
    (MHA, [(4, 6)], {}, "query and a value", False),
    (MHA, [(4, 6)], {"key": TENSOR}, "query and a value", False),
    (MHA, [(6,), (3,)], {}, "(steps..., features)", False),
    (MHA, [(4, 6), (5, 3), (6, 2)], {}, "value's steps the key's", False),
    (MHA, [(4, 6), (2, 5, 3)], {}, "one rank", False),
]


@pytest.mark.parametrize("config,shapes,kwargs,field,invalid", REFUSALS,
                         ids=[f"{r[3]}-{i}" for i, r in enumerate(REFUSALS)])  # fmt: skip
def test_a_config_the_twin_cannot_honour_is_refused_naming_the_field(config, shapes, kwargs, field, invalid):
    with pytest.raises(Unsupported) as info:
        _emit(config, *shapes, kwargs=kwargs)
    assert field in info.value.why and info.value.node.name == "l" and "\n" not in info.value.why
    assert (type(info.value).__name__ == "BadConfig") == invalid, info.value.why


def test_dropout_and_default_attention_axes_are_honoured():
    for extra in ({"dropout": 0.5}, {"attention_axes": [1]}, {"attention_axes": -2}, {"attention_axes": None},
                  {"value_dim": None, "output_shape": None}):  # fmt: skip
        assert _emit({**MHA, **extra}, (4, 6), (5, 3)).shape == (4, 6), extra
    assert _emit({**MHA, "attention_axes": [1, 2]}, (3, 4, 6), (3, 4, 6)).shape == (3, 4, 6)
    assert _emit(MHA, (4, 6), (5, 3), kwargs={"training": False, "use_causal_mask": False}).shape == (4, 6)


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.floats(allow_nan=True), st.text(max_size=3),
                 st.lists(st.one_of(st.integers(-3, 9), st.none(), st.text(max_size=2)), max_size=3))  # fmt: skip
FIELDS = ["num_heads", "key_dim", "value_dim", "use_bias", "output_shape", "dropout", "attention_axes", "use_gate",
          "sliding_window"]  # fmt: skip
CALL = ["use_causal_mask", "return_attention_scores", "attention_mask", "value_mask", "training", "key", "value"]


@settings(max_examples=200)
@given(config=st.dictionaries(st.sampled_from(FIELDS), JUNK), kwargs=st.dictionaries(st.sampled_from(CALL), JUNK),
       shapes=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), min_size=1, max_size=4))
def test_junk_configs_and_calls_never_raise_anything_else(config, kwargs, shapes):
    """Whatever the config and the call hold, the emitter gives a twin or a one-line refusal naming a reason."""
    try:
        emitted = _emit({**MHA, **config}, *shapes, kwargs=kwargs)
    except Unsupported as exc:
        assert exc.why and "\n" not in exc.why
        return
    assert emitted.code.startswith("_mha(") and all(d >= 1 for d in emitted.shape)
