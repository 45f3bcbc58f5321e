"""The NumPy twins of the convolution, pooling and shape layers against Keras, and their refusals.

As in ``test_autotwin``, Keras (TensorFlow backend) runs only in child processes: one builds and saves every named
model, another computes the outputs of some thousand random layer configurations in one run (the property test).
The twins are generated here from the configs alone and checked with kbench's own parity rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbench.measure import parity
from kbench.model import autotwin, keras_file, keras_spec
import test_autotwin
import twin_property as tp
from test_autotwin import _case, _check, build_models


def _one(shape: tuple, layer: str) -> str:
    """The builder of a model of one layer (``layer``, in keras.layers) on an input of ``shape``."""
    return f"x = Input({shape!r}); return Model(x, L.{layer}(x))"


FIRST = "data_format='channels_first'"
# name -> the body of a builder (see test_autotwin.MODELS): `keras`, `Input`, `L` (keras.layers) and `Model` are bound
MODELS: dict[str, str] = {
    "conv1d": _one((10, 3), "Conv1D(4, 3)"),
    "conv1d_same_stride": _one((10, 3), "Conv1D(5, 4, strides=3, padding='same')"),
    "conv1d_causal_dilated": _one((9, 2), "Conv1D(3, 3, padding='causal', dilation_rate=2)"),
    "conv1d_groups": _one((8, 6), "Conv1D(4, 2, groups=2, activation='relu')"),
    "conv1d_first": _one((3, 9), f"Conv1D(4, 3, {FIRST}, padding='same')"),
    "conv1d_nobias_gelu": _one((7, 3), "Conv1D(4, 2, use_bias=False, activation='gelu')"),
    "conv2d": _one((6, 7, 3), "Conv2D(4, 3)"),
    "conv2d_same_stride2": _one((8, 7, 2), "Conv2D(3, (3, 2), strides=2, padding='same')"),
    "conv2d_dilated_same": _one((9, 9, 2), "Conv2D(3, 3, dilation_rate=(2, 3), padding='same')"),
    "conv2d_groups": _one((6, 6, 6), "Conv2D(9, 2, groups=3, activation='tanh')"),
    "conv2d_first": _one((2, 7, 6), f"Conv2D(3, 3, {FIRST}, strides=2)"),
    "conv2d_softmax": _one((5, 5, 3), "Conv2D(4, 1, activation='softmax')"),
    "conv2d_first_softmax": _one((3, 5, 4), f"Conv2D(2, 2, activation='softmax', {FIRST})"),
    "depthwise": _one((7, 7, 3), "DepthwiseConv2D(3)"),
    "depthwise_mult2_same_stride": _one((8, 7, 3), "DepthwiseConv2D(3, strides=2, padding='same', depth_multiplier=2)"),
    "depthwise_dilated_relu": _one((9, 8, 2), "DepthwiseConv2D((2, 3), dilation_rate=2, activation='relu')"),
    "depthwise_first": _one((3, 6, 6), f"DepthwiseConv2D(2, {FIRST})"),
    "separable": _one((7, 7, 3), "SeparableConv2D(5, 3)"),
    "separable_mult2_same_stride": _one((8, 8, 3), "SeparableConv2D(4, 3, strides=2, padding='same', "
                                                   "depth_multiplier=2, activation='relu')"),
    "separable_first": _one((2, 6, 5), f"SeparableConv2D(3, 2, {FIRST}, use_bias=False)"),
    "maxpool1d": _one((9, 3), "MaxPooling1D(2)"),
    "maxpool1d_same": _one((9, 3), "MaxPooling1D(3, strides=2, padding='same')"),
    "avgpool1d_same": _one((8, 2), "AveragePooling1D(3, strides=2, padding='same')"),
    "maxpool2d_same_stride": _one((7, 8, 3), "MaxPooling2D(3, strides=2, padding='same')"),
    "maxpool2d_first": _one((3, 8, 6), f"MaxPooling2D({FIRST})"),
    "avgpool2d_valid_stride": _one((7, 8, 3), "AveragePooling2D((3, 2), strides=(2, 1))"),
    "avgpool2d_same": _one((5, 5, 2), "AveragePooling2D(3, strides=2, padding='same')"),
    "avgpool2d_first": _one((2, 7, 7), f"AveragePooling2D(2, padding='same', {FIRST})"),
    "gap1d": _one((6, 4), "GlobalAveragePooling1D()"),
    "gap1d_first_keepdims": _one((6, 4), f"GlobalAveragePooling1D({FIRST}, keepdims=True)"),
    "gap2d": _one((5, 6, 3), "GlobalAveragePooling2D()"),
    "gap2d_keepdims": _one((5, 6, 3), "GlobalAveragePooling2D(keepdims=True)"),
    "gmp2d": _one((5, 6, 3), "GlobalMaxPooling2D()"),
    "gmp2d_first_keepdims": _one((3, 5, 6), f"GlobalMaxPooling2D({FIRST}, keepdims=True)"),
    "gmp1d": _one((5, 3), "GlobalMaxPooling1D()"),
    "zeropad1d": _one((5, 3), "ZeroPadding1D((1, 3))"),
    "zeropad2d": _one((4, 5, 2), "ZeroPadding2D(((1, 2), (0, 3)))"),
    "zeropad2d_first": _one((2, 4, 5), f"ZeroPadding2D((1, 2), {FIRST})"),
    "crop1d": _one((7, 3), "Cropping1D((2, 1))"),
    "crop2d": _one((7, 6, 2), "Cropping2D(((1, 2), (3, 0)))"),
    "crop2d_first": _one((2, 7, 6), f"Cropping2D(1, {FIRST})"),
    "upsample1d": _one((4, 3), "UpSampling1D(3)"),
    "upsample2d": _one((3, 4, 2), "UpSampling2D((2, 3))"),
    "upsample2d_first": _one((2, 3, 4), f"UpSampling2D(2, {FIRST})"),
    "repeat_vector": "x = Input((4,)); return Model(x, L.RepeatVector(3)(L.Dense(5)(x)))",
    "permute": _one((3, 4, 5), "Permute((3, 1, 2))"),
    "small_cnn": textwrap.dedent("""\
        return keras.Sequential([Input((16, 16, 3)), L.Conv2D(8, 3, padding='same', activation='relu'),
                                 L.MaxPooling2D(), L.Conv2D(16, 3, activation='relu'), L.GlobalAveragePooling2D(),
                                 L.Dense(10, activation='softmax')])"""),
    "text_cnn": textwrap.dedent("""\
        x = Input((20,), dtype='int32')
        h = L.Conv1D(16, 5, activation='relu')(L.Embedding(50, 8)(x))
        return Model(x, L.Dense(3, activation='softmax')(L.GlobalMaxPooling1D()(h)))"""),
    "upsample_bilinear": _one((3, 4, 2), "UpSampling2D(2, interpolation='bilinear', name='up')"),
    "conv2d_first_bias_bug": _one((2, 4, 4), f"Conv2D(3, 2, {FIRST}, name='c')"),
}
NO_TWIN = {"upsample_bilinear": ("up", "interpolation")}
KERAS_WRONG = {"conv2d_first_bias_bug"}  # see keras_bug


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("twins_conv")
    build_models(folder, list(MODELS), MODELS)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if n not in NO_TWIN and n not in KERAS_WRONG])
def test_twin_matches_keras(built, name):
    spec, inputs, weights, keras_out = _case(built, name)
    assert spec.no_twin == "" and spec.forward is not None, spec.no_twin
    result = _check(spec, inputs, weights, keras_out, name)
    assert result.ok, f"{name}: {result.message}"
    m = parity.magnitude(spec, weights, inputs, {})  # the tolerance is not vacuous
    assert float(np.max(m)) <= 50 * max(float(np.max(np.abs(keras_out))), 1e-3), name


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NO_TWIN))
def test_refused_config_means_no_twin(built, name):
    layer, field = NO_TWIN[name]
    spec = keras_spec.load_spec(built / f"{name}.keras")
    assert spec.forward is None and spec.no_twin.startswith(f"no NumPy twin (layer {layer!r}") and field in spec.no_twin


@pytest.mark.slow
def test_same_average_pooling_leaves_the_pad_out(built):
    """Keras (TensorFlow) averages a ``same`` window's real elements only: dividing by the pool size is wrong at
    the border, and the twin does not do it."""
    spec, inputs, weights, keras_out = _case(built, "avgpool2d_same")
    x = next(iter(inputs.values()))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    naive = np.stack([np.stack([padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum(axis=(1, 2)) / 9 for j in range(3)],
                               axis=1) for i in range(3)], axis=1)  # fmt: skip
    assert not np.allclose(naive, keras_out, atol=1e-3)
    np.testing.assert_allclose(spec.forward(weights, inputs), keras_out, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_keras_on_tensorflow_adds_a_channels_first_bias_along_the_wrong_axis(built):
    """Keras' bug, not the twin's (see :func:`keras_bug`): a channels_first Conv2D whose output is as wide as it has
    filters gets its bias added along the width. The twin adds it per channel, so parity fails on Keras' side. Once
    this test fails, Keras has fixed it: drop the ``bias`` case of :func:`keras_bug` and this test."""
    spec, inputs, weights, keras_out = _case(built, "conv2d_first_bias_bug")
    assert keras_out.shape[1:] == (3, 3, 3)
    b = weights["c/bias"]
    wrong_axis = np.broadcast_to(b[None, None, None, :] - b[None, :, None, None], keras_out.shape)
    np.testing.assert_allclose(keras_out - spec.forward(weights, inputs), wrong_axis, atol=1e-5)
    assert not _check(spec, inputs, weights, keras_out, "conv2d_first_bias_bug").ok


# -- the property test: random configurations, all computed by Keras in one child process ----------------------------

PROPERTY_CHILD = """
import json, os, sys
import numpy as np
import keras
from keras import layers as L

