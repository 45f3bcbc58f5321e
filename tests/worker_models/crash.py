"""Planted fault: the Keras build raises (a backend-side failure, not a usage error)."""
from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    raise RuntimeError("planted failure inside build_keras")


MODEL = ModelSpec(
    name="crash",
    summary="build_keras raises",
    sizes={"batch": (2,), "features": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(),
    output=("batch", "features"),
    build_keras=build_keras,
    forward=lambda w, inputs: inputs["x"] * 2,
    flops=lambda s: s["batch"] * s["features"],
    reduction=lambda s: 1,
)
