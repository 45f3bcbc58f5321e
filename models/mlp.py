"""mlp: a 2-layer perceptron, ``Dense(hidden, activation) -> Dense(units)``, on ``x`` of shape (batch, features).

Two matmuls, two bias adds and an activation per call: twice dense's dispatch for the same kind of work.
NumPy twin: ``act(x @ hidden_kernel + hidden_bias) @ out_kernel + out_bias``.

Parity: relu (and linear) map |z| to |z|, so the forward on |weights| and |inputs| is the size of the terms behind
every output element, as for dense. An output element's error is the output sum's rounding (length ``hidden``)
plus the hidden sums' rounding (length ``features``) carried through: the reduction length is their sum,
``features + hidden`` (sqrt(K1 + K2) >= (sqrt(K1) + sqrt(K2)) / sqrt(2)).
"""

import numpy as np

from kbench.spec import ModelSpec, Tensor

ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0),
    "linear": lambda z: z,
}


def build_keras(keras, w, sizes, dtype, activation):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    hidden = keras.layers.Dense(sizes["hidden"], activation=activation, dtype=dtype, name="hidden")
    out = keras.layers.Dense(sizes["units"], dtype=dtype, name="out")
    model = keras.Model(x, out(hidden(x)))
    hidden.set_weights([w["hidden_kernel"], w["hidden_bias"]])
    out.set_weights([w["out_kernel"], w["out_bias"]])
    return model


def forward(w, inputs, activation):
    h = ACTIVATIONS[activation](inputs["x"] @ w["hidden_kernel"] + w["hidden_bias"])
    return h @ w["out_kernel"] + w["out_bias"]


def flops(s):
    """Multiply-adds and bias adds of both layers; the activation is a comparison, not counted (as in dense)."""
    b, f, h, u = s["batch"], s["features"], s["hidden"], s["units"]
    return 2 * b * f * h + b * h + 2 * b * h * u + b * u


MODEL = ModelSpec(
    name="mlp",
    summary="Dense(hidden, activation) -> Dense(units) on (batch, features); NumPy: act(x @ W1 + b1) @ W2 + b2",
    sizes={"batch": (1, 32, 1024), "features": (64,), "hidden": (128,), "units": (32,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(
        Tensor("hidden_kernel", ("features", "hidden"), init="glorot_uniform"),
        Tensor("hidden_bias", ("hidden",), init="normal", scale=0.1),
        Tensor("out_kernel", ("hidden", "units"), init="glorot_uniform"),
        Tensor("out_bias", ("units",), init="normal", scale=0.1),
    ),
    output=("batch", "units"),
    options={"activation": tuple(ACTIVATIONS)},
    sweep={"batch": "2**0..2**14"},
    build_keras=build_keras,
    forward=forward,
    flops=flops,
    reduction=lambda s: s["features"] + s["hidden"],
)
