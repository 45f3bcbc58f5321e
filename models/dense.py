"""dense: one ``keras.layers.Dense(units, activation)`` on ``x`` of shape (batch, features).

NumPy twin: ``act(x @ kernel + bias)``.
"""

import numpy as np

from kbench.spec import ModelSpec, Tensor

ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
}


def build_keras(keras, w, sizes, dtype, activation):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    layer = keras.layers.Dense(sizes["units"], activation=activation, dtype=dtype, name="dense")
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


def forward(w, inputs, activation):
    return ACTIVATIONS[activation](inputs["x"] @ w["kernel"] + w["bias"])


MODEL = ModelSpec(
    name="dense",
    summary="Dense(units, activation) on (batch, features); NumPy: act(x @ kernel + bias)",
    sizes={"batch": (1, 32, 1024), "features": (128,), "units": (128,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(
        Tensor("kernel", ("features", "units"), init="glorot_uniform"),
        Tensor("bias", ("units",), init="normal", scale=0.1),
    ),
    output=("batch", "units"),
    options={"activation": tuple(ACTIVATIONS)},
    sweep={"batch": "2**0..2**14"},
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 2 * s["batch"] * s["features"] * s["units"] + s["batch"] * s["units"],
    reduction=lambda s: s["features"],
)
