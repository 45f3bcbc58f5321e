"""The automatic NumPy twin against Keras, layer by layer and activation by activation.

Small models are built and saved with Keras (TensorFlow backend) in one child process (this process never imports
Keras); the twin is generated here from each file's config alone and checked with kbench's own parity rule.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kbench.measure import parity
from kbench.model import autotwin, keras_file, keras_spec
from kbench.model.twins.dense import ACTIVATIONS

# name -> the body of a builder: `keras` is imported, `Input`, `L` (keras.layers) and `Model` are bound
MODELS: dict[str, str] = {
    **{f"act_{a}": f"x = Input((12,)); return Model(x, L.Dense(8, activation={a!r})(x))"
       for a in ACTIVATIONS if a != "gelu_approximate"},
    "dense_nobias": "x = Input((12,)); return Model(x, L.Dense(8, use_bias=False)(x))",
    "dense_3d": "x = Input((3, 12)); return Model(x, L.Dense(5, activation='relu')(x))",
    "layernorm": "x = Input((12,)); return Model(x, L.LayerNormalization()(L.Dense(16)(x)))",
    "layernorm_rms": "x = Input((12,)); return Model(x, L.LayerNormalization(rms_scaling=True)(x))",
    "layernorm_plain": "x = Input((12,)); return Model(x, L.LayerNormalization(center=False, scale=False, epsilon=1e-5)(x))",
    "layernorm_3d": "x = Input((3, 4)); return Model(x, L.LayerNormalization(axis=[1, 2])(x))",
    "batchnorm": "x = Input((12,)); return Model(x, L.BatchNormalization()(x))",
    "batchnorm_axis1": "x = Input((3, 4)); return Model(x, L.BatchNormalization(axis=1, center=False)(x))",
    "embedding": "x = Input((5,), dtype='int32'); return Model(x, L.Dense(3)(L.Flatten()(L.Embedding(20, 4)(x))))",
    "embedding_float_ids": "x = Input((5,)); return Model(x, L.Embedding(7, 2)(x))",
    "dot": "a = Input((6,)); b = Input((6,)); return Model([a, b], L.Dot(axes=1)([a, b]))",
    "dot_normalize": "a = Input((6,)); b = Input((6,)); return Model([a, b], L.Dot(axes=-1, normalize=True)([a, b]))",
    "dot_3d_22": "a = Input((3, 4)); b = Input((5, 4)); return Model([a, b], L.Dot(axes=(2, 2))([a, b]))",
    "dot_3d_11": "a = Input((4, 3)); b = Input((4, 5)); return Model([a, b], L.Dot(axes=(1, 1))([a, b]))",
    "dot_3d_21": "a = Input((3, 4)); b = Input((4, 5)); return Model([a, b], L.Dot(axes=(2, 1), normalize=True)([a, b]))",
    "add_concat": textwrap.dedent("""\
        a = Input((6,)); b = Input((6,))
        s = L.Add()([L.Dense(4)(a), L.Dense(4)(b), L.Dense(4)(a)])
        return Model([a, b], L.Concatenate()([s, b]))"""),
    "concat_axis1": "a = Input((2, 3)); b = Input((4, 3)); return Model([a, b], L.Concatenate(axis=1)([a, b]))",
    "reshape_flatten": "x = Input((12,)); return Model(x, L.Flatten()(L.Reshape((3, -1))(L.Dense(12)(x))))",
    "dropout": "x = Input((12,)); return Model(x, L.Dense(4)(L.Dropout(0.5)(x)))",
    "softmax_layer": "x = Input((3, 4)); return Model(x, L.Softmax(axis=1)(x))",
    "activation_layer": "x = Input((12,)); return Model(x, L.Activation('tanh')(L.Dense(6)(x)))",
    "relu_layer": "x = Input((12,)); return Model(x, L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.5)(x))",
    "relu_layer_leaky": "x = Input((12,)); return Model(x, L.ReLU(negative_slope=0.3)(x))",
    "sequential_mlp": textwrap.dedent("""\
        return keras.Sequential([Input((32,)), L.Dense(64, activation='relu'), L.LayerNormalization(),
                                 L.Dense(10, activation='softmax')])"""),
    "global_max_pool_1d": "x = Input((5, 3)); return Model(x, L.Dense(2)(L.GlobalMaxPooling1D()(L.Dense(4, activation='tanh')(x))))",
    "global_max_pool_1d_first": "x = Input((5, 3)); return Model(x, L.GlobalMaxPooling1D(data_format='channels_first', keepdims=True)(x))",
    "no_twin_conv": "x = Input((8, 3)); return Model(x, L.Dense(2)(L.Flatten()(L.Conv1DTranspose(4, 3, name='conv')(x))))",
    "no_twin_gru": "x = Input((5, 3)); return Model(x, L.GRU(4, name='gru', return_state=True)(x)[0])",
}

BUILDER = """
import json, os, sys
import numpy as np
import keras
from keras import Input, Model, layers as L

