"""Planted fault: Keras returns (batch, 1) while the NumPy twin returns (batch, features). Must be a usage error."""
from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    return keras.Model(x, keras.ops.sum(x, axis=1, keepdims=True))


MODEL = ModelSpec(
    name="kerasshape",
    summary="Keras and NumPy disagree on the output shape",
    sizes={"batch": (2,), "features": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(),
    output=("batch", "features"),
    build_keras=build_keras,
    forward=lambda w, inputs: inputs["x"] * 2,
    flops=lambda s: s["batch"] * s["features"],
    reduction=lambda s: 1,
)