folder = sys.argv[1]
with open(os.path.join(folder, "configs.json")) as f:
    configs = json.load(f)
rng = np.random.default_rng(1)
keras.utils.set_random_seed(1)  # Keras' initializers too: the same weights every run
arrays, results = {}, []
for i, c in enumerate(configs):
    try:
        layer = getattr(L, c["cls"])(**c["kwargs"])
        x = (2 * rng.standard_normal((3, *c["shape"]))).astype("float32")
        if min(layer.compute_output_shape(x.shape)[1:]) < 1:  # TensorFlow's pooling kernels crash (SIGFPE) on these
            raise ValueError(f"no output: {layer.compute_output_shape(x.shape)}")
        layer(x)
        layer.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in layer.get_weights()])
        y = keras.ops.convert_to_numpy(layer(x))
    except Exception as exc:  # Keras refuses the configuration: skipped, and counted
        results.append({"skip": f"{type(exc).__name__}: {str(exc)[:160]}"})
        continue
    results.append({"layer": keras.saving.serialize_keras_object(layer)})
    arrays.update({f"{i}:x": x, f"{i}:y": y})
    arrays.update({f"{i}:w:{layer.name}/{v.name}": keras.ops.convert_to_numpy(v.value) for v in layer.weights})
np.savez(os.path.join(folder, "arrays.npz"), **arrays)
with open(os.path.join(folder, "results.json"), "w") as f:
    json.dump(results, f)
