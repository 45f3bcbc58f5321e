"""slowable: a correct Dense layer (``x @ kernel + bias``) whose NumPy twin can be made slower on purpose.

The NumPy forward computes the matmul in 20 blocks of rows. With ``KBENCH_PLANTED_SLOWDOWN=F`` (a factor >= 1, read
when the file is imported, i.e. in each worker) it computes ``round((F - 1) · 20)`` blocks again and throws them
away: the ``numpy`` path does F times the work and its output does not change, so parity still passes and only its timing moves. The
default size (256 x 256 x 256) makes the matmul, not the Python call, the bulk of the time, so work and time scale
together. Used by ``benchmarks/planted_slowdown.py``.
"""

import os

import numpy as np

from kbench.spec import ModelSpec, Tensor

CHUNKS = 20
FACTOR = float(os.environ.get("KBENCH_PLANTED_SLOWDOWN", "1") or "1")
if not FACTOR >= 1:
    raise ValueError(f"KBENCH_PLANTED_SLOWDOWN={FACTOR!r}: set a factor >= 1, e.g. 1.5")


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    layer = keras.layers.Dense(sizes["units"], dtype=dtype, name="dense")
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


def forward(w, inputs):
    """``x @ kernel + bias`` in CHUNKS blocks of rows, then round((F - 1) · CHUNKS) blocks again, thrown away: every
    block costs the same, so the time grows with F even for F = 1.05 (one extra block in 20)."""
    blocks = np.array_split(inputs["x"], CHUNKS)
    out = np.concatenate([b @ w["kernel"] for b in blocks]) + w["bias"]
    for i in range(int(round((FACTOR - 1.0) * CHUNKS))):
        np.matmul(blocks[i % CHUNKS], w["kernel"])
    return out


MODEL = ModelSpec(
    name="slowable",
    summary="Dense(units) on (batch, features); NumPy: x @ kernel + bias, with KBENCH_PLANTED_SLOWDOWN=F extra work",
    sizes={"batch": (256,), "features": (256,), "units": (256,)},
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
