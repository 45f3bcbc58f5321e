"""Planted fault: the NumPy twin's output shape differs from the declared MODEL.output. Must be a usage error."""
from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    return keras.Model(x, x * 2)


MODEL = ModelSpec(
    name="twinshape",
    summary="twin returns the transpose",
    sizes={"batch": (2,), "features": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(),
    output=("batch", "features"),
    build_keras=build_keras,
    forward=lambda w, inputs: (inputs["x"] * 2).T,
    flops=lambda s: s["batch"] * s["features"],
    reduction=lambda s: 1,
)
