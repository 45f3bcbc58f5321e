"""dot: ``keras.layers.Dot(axes=1, normalize=...)`` on two inputs of shape (batch, features) -> (batch, 1).

NumPy twin, written by hand: the row-wise sum of ``a * b``; with ``normalize=True`` each row is first divided by
its L2 norm exactly as Keras does it: ``x / sqrt(max(sum(x**2), 1e-12))``.
"""

import numpy as np

from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype, normalize):
    a = keras.Input(shape=(sizes["features"],), dtype=dtype, name="a")
    b = keras.Input(shape=(sizes["features"],), dtype=dtype, name="b")
    return keras.Model([a, b], keras.layers.Dot(axes=1, normalize=normalize, dtype=dtype)([a, b]))


def _l2_normalize(x):
    square_sum = np.sum(x * x, axis=1, keepdims=True)
    return x / np.sqrt(np.maximum(square_sum, x.dtype.type(1e-12)))


def forward(w, inputs, normalize):
    a, b = inputs["a"], inputs["b"]
    if normalize:
        a, b = _l2_normalize(a), _l2_normalize(b)
    return np.sum(a * b, axis=1, keepdims=True)


MODEL = ModelSpec(
    name="dot",
    summary="Dot(axes=1, normalize) of two (batch, features) inputs -> (batch, 1); NumPy: sum(a * b, axis=1)",
    sizes={"batch": (1, 32, 1024), "features": (128,)},
    inputs=(Tensor("a", ("batch", "features")), Tensor("b", ("batch", "features"))),
    weights=(),
    output=("batch", 1),
    options={"normalize": (False, True)},
    sweep={"batch": "2**0..2**14"},
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 2 * s["batch"] * s["features"],
    reduction=lambda s: s["features"],
)
