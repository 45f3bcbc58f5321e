"""The recurrent, merge and scaling twins against Keras: SimpleRNN, GRU, LSTM, Bidirectional, TimeDistributed(Dense),
Multiply, Subtract, Average, Maximum, Minimum, UnitNormalization, Rescaling and Normalization.

Three kinds of test: twins of small saved models checked against Keras (TensorFlow backend) under kbench's parity
rule, all built in one child process (:func:`test_autotwin.build_models`); a property test of a few hundred random
recurrent configurations per layer kind, built and run in one more child; and unit tests without Keras for shapes,
FLOPs, weights and every refusal (a bad config value is a twin refused with the field's name, never a traceback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import test_autotwin
from test_autotwin import _case, _check, build_models

from kbench.measure import parity
from kbench.model import autotwin, keras_file, keras_spec
from kbench.model.twins import recurrent, registry
from kbench.model.twins.base import Call, Unsupported

# -- the models: name -> the body of a builder (see test_autotwin.MODELS) ----------------------------------------------

SEQ = "x = Input((6, 3)); return Model(x, {})"
ADAPT = "import numpy as np; data = 3 * np.random.default_rng(1).standard_normal((40, {})) + 1.5"

LAYER_MODELS: dict[str, str] = {
    "simple_rnn": SEQ.format("L.SimpleRNN(5)(x)"),
    "simple_rnn_seq_back_relu": SEQ.format("L.SimpleRNN(4, activation='relu', return_sequences=True, go_backwards=True)(x)"),
    "simple_rnn_nobias_linear": SEQ.format("L.SimpleRNN(4, activation=None, use_bias=False)(x)"),
    "gru": SEQ.format("L.GRU(5)(x)"),
    "gru_reset_before": SEQ.format("L.GRU(5, reset_after=False)(x)"),
    "gru_seq_back": SEQ.format("L.GRU(4, return_sequences=True, go_backwards=True)(x)"),
    "gru_back_last": SEQ.format("L.GRU(4, go_backwards=True)(x)"),
    "gru_nobias": SEQ.format("L.GRU(4, use_bias=False, return_sequences=True)(x)"),
    "gru_nobias_reset_before": SEQ.format("L.GRU(4, use_bias=False, reset_after=False)(x)"),
    "gru_acts": SEQ.format("L.GRU(4, activation='relu', recurrent_activation='hard_sigmoid', reset_after=False)(x)"),
    "lstm": SEQ.format("L.LSTM(5)(x)"),
    "lstm_seq": SEQ.format("L.LSTM(4, return_sequences=True)(x)"),
    "lstm_seq_back": SEQ.format("L.LSTM(4, return_sequences=True, go_backwards=True)(x)"),
    "lstm_nobias": SEQ.format("L.LSTM(4, use_bias=False, unit_forget_bias=False)(x)"),
    "lstm_acts": SEQ.format("L.LSTM(4, activation='softsign', recurrent_activation='hard_sigmoid')(x)"),
    "bidi_lstm_concat_seq": SEQ.format("L.Bidirectional(L.LSTM(3, return_sequences=True))(x)"),
    "bidi_gru_sum": SEQ.format("L.Bidirectional(L.GRU(3), merge_mode='sum')(x)"),
    "bidi_rnn_mul_seq": SEQ.format("L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode='mul')(x)"),
    "bidi_gru_ave_seq": SEQ.format("L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True), merge_mode='ave')(x)"),
    "bidi_own_backward": SEQ.format("L.Bidirectional(L.GRU(3, return_sequences=True), backward_layer=L.GRU(3, "
                                    "return_sequences=True, go_backwards=True, activation='relu'))(x)"),
    "td_dense": SEQ.format("L.TimeDistributed(L.Dense(4, activation='relu'))(x)"),
    "td_dense_4d": "x = Input((2, 3, 4)); return Model(x, L.TimeDistributed(L.Dense(2))(x))",
    "multiply": "a, b, c = Input((2, 3)), Input((2, 3)), Input((2, 3)); return Model([a, b, c], L.Multiply()([a, b, c]))",
    "subtract": "a, b = Input((5,)), Input((5,)); return Model([a, b], L.Subtract()([L.Dense(5)(a), b]))",
    "average": "a, b, c = Input((4,)), Input((4,)), Input((4,)); return Model([a, b, c], L.Average()([a, b, c]))",
    "maximum": "a, b, c = Input((4,)), Input((4,)), Input((4,)); return Model([a, b, c], L.Maximum()([a, b, c]))",
    "minimum": "a, b = Input((2, 3)), Input((2, 3)); return Model([a, b], L.Minimum()([a, b]))",
    "unit_norm": "x = Input((6,)); return Model(x, L.UnitNormalization()(L.Dense(6)(x)))",
    "unit_norm_axes": "x = Input((3, 4)); return Model(x, L.UnitNormalization(axis=[1, 2])(x))",
    "unit_norm_axis1": "x = Input((3, 4)); return Model(x, L.UnitNormalization(axis=1)(x))",
    "rescaling": "x = Input((6,)); return Model(x, L.Rescaling(1 / 255, offset=-1.0)(x))",
    "rescaling_lists": "x = Input((4, 3)); return Model(x, L.Rescaling([1.0, 2.0, 3.0], offset=[0.5, 0.0, -0.5])(x))",
    "rescaling_uint8": "x = Input((4, 3), dtype='uint8'); return Model(x, L.Dense(2)(L.Rescaling(1 / 127.5, offset=-1)(x)))",
    "normalization": f"{ADAPT.format('4, 3')}\n"
                     "n = L.Normalization(); n.adapt(data); x = Input((4, 3)); return Model(x, n(x))",
    "normalization_axes_invert": f"{ADAPT.format('4, 3')}\n"
                                 "n = L.Normalization(axis=(1, 2), invert=True); n.adapt(data)\n"
                                 "x = Input((4, 3)); return Model(x, n(x))",
    "normalization_axis1": f"{ADAPT.format('4, 3')}\n"
                           "n = L.Normalization(axis=1); n.adapt(data); x = Input((4, 3)); return Model(x, n(x))",
    "normalization_no_axis": f"{ADAPT.format('4, 3')}\n"
                             "n = L.Normalization(axis=None); n.adapt(data); x = Input((4, 3)); return Model(x, n(x))",
    "normalization_given": "x = Input((4, 3)); return Model(x, L.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.5, 9.0])(x))",
    "normalization_given_scalar_invert": "x = Input((4, 3)); return Model(x, L.Normalization(axis=None, mean=2.0, variance=3.0, invert=True)(x))",
}

# the realistic models the brief names: each must get a twin that passes parity
REAL_MODELS: dict[str, str] = {
    "gru_classifier": "x = Input((10, 8)); return Model(x, L.Dense(3, activation='softmax')(L.GRU(16)(x)))",
    "lstm_stack": textwrap.dedent("""\
        x = Input((10, 8))
        h = L.LSTM(8)(L.LSTM(12, return_sequences=True)(x))
        return Model(x, L.Dense(4)(h))"""),
    "bidi_lstm_classifier": textwrap.dedent("""\
        x = Input((10, 8))
        return Model(x, L.Dense(3, activation='softmax')(L.Bidirectional(L.LSTM(8))(x)))"""),
    "text_gru": textwrap.dedent("""\
        x = Input((12,), dtype='int32')
        h = L.GRU(16)(L.Embedding(50, 8)(x))
        return Model(x, L.Dense(1, activation='sigmoid')(h))"""),
}

MODELS = {**LAYER_MODELS, **REAL_MODELS}

# test_autotwin's builder, patched twice. (1) It keys weights "<layer>/<variable name>", as kbench.model.keras_spec
# does; a Bidirectional's two directions share their variable names, so here each direction's weights go under
# "<layer>/<forward|backward>/" (the keys the Bidirectional twin reads). (2) An adapted Normalization computes with
# constants taken from its variables when adapted or loaded, not when set_weights changes them: the builder's noise
# reaches its output only through finalize_state (which loading a saved model calls).
_FLAT_KEYS = ('    weights = {f"{l.name}/{v.name}": keras.ops.convert_to_numpy(v.value) for l in model.layers '
              'for v in l.weights}\n')
_DIRECTION_KEYS = '''\
    def keyed(l):
        if type(l).__name__ != "Bidirectional":
            return [(f"{l.name}/{v.name}", v) for v in l.weights]
        sides = (("forward", l.forward_layer), ("backward", l.backward_layer))
        return [(f"{l.name}/{side}/{v.name}", v) for side, sub in sides for v in sub.weights]
    weights = {k: keras.ops.convert_to_numpy(v.value) for l in model.layers for k, v in keyed(l)}
'''
_SET = "        layer.set_weights(ws)\n"
_SET_AND_FINALIZE = _SET + "        if hasattr(layer, 'finalize_state'):\n            layer.finalize_state()\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("twins_recurrent")
    assert _SET in test_autotwin.BUILDER
    builder = test_autotwin.BUILDER.replace(_FLAT_KEYS, _DIRECTION_KEYS).replace(_SET, _SET_AND_FINALIZE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_autotwin, "BUILDER", builder)
        build_models(folder, list(MODELS), MODELS)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_twin_matches_keras(built, name):
    spec, inputs, weights, keras_out = _case(built, name)
    assert spec.no_twin == "" and spec.forward is not None, spec.no_twin
    result = _check(spec, inputs, weights, keras_out, name)
    assert result.ok, f"{name}: {result.message}"
    m = parity.magnitude(spec, weights, inputs, {})  # the tolerance is not vacuous
    assert float(np.max(m)) <= 50 * max(float(np.max(np.abs(keras_out))), 1e-3), name


@pytest.mark.slow
def test_parity_catches_a_wrong_gate_order(built, monkeypatch):
    """Swap the GRU twin's update and reset gates: the parity rule must reject it against Keras."""
    spec, inputs, weights, keras_out = _case(built, "gru_classifier")
    assert _check(spec, inputs, weights, keras_out, "gru_classifier").ok
    bad = "z, r = gate(xt[:, u:2 * u] + inner[:, u:2 * u]), gate(xt[:, :u] + inner[:, :u])"
    good = "z, r = gate(xt[:, :u] + inner[:, :u]), gate(xt[:, u:2 * u] + inner[:, u:2 * u])"
    assert good in registry.HELPER_FUNCTIONS["_gru"]
    monkeypatch.setitem(registry.HELPER_FUNCTIONS, "_gru", registry.HELPER_FUNCTIONS["_gru"].replace(good, bad))
    wrong, inputs, weights, keras_out = _case(built, "gru_classifier")
    assert not _check(wrong, inputs, weights, keras_out, "gru_classifier").ok