out, names = sys.argv[1], json.loads(sys.argv[2])
SOURCES = json.loads(sys.argv[3])
rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)  # Keras' initializers too: the same weights every run
for name in names:
    scope = {"keras": keras, "Input": Input, "Model": Model, "L": L}
    exec("def build():\\n" + "\\n".join("    " + line for line in SOURCES[name].splitlines()), scope)
    model = scope["build"]()
    for layer in model.layers:  # trained-looking weights: no zero bias, BatchNormalization with real statistics
        ws = [w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            ws[-1] = np.abs(ws[-1]) + 0.5
        layer.set_weights(ws)
    model.save(os.path.join(out, name + ".keras"))
    xs = []
    for t in model.inputs:
        shape = (4, *t.shape[1:])
        emb = [l for l in model.layers if type(l).__name__ == "Embedding"]
        if emb:
            xs.append(rng.integers(0, emb[0].input_dim, shape).astype(t.dtype))
        else:
            xs.append((2 * rng.standard_normal(shape)).astype(t.dtype))
    y = keras.ops.convert_to_numpy(model(xs if len(xs) > 1 else xs[0], training=False))
    weights = {f"{l.name}/{v.name}": keras.ops.convert_to_numpy(v.value) for l in model.layers for v in l.weights}
    np.savez(os.path.join(out, name + ".npz"), y=y, **{f"x{i}": x for i, x in enumerate(xs)},
             **{f"w:{k}": v for k, v in weights.items()})
"""


def build_models(folder: Path, names: list[str], sources: dict[str, str] | None = None) -> None:
    """Build and save ``names`` (keys of ``sources``, default :data:`MODELS`) with Keras on TensorFlow in a child
    process: ``<name>.keras`` and ``<name>.npz`` (inputs ``x<i>``, Keras' output ``y``, weights ``w:<key>``)."""
    sources = sources or MODELS
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", BUILDER, str(folder), json.dumps(names), json.dumps(sources)],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("autotwin")
    build_models(folder, list(MODELS))
    return folder


def _case(folder: Path, name: str):
    spec = keras_spec.load_spec(folder / f"{name}.keras")
    data = np.load(folder / f"{name}.npz")
    inputs = {t.name: data[f"x{i}"].astype(t.dtype_for("float32")) for i, t in enumerate(spec.inputs)}
    weights = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    return spec, inputs, weights, data["y"]


ON_BACKEND = """
import json, os, sys
import numpy as np
import keras
from kbench.model.keras_spec import weight_keys

folder, names = sys.argv[1], json.loads(sys.argv[2])
for name in names:
    model = keras.saving.load_model(os.path.join(folder, name + ".keras"), compile=False, safe_mode=True)
    data = np.load(os.path.join(folder, name + ".npz"))
    xs = [data[f"x{i}"] for i in range(len(model.inputs))]
    y = keras.ops.convert_to_numpy(model(xs if len(xs) > 1 else xs[0], training=False))
    weights = {k: keras.ops.convert_to_numpy(v.value) for layer in model.layers for k, v in weight_keys(layer)}
    backend = keras.backend.backend()
    np.savez(os.path.join(folder, f"{name}.{backend}.npz"), y=y, **{f"w:{k}": v for k, v in weights.items()})
"""


def run_on_backend(folder: Path, names: list[str], backend: str) -> None:
    """Load each saved model with Keras on ``backend`` (jax, torch) in a child process and save its output on the
    builder's inputs, and its weights as kbench reads them: ``<name>.<backend>.npz`` beside the model."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", ON_BACKEND, str(folder), json.dumps(names)], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def backend_case(folder: Path, name: str, backend: str):
    """:func:`_case` with Keras' output and weights from ``backend`` (:func:`run_on_backend`)."""
    spec, inputs, _, _ = _case(folder, name)
    data = np.load(folder / f"{name}.{backend}.npz")
    return spec, inputs, {k[2:]: data[k] for k in data.files if k.startswith("w:")}, data["y"]


def _check(spec, inputs, weights, keras_out, name: str) -> parity.ParityResult:
    twin = np.asarray(spec.forward(weights, inputs))
    assert twin.shape == keras_out.shape == spec.output_shape({"batch": len(keras_out)}), name
    assert twin.dtype == keras_out.dtype, name  # the twin computes in the model's dtype
    ref = parity.reference(spec, weights, inputs, {})
    mags = parity.magnitude(spec, weights, inputs, {})
    tol = parity.tolerance("float32", spec.reduction({"batch": len(keras_out)}))
    return parity.check("call", keras_out, ref, twin, tol, mags)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if not n.startswith("no_twin")])