"""

PER_KIND = {"Conv1D": 260, "Conv2D": 260, "DepthwiseConv2D": 260, "MaxPooling2D": 260, "AveragePooling2D": 260,
            "SeparableConv2D": 60, "MaxPooling1D": 60, "AveragePooling1D": 60}  # fmt: skip
MIN_PER_KIND = {kind: 200 for kind, n in PER_KIND.items() if n >= 200}


def _random_config(rng: np.random.Generator, cls: str) -> dict:
    """The property module's random layer (one generator for both tests), with its one input shape."""
    c = tp.conv_config(rng, cls)
    return {"cls": c["cls"], "kwargs": c["kwargs"], "shape": c["shapes"][0]}


def _graph(layer: dict, shape: list) -> keras_file.Graph:
    inp = {"module": "keras.layers", "class_name": "InputLayer",
           "config": {"batch_shape": [None, *shape], "dtype": "float32", "name": "in"}}  # fmt: skip
    return keras_file.graph_from_config({"class_name": "Sequential", "config": {"name": "m", "layers": [inp, layer]}},
                                        "property")  # fmt: skip


def _twin_parity(twin: autotwin.Twin, weights: dict, x: np.ndarray, keras_out: np.ndarray) -> parity.ParityResult:
    """kbench's parity rule, as ``test_autotwin._check`` applies it through a spec."""
    inputs = {"in": x}
    out = np.asarray(twin.forward(weights, inputs))
    assert out.shape == keras_out.shape and out.dtype == keras_out.dtype
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    ref = np.asarray(twin.forward(w64, {"in": x.astype(np.float64)}), dtype=np.float64)
    mags = twin.magnitude(w64, {"in": x.astype(np.float64)})
    return parity.check("call", keras_out, ref, out, parity.tolerance("float32", twin.reduction), mags)


