"""Fault injection: a correct model whose NumPy forward misbehaves, on purpose, when the batch is 3.

Option ``fault``: none | segfault | exit | sigkill | hang. Batch 1 (and its retrace at batch 2) never meets the
fault, so a run at ``--batch 1,3`` finishes its first cell and then meets the fault in the second.
"""
import os
import signal
import time

from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype, fault):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    return keras.Model(x, x * 2)


def forward(w, inputs, fault):
    if len(inputs["x"]) == 3:
        if fault == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif fault == "exit":
            os._exit(3)
        elif fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault == "hang":
            time.sleep(3600)
    return inputs["x"] * 2


MODEL = ModelSpec(
    name="faulty",
    summary="x * 2, with a fault at batch 3",
    sizes={"batch": (1, 3), "features": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(),
    output=("batch", "features"),
    options={"fault": ("none", "segfault", "exit", "sigkill", "hang")},
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: s["batch"] * s["features"],
    reduction=lambda s: 1,
)