def test_twin_matches_keras(built, name):
    spec, inputs, weights, keras_out = _case(built, name)
    assert spec.no_twin == "" and spec.forward is not None
    result = _check(spec, inputs, weights, keras_out, name)
    assert result.ok, f"{name}: {result.message}"
    # and the tolerance is not vacuous: the scale M stays within a small factor of the outputs' size
    m = parity.magnitude(spec, weights, inputs, {})
    assert float(np.max(m)) <= 50 * max(float(np.max(np.abs(keras_out))), 1e-3), name


@pytest.fixture(scope="module", params=["jax", "torch"])
def on_backend(request, built) -> str:
    run_on_backend(built, [n for n in MODELS if not n.startswith("no_twin")], request.param)
    return request.param


# Keras' own inaccuracies on a backend, pinned: each must keep failing parity (or the entry goes)
BACKEND_INACCURACIES = {
    ("torch", "act_gelu"): "Keras on torch computes the exact GELU as 0.5 x (1 + erf(x / sqrt 2)): below x = -4 the "
                           "sum cancels, an absolute error of about eps |x| on a result near 1e-7",
    ("torch", "conv1d_nobias_gelu"): "the same GELU, after a convolution",
    ("torch", "avgpool1d_same"): "Keras on torch counts the padded zeros in a 'same' AveragePooling1D window at the "
                                 "edges (26% off there); TensorFlow and JAX average the real elements only",
}


def check_on_backend(folder: Path, name: str, backend: str) -> None:
    """The twin against Keras on ``backend`` under kbench's parity rule, known inaccuracies pinned."""
    spec, inputs, weights, keras_out = backend_case(folder, name, backend)
    result = _check(spec, inputs, weights, keras_out, name)
    if (backend, name) in BACKEND_INACCURACIES:
        assert not result.ok, f"now within tolerance: drop the entry ({BACKEND_INACCURACIES[backend, name]})"
        return
    assert result.ok, f"{name} on {backend}: {result.message}"


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if not n.startswith("no_twin")])
def test_twin_matches_keras_on_jax_and_torch(built, on_backend, name):
    check_on_backend(built, name, on_backend)


@pytest.mark.slow
@pytest.mark.parametrize("name,layer", [("no_twin_conv", "conv"), ("no_twin_gru", "gru")])
def test_unsupported_layer_means_no_twin(built, name, layer):
    spec = keras_spec.load_spec(built / f"{name}.keras")
    assert spec.forward is None and spec.magnitude is None
    assert spec.no_twin.startswith(f"no NumPy twin (layer {layer!r}")
    assert spec.no_twin in spec.summary


@pytest.mark.slow
def test_parity_catches_a_subtly_wrong_twin(built, monkeypatch):
    """Exact GELU in Keras, the tanh approximation in the twin (at most ~1e-3 apart): the measured M must be tight
    enough to fail it, through a LayerNormalization and a softmax."""
    sources = {"gelu_mlp": textwrap.dedent("""\
        return keras.Sequential([Input((32,)), L.Dense(64, activation='gelu'), L.LayerNormalization(),
                                 L.Dense(10, activation='softmax')])""")}
    build_models(built, ["gelu_mlp"], sources)
    spec, inputs, weights, keras_out = _case(built, "gelu_mlp")
    assert _check(spec, inputs, weights, keras_out, "gelu_mlp").ok
    monkeypatch.setitem(ACTIVATIONS, "gelu", ACTIVATIONS["gelu_approximate"])
    wrong, inputs, weights, keras_out = _case(built, "gelu_mlp")
    result = _check(wrong, inputs, weights, keras_out, "gelu_mlp")
    assert not result.ok, "an approximate GELU passed parity against Keras' exact one"