WEIGHT_KEYS_CHILD = """
import json, sys
import keras
from kbench.model import keras_spec

print(json.dumps(sorted(keras_spec._Weights(sys.argv[1])(keras, "float32"))))
"""


@pytest.mark.slow
def test_kbench_reads_a_bidirectional_models_weights_under_the_twins_keys(built):
    path = built / "bidi_lstm_classifier.keras"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", WEIGHT_KEYS_CHILD, str(path)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    wanted = {t.name for t in keras_spec.load_spec(path).weights}
    assert wanted <= set(json.loads(proc.stdout.strip().splitlines()[-1]))


# -- the property test: random recurrent layers against Keras ----------------------------------------------------------

PER_KIND = 200
KINDS = ("SimpleRNN", "GRU", "LSTM")
ACTS = ("tanh", "relu", "sigmoid", "linear", "hard_sigmoid", "softsign", "elu", "swish")
# gates that saturate slowly on random weights: a GRU whose update gate is within ~1e-3 of 1 fails the parity rule
# (see test_a_saturated_gru_update_gate_outruns_the_measured_error_scale); tanh gates got there in 3 of 600 draws
GATES = ("sigmoid", "hard_sigmoid", "softsign")


def random_configs(seed: int = 7, per_kind: int = PER_KIND) -> list[dict]:
    """``per_kind`` seeded random configurations of each recurrent layer kind: tiny shapes, every option drawn."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in KINDS:
        for _ in range(per_kind):
            layer = {"units": int(rng.integers(1, 7)), "return_sequences": bool(rng.random() < 0.5),
                     "go_backwards": bool(rng.random() < 0.5), "use_bias": bool(rng.random() < 0.8),
                     "activation": str(rng.choice(ACTS))}  # fmt: skip
            if kind != "SimpleRNN":
                layer["recurrent_activation"] = str(rng.choice(GATES))
            if kind == "GRU":
                layer["reset_after"] = bool(rng.random() < 0.5)
            out.append({"kind": kind, "steps": int(rng.integers(1, 8)), "features": int(rng.integers(1, 6)),
                        "layer": layer})  # fmt: skip
    return out


PROPERTY_CHILD = """
import json, sys
import numpy as np
import keras
from keras import layers as L

