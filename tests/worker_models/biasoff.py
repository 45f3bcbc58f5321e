"""Planted fault: a linear ``Dense(units)`` whose NumPy twin adds the bias 1% too large. A near miss, about 17x the
float32 tolerance at the default sizes: every Keras path agrees with the others and none with the twin.
"""

import numpy as np

from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    layer = keras.layers.Dense(sizes["units"], dtype=dtype, name="dense")
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


def forward(w, inputs):
    bias = w["bias"] * w["bias"].dtype.type(1.01)  # 1% off: not what Keras computes
    return np.asarray(inputs["x"] @ w["kernel"] + bias)


MODEL = ModelSpec(
    name="biasoff",
    summary="Dense(units); NumPy twin: the bias 1% too large (planted near miss)",
    sizes={"batch": (32,), "features": (128,), "units": (128,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(
        Tensor("kernel", ("features", "units"), init="glorot_uniform"),
        Tensor("bias", ("units",), init="normal", scale=0.1),
    ),
    output=("batch", "units"),
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 2 * s["batch"] * s["features"] * s["units"] + s["batch"] * s["units"],
    reduction=lambda s: s["features"],
)