def test_source_is_numpy_only_and_names_are_literals(tmp_path):
    """A hostile layer name reaches the generated source only as a string literal (repr), never as code."""
    name = "evil')\nimport os  # \u202e"
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": [None, 3], "dtype": "float32", "name": "in"}},
        {"module": "keras.layers", "class_name": "Dense",
         "config": {"name": name, "units": 2, "activation": "relu", "use_bias": True,
                    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}}}]}}
    twin = autotwin.build(keras_file.graph_from_config(config, "m.keras"))
    assert isinstance(twin, autotwin.Twin)
    imports = {a.name for n in ast.walk(ast.parse(twin.source)) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in n.names}
    assert imports == {"numpy"}
    w = {f"{name}/kernel": np.ones((3, 2), np.float32), f"{name}/bias": np.full(2, -1.0, np.float32)}
    out = twin.forward(w, {"in": np.array([[1.0, 2.0, -4.0]], np.float32)})
    np.testing.assert_array_equal(out, [[0.0, 0.0]])
    assert out.dtype == np.float32


def test_unknown_activation_and_shared_layer_have_no_twin():
    dense = lambda act: {"module": "keras.layers", "class_name": "Dense",  # noqa: E731
                         "config": {"name": "d", "units": 2, "activation": act}}
    inp = {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 3], "name": "in"}}
    graph = keras_file.graph_from_config(
        {"class_name": "Sequential", "config": {"name": "m", "layers": [inp, dense("sparsemax")]}}, "m.keras")
    twin = autotwin.build(graph)
    assert isinstance(twin, autotwin.NoTwin) and "sparsemax" in twin.reason and "'d'" in twin.reason


def _sequential(*layers: dict, input_shape: list) -> dict:
    inp = {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, *input_shape],
                                                                           "name": "in"}}  # fmt: skip
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [inp, *layers]}}


def _pool(**config) -> dict:
    return {"module": "keras.layers", "class_name": "GlobalMaxPooling1D", "config": {"name": "pool", **config}}


def test_global_max_pooling_1d_twin_shapes_flops_and_values():
    dense = {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": 2, "activation": None}}
    twin = autotwin.build(keras_file.graph_from_config(_sequential(_pool(), dense, input_shape=[5, 3]), "m.keras"))
    assert isinstance(twin, autotwin.Twin) and twin.output_shape == (2,)
    assert twin.flops_per_row == 5 * 3 + (2 * 3 * 2 + 2)  # one comparison per element, then the Dense
    assert twin.reduction == 1 + 3  # a max adds no rounding; the Dense sums 3 terms
    x = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    w = {"d/kernel": np.ones((3, 2), np.float32), "d/bias": np.zeros(2, np.float32)}
    np.testing.assert_array_equal(twin.forward(w, {"in": x}), x.max(axis=1) @ w["d/kernel"])

    first = autotwin.build(keras_file.graph_from_config(
        _sequential(_pool(data_format="channels_first", keepdims=True), input_shape=[5, 3]), "m.keras"))
    assert isinstance(first, autotwin.Twin) and first.output_shape == (5, 1) and first.flops_per_row == 15
    np.testing.assert_array_equal(first.forward({}, {"in": x}), x.max(axis=2, keepdims=True))

    flat = autotwin.build(keras_file.graph_from_config(_sequential(_pool(), input_shape=[5]), "m.keras"))
    assert isinstance(flat, autotwin.NoTwin) and "GlobalMaxPooling1D" in flat.reason


# -- real runs: a model without a twin, and a factory ----------------------------------------------------------------


def _kbench(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kbench", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.mark.slow
def test_run_without_twin_times_keras_paths_only(built, tmp_path):
    out = tmp_path / "reports"
    proc = _kbench("run", "--model", str(built / "no_twin_gru.keras"), "--batch", "1,2", "--quick", "--cell-budget",
                   "0.3", "--processes", "1", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no NumPy twin (layer 'gru'" in proc.stdout
    run = next(out.iterdir())
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert rows and "numpy" not in {r["path"] for r in rows}
    assert all(r["parity_ok"] and "no_twin" in r["flags"] and r["ratio_to_numpy"] is None for r in rows)
    assert all(r["warnings"][0].startswith("no NumPy twin (layer 'gru': return_state=True") for r in rows)
    html = (run / "report.html").read_text()  # the report has no ratio figures, and says why, escaped
    assert "no NumPy twin (layer &#39;gru&#39;" in html and "ratio to NumPy for" not in html


@pytest.mark.slow
def test_factory_model_runs_parity(tmp_path):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""\
        import keras

        def make():
            x = keras.Input((6,))
            return keras.Model(x, keras.layers.Dense(3, activation="tanh")(keras.layers.Dense(5)(x)))
    """))
    proc = _kbench("parity", "--model", "my_models:make", "--batch", "1,3", cwd=tmp_path,
                   env={"KBENCH_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "my_models:make" in proc.stdout and "✗" not in proc.stdout
    assert (tmp_path / "cache" / "factories" / "my_models.make.keras").exists()