def keras_bug(config: dict, y: np.ndarray) -> str:
    """Which known bug of Keras 3.15 on TensorFlow 2.21 (CPU) makes Keras' output wrong for this config, or "":

    - ``bias``: a channels_first convolution with a bias whose length is the output's last axis gets the bias added
      along that last axis (Keras' TensorFlow ``ops.add`` takes a bias-shaped operand for ``tf.nn.bias_add`` and
      picks NHWC when the last axis matches, whatever the operand's own shape);
    - ``depthwise``: TensorFlow's CPU depthwise convolution (DepthwiseConv2D, SeparableConv2D) returns garbage, at
      random, when the row stride is below the column stride and the output is one column wide, several rows high.
    """
    kw, first = config["kwargs"], config["kwargs"].get("data_format") == "channels_first"
    channels = y.shape[1] if first else y.shape[-1]
    if "Conv" in config["cls"] and first and kw.get("use_bias") and channels > 1 and y.shape[-1] == channels:
        return "bias"
    if config["cls"] not in ("DepthwiseConv2D", "SeparableConv2D"):
        return ""
    rows, cols = y.shape[2:4] if first else y.shape[1:3]
    strides = kw.get("strides", [1, 1])
    return "depthwise" if strides[0] < strides[1] and cols == 1 < rows else ""


def _keras_outputs(folder: Path, configs: list[dict]) -> tuple[list[dict], np.lib.npyio.NpzFile]:
    (folder / "configs.json").write_text(json.dumps(configs))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", PROPERTY_CHILD, str(folder)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((folder / "results.json").read_text()), np.load(folder / "arrays.npz")


