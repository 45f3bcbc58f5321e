"""layernorm: ``keras.layers.LayerNormalization(axis=-1, epsilon=1e-3)`` on ``x`` of shape (batch, features).

Two reductions (mean, variance) over the last axis, a square root and a division per call. NumPy twin, written
by hand in two passes: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``.

Parity: the forward on |x| is *not* the size of the terms here (centring |x| makes its own near-zeros), so the
model gives its own magnitude. With n = (x - mean) / s and s = sqrt(var + epsilon), an output element's rounding
comes from x_i - mean (terms |x_i| and the mean's own sum of |x|), and from s, which scales n_i; a one-pass
variance (``mean(x**2) - mean**2``, what some backends compute) rounds on the scale of mean(x**2), not var. So

    M_i = |gamma_i| * ((|x_i| + mean|x|) / s + |n_i| * mean(x**2) / s**2) + |beta_i|,     K = features

which is never below |output_i| and grows exactly where a real implementation loses digits (inputs far from zero
mean). The default inputs (standard normal) give M of order |gamma|.
"""

import numpy as np

from kbench.spec import ModelSpec, Tensor

EPSILON = 1e-3  # Keras' default


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    layer = keras.layers.LayerNormalization(axis=-1, epsilon=EPSILON, dtype=dtype, name="layernorm")
    model = keras.Model(x, layer(x))
    layer.set_weights([w["gamma"], w["beta"]])
    return model


def _normalized(x):
    """(n, s): x centred and divided by s = sqrt(var + epsilon), both over the last axis."""
    mean = np.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    s = np.sqrt(var + x.dtype.type(EPSILON))
    return centred / s, s


def forward(w, inputs):
    n, _ = _normalized(inputs["x"])
    return w["gamma"] * n + w["beta"]


def magnitude(w, inputs):
    """M per output element (module docstring): the rounding scale of the mean, the variance and the division."""
    x = inputs["x"]
    n, s = _normalized(x)
    ax = np.abs(x)
    centring = (ax + np.mean(ax, axis=-1, keepdims=True)) / s
    spread = np.abs(n) * np.mean(x * x, axis=-1, keepdims=True) / (s * s)
    return np.abs(w["gamma"]) * (centring + spread) + np.abs(w["beta"])


def flops(s):
    """Per row of F: mean (F), centre (F), square and sum (2F), mean and epsilon, sqrt, divide (F), scale and
    shift (2F): about 7 F + 3."""
    return s["batch"] * (7 * s["features"] + 3)


MODEL = ModelSpec(
    name="layernorm",
    summary="LayerNormalization(axis=-1) on (batch, features); NumPy: gamma * (x - mean) / sqrt(var + eps) + beta",
    sizes={"batch": (1, 32, 1024), "features": (256,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(
        Tensor("gamma", ("features",), init="normal"),
        Tensor("beta", ("features",), init="normal", scale=0.1),
    ),
    output=("batch", "features"),
    sweep={"batch": "2**0..2**14"},
    build_keras=build_keras,
    forward=forward,
    flops=flops,
    reduction=lambda s: s["features"],
    magnitude=magnitude,
)
