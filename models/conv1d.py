"""conv1d: ``keras.layers.Conv1D(filters, kernel_size, padding="valid", strides=1, activation)`` on ``x`` of shape
(batch, length, channels) -> (batch, length - kernel_size + 1, filters).

A sliding-window reduction over kernel_size x channels per output element, plus a bias. NumPy twin, by hand:
the windows of ``np.lib.stride_tricks.sliding_window_view`` (a view, no copy) contracted with the kernel by
``np.tensordot``, then ``act(... + bias)``. The kernel has Keras' layout (kernel_size, channels, filters).
"""

import numpy as np

from kbench.errors import BadSizeError
from kbench.spec import ModelSpec, Tensor

ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
}


def steps(s):
    """The output length of a valid convolution; refuses sizes that leave none."""
    if s["length"] < s["kernel_size"]:
        raise BadSizeError(f"conv1d needs length >= kernel_size, got length={s['length']} kernel_size="
                           f"{s['kernel_size']}; raise --size length or lower --size kernel_size")  # fmt: skip
    return s["length"] - s["kernel_size"] + 1


def build_keras(keras, w, sizes, dtype, activation):
    x = keras.Input(shape=(sizes["length"], sizes["channels"]), dtype=dtype, name="x")
    layer = keras.layers.Conv1D(sizes["filters"], sizes["kernel_size"], strides=1, padding="valid",
                                activation=activation, dtype=dtype, name="conv1d")  # fmt: skip
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


def forward(w, inputs, activation):
    kernel = w["kernel"]
    windows = np.lib.stride_tricks.sliding_window_view(inputs["x"], kernel.shape[0], axis=1)  # (B, steps, C, k)
    y = np.tensordot(windows, kernel, axes=([3, 2], [0, 1]))  # sum over k and C -> (B, steps, filters)
    return ACTIVATIONS[activation](y + w["bias"])


def flops(s):
    n = s["batch"] * steps(s) * s["filters"]
    return 2 * n * s["kernel_size"] * s["channels"] + n


MODEL = ModelSpec(
    name="conv1d",
    summary="Conv1D(filters, kernel_size, valid) on (batch, length, channels); NumPy: sliding windows . kernel + bias",
    sizes={"batch": (1, 32, 1024), "length": (64,), "channels": (16,), "filters": (32,), "kernel_size": (3,)},
    inputs=(Tensor("x", ("batch", "length", "channels")),),
    weights=(
        Tensor("kernel", ("kernel_size", "channels", "filters"), init="normal", scale=0.1),
        Tensor("bias", ("filters",), init="normal", scale=0.1),
    ),
    output=("batch", steps, "filters"),
    options={"activation": tuple(ACTIVATIONS)},
    sweep={"batch": "2**0..2**14"},
    build_keras=build_keras,
    forward=forward,
    flops=flops,
    reduction=lambda s: s["kernel_size"] * s["channels"],
)