@pytest.mark.slow
def test_random_configurations_match_keras(tmp_path):
    rng = np.random.default_rng(20240611)
    configs = [_random_config(rng, cls) for cls, n in PER_KIND.items() for _ in range(n)]
    results, arrays = _keras_outputs(tmp_path, configs)
    checked, refused = {cls: 0 for cls in PER_KIND}, {cls: 0 for cls in PER_KIND}
    bugs: dict[str, int] = {}
    failures = []
    for i, (config, result) in enumerate(zip(configs, results)):
        if "skip" in result:
            refused[config["cls"]] += 1
            continue
        bug = keras_bug(config, arrays[f"{i}:y"])
        if bug:
            bugs[f"{config['cls']}/{bug}"] = bugs.get(f"{config['cls']}/{bug}", 0) + 1
            continue
        twin = autotwin.build(_graph(result["layer"], config["shape"]))
        if not isinstance(twin, autotwin.Twin):
            failures.append(f"{config}: {twin.reason}")
            continue
        weights = {k.split(":", 2)[2]: arrays[k] for k in arrays.files if k.startswith(f"{i}:w:")}
        verdict = _twin_parity(twin, weights, arrays[f"{i}:x"], arrays[f"{i}:y"])
        checked[config["cls"]] += 1
        if not verdict.ok:
            failures.append(f"{config}: {verdict.message}")
    assert not failures, f"{len(failures)} of {sum(checked.values())} failed, e.g. " + "\n".join(failures[:5])
    print(f"checked {checked}; Keras refused {refused}; Keras' known bugs {bugs}")
    assert all(checked[kind] >= least for kind, least in MIN_PER_KIND.items()), (checked, refused, bugs)


# -- shapes, FLOPs and values on hand-made configs (no Keras) ---------------------------------------------------------


def _layer(cls: str, **config) -> dict:
    return {"module": "keras.layers", "class_name": cls, "config": {"name": "l", **config}}


def _build(layer: dict, shape: list) -> autotwin.Twin | autotwin.NoTwin:
    return autotwin.build(_graph(layer, shape))


def test_conv2d_twin_shapes_flops_and_values():
    twin = _build(_layer("Conv2D", filters=4, kernel_size=[3, 3], strides=[1, 1], padding="valid",
                         dilation_rate=[1, 1], groups=1, activation="relu", use_bias=True), [8, 8, 3])  # fmt: skip
    assert isinstance(twin, autotwin.Twin) and twin.output_shape == (6, 6, 4)
    assert twin.weights == (("l/kernel", (3, 3, 3, 4)), ("l/bias", (4,)))
    assert twin.flops_per_row == 36 * (2 * 27 * 4 + 4 + 4)  # per position: 27 taps x 4 filters, the bias, the relu
    assert twin.reduction == 27
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3))
    w = {"l/kernel": rng.standard_normal((3, 3, 3, 4)), "l/bias": rng.standard_normal(4)}
    loops = np.array([[[x[b, i:i + 3, j:j + 3].ravel() @ w["l/kernel"].reshape(27, 4) for j in range(6)]
                       for i in range(6)] for b in range(2)]) + w["l/bias"]  # fmt: skip
    np.testing.assert_allclose(twin.forward(w, {"in": x}), np.maximum(loops, 0), rtol=1e-12, atol=1e-12)


def test_conv1d_same_stride_and_groups_shapes_and_flops():
    twin = _build(_layer("Conv1D", filters=6, kernel_size=[4], strides=[3], padding="same", groups=2,
                         use_bias=False, activation="linear"), [10, 4])  # fmt: skip
    assert isinstance(twin, autotwin.Twin) and twin.output_shape == (4, 6)  # ceil(10 / 3)
    assert twin.weights == (("l/kernel", (4, 2, 6)),)
    assert twin.flops_per_row == 4 * 2 * (4 * 2) * 6 and twin.reduction == 8
    assert "((1, 2),)" in twin.source  # pad total 3 = (4 - 1) * 3 + 4 - 10: one before, the odd one after


def test_pooling_twin_shapes_flops_and_values():
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 4)).astype(np.float32)
    twin = _build(_layer("MaxPooling2D", pool_size=[2, 2], strides=[2, 2], padding="valid"), [6, 6, 4])
    assert isinstance(twin, autotwin.Twin) and twin.output_shape == (3, 3, 4)
    assert twin.flops_per_row == 9 * 4 * 4 and twin.reduction == 1
    np.testing.assert_array_equal(twin.forward({}, {"in": x}), x.reshape(2, 3, 2, 3, 2, 4).max(axis=(2, 4)))
    # same, strides the pool size: ceil(7 / 3) = 3 outputs, a pad of (3 - 1) * 3 + 3 - 7 = 2, one on each side
    avg = _build(_layer("AveragePooling2D", pool_size=[3, 3], strides=None, padding="same"), [7, 7, 4])
    assert isinstance(avg, autotwin.Twin) and avg.output_shape == (3, 3, 4)
    assert avg.flops_per_row == 9 * 4 * (9 + 1) and avg.reduction == 9
    x = np.random.default_rng(1).standard_normal((2, 7, 7, 4)).astype(np.float32)
    out = avg.forward({}, {"in": x})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1, 1], x[:, 2:5, 2:5].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(out[:, 0, 2], x[:, 0:2, 5:7].mean(axis=(1, 2)), rtol=1e-5)  # the pad is not counted