out, configs = sys.argv[1], json.load(open(sys.argv[2]))
rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)  # Keras' initializers too: the same weights every run
arrays, models = {}, []
for i, c in enumerate(configs):
    layer = getattr(L, c["kind"])(name="rnn", **c["layer"])
    model = keras.Sequential([keras.Input((c["steps"], c["features"])), layer])
    layer.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in layer.get_weights()])
    x = (1.5 * rng.standard_normal((3, c["steps"], c["features"]))).astype("float32")
    arrays[f"{i}/x"] = x
    arrays[f"{i}/y"] = keras.ops.convert_to_numpy(model(x, training=False))
    for v in layer.weights:
        arrays[f"{i}/w/rnn/{v.name}"] = keras.ops.convert_to_numpy(v.value)
    models.append(keras.saving.serialize_keras_object(model))
np.savez(out + "/arrays.npz", **arrays)
json.dump(models, open(out + "/configs.json", "w"))
"""


@pytest.fixture(scope="module")
def random_cases(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("rnn_property")
    configs = random_configs()
    (folder / "wanted.json").write_text(json.dumps(configs))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", PROPERTY_CHILD, str(folder), str(folder / "wanted.json")], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder, configs


def _saved(folder: Path, name: str, config: dict) -> Path:
    """A ``.keras`` file holding only ``config.json``: all kbench reads to build a twin (weights come separately)."""
    path = folder / f"{name}.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
    return path


@pytest.mark.slow
def test_random_recurrent_layers_match_keras(random_cases):
    folder, configs = random_cases
    arrays, saved = np.load(folder / "arrays.npz"), json.loads((folder / "configs.json").read_text())
    checked, failures = dict.fromkeys(KINDS, 0), []
    for i, (config, model) in enumerate(zip(configs, saved)):
        spec = keras_spec.load_spec(_saved(folder, f"case{i}", model))
        assert spec.forward is not None, (config, spec.no_twin)
        weights = {k.split("/w/", 1)[1]: arrays[k] for k in arrays.files if k.startswith(f"{i}/w/")}
        inputs = {spec.inputs[0].name: arrays[f"{i}/x"]}
        result = _check(spec, inputs, weights, arrays[f"{i}/y"], f"case {i}")
        checked[config["kind"]] += 1
        if not result.ok:
            failures.append((config, result.message))
    assert not failures, f"{len(failures)} of {len(configs)} failed, e.g. {failures[:3]}"
    assert all(n >= PER_KIND for n in checked.values()), checked


# -- unit tests, without Keras -----------------------------------------------------------------------------------------


def _layer(cls: str, name: str = "l", **config) -> dict:
    return {"module": "keras.layers", "class_name": cls, "config": {"name": name, **config}}


def _twin(layer: dict, input_shape: list):
    inp = {"module": "keras.layers", "class_name": "InputLayer",
           "config": {"batch_shape": [None, *input_shape], "name": "in"}}  # fmt: skip
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [inp, layer]}}
    return autotwin.build(keras_file.graph_from_config(config, "m.keras"))


def _emit(cls: str, config: dict, *shapes: tuple):
    """The emitter of ``cls`` called directly on inputs of ``shapes`` (several for a merge)."""
    node = keras_file.Node("l", cls, {"name": "l", **config}, tuple(f"t{i}" for i in range(len(shapes))))
    emitter = registry.LAYERS[cls]
    return emitter(Call(node, tuple(f"x{i}" for i in range(len(shapes))), tuple(shapes)))


@pytest.mark.parametrize("cls,extra,gates,step_flops,bias_shape", [
    ("SimpleRNN", {}, 1, 2, (4,)),
    ("GRU", {"reset_after": True}, 3, 11, (2, 12)),
    ("GRU", {"reset_after": False}, 3, 11, (12,)),
    ("LSTM", {}, 4, 13, (16,)),
])  # fmt: skip
@pytest.mark.parametrize("sequences", [False, True])
def test_recurrent_shapes_weights_flops_and_reduction(cls, extra, gates, step_flops, bias_shape, sequences):
    steps, features, units = 5, 3, 4
    twin = _twin(_layer(cls, "rnn", units=units, return_sequences=sequences, **extra), [steps, features])
    assert isinstance(twin, autotwin.Twin), twin
    assert twin.output_shape == ((steps, units) if sequences else (units,))
    width = gates * units
    assert twin.weights == (("rnn/kernel", (features, width)), ("rnn/recurrent_kernel", (units, width)),
                            ("rnn/bias", bias_shape))  # fmt: skip
    biases = width * (1 + (len(bias_shape) == 2))  # the input bias, and a reset_after GRU's recurrent bias
    assert twin.flops_per_row == steps * (2 * features * width + 2 * units * width + step_flops * units + biases)
    assert twin.reduction == features + units


def test_recurrent_without_bias_has_no_bias_weight_or_flops():
    twin = _twin(_layer("GRU", "g", units=2, use_bias=False), [3, 2])
    assert [k for k, _ in twin.weights] == ["g/kernel", "g/recurrent_kernel"]
    assert twin.flops_per_row == 3 * (2 * 2 * 6 + 2 * 2 * 6 + 11 * 2)


@pytest.mark.parametrize("backwards", [False, True])
def test_simple_rnn_runs_steps_in_order_and_go_backwards_returns_the_processed_order(backwards):
    """A linear SimpleRNN with kernel = recurrent = 1 is a running sum: forwards the cumulative sum, backwards the
    cumulative sum of the reversed steps (Keras returns the outputs in the order it processed them)."""
    twin = _twin(_layer("SimpleRNN", "r", units=1, activation="linear", use_bias=False, return_sequences=True,
                        go_backwards=backwards), [4, 1])  # fmt: skip
    x = np.arange(1.0, 9.0).reshape(2, 4, 1)
    w = {"r/kernel": np.ones((1, 1)), "r/recurrent_kernel": np.ones((1, 1))}
    expected = np.cumsum(x[:, ::-1] if backwards else x, axis=1)
    np.testing.assert_array_equal(twin.forward(w, {"in": x}), expected)
    last = _twin(_layer("SimpleRNN", "r", units=1, activation="linear", use_bias=False, go_backwards=backwards),
                 [4, 1])  # fmt: skip
    np.testing.assert_array_equal(last.forward(w, {"in": x}), expected[:, -1])


def test_lstm_and_gru_twins_keep_float32_and_start_from_zero_state():
    for cls in ("GRU", "LSTM"):
        twin = _twin(_layer(cls, "r", units=3, return_sequences=True), [2, 2])
        w = {k: np.zeros(s, np.float32) for k, s in twin.weights}
        out = twin.forward(w, {"in": np.ones((5, 2, 2), np.float32)})
        assert out.dtype == np.float32 and out.shape == (5, 2, 3)
        np.testing.assert_array_equal(out, 0)  # zero weights, zero state: every candidate and output is 0
        assert "for t in range" in twin.source and "@ kernel" in twin.source  # the loop, one projection matmul


def test_bidirectional_and_time_distributed_shapes_weights_and_flops():
    inner = _layer("LSTM", "inner", units=3, return_sequences=True)
    for mode, out, extra in (("concat", (5, 6), 0), ("sum", (5, 3), 15), ("ave", (5, 3), 30), ("mul", (5, 3), 15)):
        emitted = _emit("Bidirectional", {"layer": inner, "merge_mode": mode}, (5, 2))
        assert emitted.shape == out and emitted.reduction == 2 + 3
        assert [n for n, _ in emitted.weights] == [f"{side}/{v}" for side in ("forward", "backward")
                                                   for v in ("kernel", "recurrent_kernel", "bias")]  # fmt: skip
        one = _emit("LSTM", inner["config"], (5, 2))
        assert emitted.flops == 2 * one.flops + extra
        assert "W['l/forward/kernel']" in emitted.code and "W['l/backward/kernel']" in emitted.code
    td = _twin(_layer("TimeDistributed", "td", layer=_layer("Dense", "d", units=4, activation="relu")), [5, 3])
    assert td.output_shape == (5, 4) and td.weights == (("td/kernel", (3, 4)), ("td/bias", (4,)))
    assert td.flops_per_row == 5 * (2 * 3 * 4 + 4 + 4) and td.reduction == 3


def test_merges_scaling_shapes_and_values():
    a, b, c = (np.random.default_rng(i).standard_normal((2, 3)) for i in range(3))
    for cls, want in (("Multiply", a * b * c), ("Average", (a + b + c) / 3),
                      ("Maximum", np.maximum(np.maximum(a, b), c)), ("Minimum", np.minimum(np.minimum(a, b), c))):
        emitted = _emit(cls, {}, (3,), (3,), (3,))
        assert emitted.shape == (3,)
        np.testing.assert_allclose(eval(emitted.code, {"np": np, "x0": a, "x1": b, "x2": c}), want)  # noqa: S307
    sub = _emit("Subtract", {}, (3,), (3,))
    assert sub.code == "x0 - x1" and sub.flops == 3 and sub.reduction == 2
    unit = _twin(_layer("UnitNormalization", "u", axis=[1, 2]), [2, 3])
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    np.testing.assert_allclose(unit.forward({}, {"in": x}), x / np.sqrt((x * x).sum(axis=(1, 2), keepdims=True)))
    assert unit.reduction == 6 and unit.flops_per_row == 18
    rescale = _twin(_layer("Rescaling", "s", scale=[1.0, 2.0, 3.0], offset=0.5), [2, 3])
    x32 = x.astype(np.float32)
    out = rescale.forward({}, {"in": x32})
    assert out.dtype == np.float32 and np.allclose(out, x32 * np.array([1, 2, 3], np.float32) + 0.5)
    ints = rescale.forward({}, {"in": np.arange(6, dtype=np.uint8).reshape(1, 2, 3)})
    assert ints.dtype == np.float32  # an integer image is cast to the layer's dtype, as Keras does
    norm = _twin(_layer("Normalization", "n", axis=1), [2, 3])
    assert norm.weights == (("n/mean", (2,)), ("n/variance", (2,)))
    w = {"n/mean": np.array([1.0, -1.0]), "n/variance": np.array([4.0, 0.0])}
    np.testing.assert_allclose(norm.forward(w, {"in": x}), (x - [[1.0], [-1.0]]) / [[2.0], [1e-7]])


GRU = {"units": 3}
INNER = _layer("GRU", "g", units=3)

REFUSALS = [
    ("GRU", {"units": 0}, [(5, 2)], "units"),
    ("GRU", {"units": -3}, [(5, 2)], "units"),
    ("GRU", {"units": "8"}, [(5, 2)], "units"),
    ("LSTM", {"units": 2.5}, [(5, 2)], "units"),
    ("SimpleRNN", {"units": True}, [(5, 2)], "units"),
    ("SimpleRNN", {}, [(5, 2)], "units"),
    ("GRU", {**GRU, "return_state": True}, [(5, 2)], "return_state"),
    ("LSTM", {**GRU, "stateful": True}, [(5, 2)], "stateful"),
    ("GRU", {**GRU, "go_backwards": "yes"}, [(5, 2)], "go_backwards"),
    ("GRU", {**GRU, "return_sequences": 1}, [(5, 2)], "return_sequences"),
    ("GRU", {**GRU, "reset_after": "no"}, [(5, 2)], "reset_after"),
    ("LSTM", {**GRU, "use_bias": None}, [(5, 2)], "use_bias"),
    ("GRU", {**GRU, "activation": "sparsemax"}, [(5, 2)], "activation"),
    ("LSTM", {**GRU, "recurrent_activation": "nope"}, [(5, 2)], "recurrent_activation"),
    ("LSTM", {**GRU, "recurrent_activation": 3}, [(5, 2)], "recurrent_activation"),
    ("GRU", GRU, [(5,)], "(time steps, features)"),
    ("GRU", GRU, [(5, 2, 2)], "(time steps, features)"),
    ("GRU", GRU, [(5, 2), (5, 2)], "2 inputs"),
    ("Bidirectional", {"layer": INNER, "merge_mode": None}, [(5, 2)], "merge_mode"),
    ("Bidirectional", {"layer": INNER, "merge_mode": "max"}, [(5, 2)], "merge_mode"),
    ("Bidirectional", {"layer": _layer("Dense", "d", units=2)}, [(5, 2)], "Dense"),
    ("Bidirectional", {}, [(5, 2)], "layer"),
    ("Bidirectional", {"layer": "GRU"}, [(5, 2)], "layer"),
    ("Bidirectional", {"layer": _layer("GRU", "g", units=0)}, [(5, 2)], "units"),
    ("Bidirectional", {"layer": INNER, "backward_layer": _layer("GRU", "b", units=4, go_backwards=True)}, [(5, 2)],
     "directions"),
    ("Bidirectional", {"layer": INNER, "backward_layer": _layer("Conv1D", "c")}, [(5, 2)], "backward_layer"),
    ("TimeDistributed", {"layer": _layer("Conv1D", "c", filters=2)}, [(5, 2)], "Conv1D"),
    ("TimeDistributed", {}, [(5, 2)], "layer"),
    ("TimeDistributed", {"layer": _layer("Dense", "d", units=0)}, [(5, 2)], "units"),
    ("TimeDistributed", {"layer": _layer("Dense", "d", units=2)}, [(5,)], "(time steps, ...)"),
    ("TimeDistributed", {"layer": _layer("Dense", "d", units=2, activation="sparsemax")}, [(5, 2)], "sparsemax"),
    ("Multiply", {}, [(3,)], "2 or more inputs"),
    ("Maximum", {}, [(3,), (4,)], "of one shape"),
    ("Subtract", {}, [(3,), (3,), (3,)], "2 inputs"),
    ("Average", {}, [(3,), (2, 3)], "of one shape"),
    ("UnitNormalization", {"axis": "x"}, [(3, 4)], "axis"),
    ("UnitNormalization", {"axis": 0}, [(3, 4)], "axis"),
    ("UnitNormalization", {"axis": 5}, [(3, 4)], "axis"),
    ("UnitNormalization", {"axis": None}, [(3, 4)], "axis"),
    ("UnitNormalization", {"axis": [1, 1.5]}, [(3, 4)], "axis"),
    ("Rescaling", {"scale": "abc"}, [(3, 4)], "scale"),
    ("Rescaling", {}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": [1.0, "a"]}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": True}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": [[1.0, 2.0], [3.0]]}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": float("nan")}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": []}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": 2.0, "offset": [1.0, 2.0]}, [(3, 4)], "offset"),
    ("Rescaling", {"scale": [[[1.0]]] * 2}, [(3, 4)], "scale"),
    ("Rescaling", {"scale": 2.0, "offset": None}, [(3, 4)], "offset"),
    ("Normalization", {"mean": [1.0, 2.0, 3.0, 4.0]}, [(3, 4)], "variance"),
    ("Normalization", {"invert": "yes"}, [(3, 4)], "invert"),
    ("Normalization", {"axis": "a"}, [(3, 4)], "axis"),
    ("Normalization", {"axis": 0}, [(3, 4)], "axis"),
    ("Normalization", {"mean": [1.0, 2.0], "variance": [1.0, 2.0]}, [(3, 4)], "mean"),
    ("Normalization", {"mean": [[1.0]], "variance": [[1.0]]}, [(3, 4)], "mean"),
    ("Normalization", {"mean": "m", "variance": 1.0}, [(3, 4)], "mean"),
]


@pytest.mark.parametrize("cls,config,shapes,field", REFUSALS,
                         ids=[f"{r[0]}-{r[3]}-{i}" for i, r in enumerate(REFUSALS)])  # fmt: skip
def test_a_config_the_twin_cannot_honour_is_refused_naming_the_field(cls, config, shapes, field):
    with pytest.raises(Unsupported) as info:
        _emit(cls, config, *shapes)
    assert field in info.value.why and info.value.node.name == "l"


def test_refusals_reach_the_model_as_no_twin_naming_the_layer():
    twin = _twin(_layer("LSTM", "lstm", units=3, return_state=True), [4, 2])
    assert isinstance(twin, autotwin.NoTwin) and twin.layer == "lstm" and "return_state" in twin.reason
    twin = _twin(_layer("TimeDistributed", "td", layer=_layer("Conv1D", "c", filters=2)), [4, 2])
    assert isinstance(twin, autotwin.NoTwin) and twin.layer == "td" and "Conv1D" in twin.reason
    twin = _twin(_layer("Rescaling", "rs", scale="x"), [4, 2])
    assert isinstance(twin, autotwin.NoTwin) and twin.layer == "rs" and "scale" in twin.reason


def test_random_configs_cover_every_option_and_kind():
    configs = random_configs()
    assert len(configs) == len(KINDS) * PER_KIND and PER_KIND >= 200
    for kind in KINDS:
        layers = [c["layer"] for c in configs if c["kind"] == kind]
        for option in ("return_sequences", "go_backwards", "use_bias") + (("reset_after",) if kind == "GRU" else ()):
            assert {c[option] for c in layers} == {False, True}, (kind, option)
        assert {c["activation"] for c in layers} == set(ACTS)


@pytest.mark.xfail(strict=True, reason="the parity rule, not the twin: the measured error scale M jitters inputs, "
                                       "weights and layer outputs, not a GRU's update gate z inside the layer, so "
                                       "z's own rounding (eps, absolute) is not covered when 1 - z is ~2.5e-3; "
                                       "Keras on TensorFlow misses the float64 reference by the same 1.9x tol")  # fmt: skip
def test_a_saturated_gru_update_gate_outruns_the_measured_error_scale():
    """No Keras: the twin in float32 against itself in float64. With the update gate's bias at 6 (z = sigmoid(~6),
    a GRU that learned to keep its state), ``z * h + (1 - z) * hh`` loses digits in 1 - z, in Keras as in the twin,
    by more than the parity rule allows on the measured M. Checked once against Keras 3.15 on TensorFlow with
    these very weights: Keras' float32 output misses the float64 reference by 7.2e-6 of S, the twin's by 7.3e-6,
    the tolerance being 3.8e-6; both compute the same formula, so no twin change can pass it. Fixing it means a
    finer M (jittering the gates inside the step), a change of the parity rule, not of the twin."""
    twin = _twin(_layer("GRU", "g", units=2, return_sequences=True), [3, 2])
    rng = np.random.default_rng(0)
    w = {k: (rng.standard_normal(s) * 0.5).astype(np.float32) for k, s in twin.weights}
    w["g/bias"][0, :2] += 6.0
    x = {"in": rng.standard_normal((4, 3, 2)).astype(np.float32)}
    w64, x64 = {k: v.astype(np.float64) for k, v in w.items()}, {"in": x["in"].astype(np.float64)}
    out = twin.forward(w, x)
    result = parity.check("numpy", out, twin.run(w64, x64), out, parity.tolerance("float32", twin.reduction),
                          twin.magnitude(w64, x64))  # fmt: skip
    assert result.ok, result.message


@pytest.fixture(scope="module", params=["jax", "torch"])
def on_backend(request, built) -> str:
    test_autotwin.run_on_backend(built, list(MODELS), request.param)
    return request.param


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_twin_matches_keras_on_jax_and_torch(built, on_backend, name):
    test_autotwin.check_on_backend(built, name, on_backend)
