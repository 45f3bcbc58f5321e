"""Planted fault: Keras' ``Dense(units, activation="gelu")`` is the exact erf gelu (``approximate=False`` is Keras'
default), but the NumPy twin uses gelu's tanh approximation. A near miss, about 3x the float32 tolerance at the
default sizes: every Keras path agrees with the others and none with the twin, so the twin is to blame.
"""

import math

import numpy as np

from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    layer = keras.layers.Dense(sizes["units"], activation="gelu", dtype=dtype, name="dense")
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


def forward(w, inputs):
    z = inputs["x"] @ w["kernel"] + w["bias"]
    c, k = z.dtype.type(math.sqrt(2 / math.pi)), z.dtype.type(0.044715)
    return 0.5 * z * (1 + np.tanh(c * (z + k * z**3)))  # the tanh approximation: not what Keras computes


MODEL = ModelSpec(
    name="gelutanh",
    summary="Dense(units, activation='gelu'); NumPy twin: gelu's tanh approximation (planted near miss)",
    sizes={"batch": (32,), "features": (128,), "units": (128,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(
        Tensor("kernel", ("features", "units"), init="glorot_uniform"),
        Tensor("bias", ("units",), init="normal", scale=0.1),
    ),
    output=("batch", "units"),
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 2 * s["batch"] * s["features"] * s["units"] + 8 * s["batch"] * s["units"],
    reduction=lambda s: s["features"],
)