def test_global_and_shape_layers_shapes():
    cases = [(_layer("GlobalAveragePooling2D", keepdims=True, data_format="channels_first"), [3, 4, 5], (3, 1, 1)),
             (_layer("GlobalMaxPooling2D"), [4, 5, 3], (3,)),
             (_layer("ZeroPadding2D", padding=[[1, 2], [0, 3]]), [4, 5, 2], (7, 8, 2)),
             (_layer("Cropping1D", cropping=[2, 1]), [7, 3], (4, 3)),
             (_layer("UpSampling2D", size=[2, 3], data_format="channels_first"), [2, 3, 4], (2, 6, 12)),
             (_layer("RepeatVector", n=3), [4], (3, 4)),
             (_layer("Permute", dims=[3, 1, 2]), [3, 4, 5], (5, 3, 4))]  # fmt: skip
    for layer, shape, out in cases:
        twin = _build(layer, shape)
        assert isinstance(twin, autotwin.Twin) and twin.output_shape == out, layer
        x = np.ones((2, *shape), np.float32)
        assert twin.forward({}, {"in": x}).shape == (2, *out)


# -- refusals: every bad value is a NoTwin naming its field, never another exception ----------------------------------

CONV2D = {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "dilation_rate": [1, 1],
          "groups": 1, "activation": "linear", "use_bias": True, "data_format": "channels_last"}  # fmt: skip
REFUSED = [
    ("Conv2D", {**CONV2D, "kernel_size": "abc"}, [8, 8, 3], "kernel_size"),
    ("Conv2D", {**CONV2D, "kernel_size": [3]}, [8, 8, 3], "kernel_size"),
    ("Conv2D", {**CONV2D, "kernel_size": [0, 3]}, [8, 8, 3], "kernel_size"),
    ("Conv2D", {**CONV2D, "strides": [-1, 1]}, [8, 8, 3], "strides"),
    ("Conv2D", {**CONV2D, "dilation_rate": 1.5}, [8, 8, 3], "dilation_rate"),
    ("Conv2D", {**CONV2D, "padding": "full"}, [8, 8, 3], "padding"),
    ("Conv2D", {**CONV2D, "padding": "causal"}, [8, 8, 3], "padding"),
    ("Conv2D", {**CONV2D, "filters": "8"}, [8, 8, 3], "filters"),
    ("Conv2D", {**CONV2D, "groups": 0}, [8, 8, 3], "groups"),
    ("Conv2D", {**CONV2D, "groups": 2}, [8, 8, 3], "groups"),
    ("Conv2D", {**CONV2D, "use_bias": "yes"}, [8, 8, 3], "use_bias"),
    ("Conv2D", {**CONV2D, "data_format": "NHWC"}, [8, 8, 3], "data_format"),
    ("Conv2D", {**CONV2D, "activation": "sparsemax"}, [8, 8, 3], "activation"),
    ("Conv2D", CONV2D, [2, 2, 3], "does not fit"),
    ("Conv2D", CONV2D, [8, 3], "spatial axes"),
    ("Conv1D", {"filters": 2, "kernel_size": [None]}, [8, 3], "kernel_size"),
    ("DepthwiseConv2D", {**CONV2D, "depth_multiplier": -2}, [8, 8, 3], "depth_multiplier"),
    ("SeparableConv2D", {**CONV2D, "depth_multiplier": 1, "filters": 0}, [8, 8, 3], "filters"),
    ("MaxPooling2D", {"pool_size": None}, [8, 8, 3], "pool_size"),
    ("AveragePooling1D", {"pool_size": [2], "strides": ["x"]}, [8, 3], "strides"),
    ("MaxPooling1D", {"pool_size": [9]}, [8, 3], "does not fit"),
    ("GlobalAveragePooling2D", {"keepdims": 1}, [4, 4, 3], "keepdims"),
    ("GlobalMaxPooling2D", {}, [4, 3], "spatial axes"),
    ("ZeroPadding2D", {"padding": [[1]]}, [4, 4, 3], "padding"),
    ("ZeroPadding1D", {"padding": -1}, [4, 3], "padding"),
    ("Cropping2D", {"cropping": [[2, 2], [0, 0]]}, [4, 4, 3], "cropping"),
    ("Cropping1D", {"cropping": "1"}, [4, 3], "cropping"),
    ("UpSampling2D", {"size": [2, 0]}, [4, 4, 3], "size"),
    ("UpSampling2D", {"size": [2, 2], "interpolation": "bilinear"}, [4, 4, 3], "interpolation"),
    ("RepeatVector", {"n": "3"}, [4], "n="),
    ("Permute", {"dims": [1, 1]}, [4, 3], "dims"),
]


@pytest.mark.parametrize("cls,config,shape,why", REFUSED, ids=[f"{c}-{w}" for c, _, _, w in REFUSED])
def test_bad_config_is_refused_naming_the_field(cls, config, shape, why):
    twin = _build(_layer(cls, **config), shape)
    assert isinstance(twin, autotwin.NoTwin) and why in twin.reason and "'l'" in twin.reason, twin
    assert "\n" not in twin.reason


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=True), st.text(max_size=3),
                 st.lists(st.one_of(st.integers(-2, 9), st.none(), st.text(max_size=2),
                                    st.lists(st.integers(-2, 9), max_size=3)), max_size=3))  # fmt: skip
FIELDS = ["filters", "kernel_size", "strides", "padding", "dilation_rate", "groups", "activation", "use_bias",
          "data_format", "depth_multiplier", "pool_size", "keepdims", "cropping", "size", "interpolation", "n",
          "dims"]  # fmt: skip
CLASSES = ["Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling1D", "MaxPooling2D",
           "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
           "UpSampling1D", "UpSampling2D", "RepeatVector", "Permute"]  # fmt: skip


@settings(max_examples=300)
@given(cls=st.sampled_from(CLASSES), config=st.dictionaries(st.sampled_from(FIELDS), JUNK),
       rank=st.integers(1, 3))  # fmt: skip
def test_junk_configs_never_raise(cls, config, rank):
    """Whatever a config holds, building gives a twin or a one-line refusal, never another exception."""
    twin = _build(_layer(cls, **{**CONV2D, "depth_multiplier": 1, "pool_size": [2] * rank, **config}),
                  [5, 6, 3][-rank:])  # fmt: skip
    assert isinstance(twin, (autotwin.Twin, autotwin.NoTwin))
    if isinstance(twin, autotwin.Twin):
        assert twin.forward({k: np.ones(s, np.float32) for k, s in twin.weights},
                            {"in": np.ones((1, *[5, 6, 3][-rank:]), np.float32)}).shape[1:] == twin.output_shape


WITH_TWIN = [n for n in MODELS if n not in NO_TWIN]


@pytest.fixture(scope="module", params=["jax", "torch"])
def on_backend(request, built) -> str:
    test_autotwin.run_on_backend(built, WITH_TWIN, request.param)
    return request.param


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_TWIN)
def test_twin_matches_keras_on_jax_and_torch(built, on_backend, name):
    test_autotwin.check_on_backend(built, name, on_backend)
