"""Planted fault: the NumPy twin uses the transposed (square) kernel. Parity must fail."""
from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    layer = keras.layers.Dense(sizes["features"], dtype=dtype)
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


MODEL = ModelSpec(
    name="transposed",
    summary="twin multiplies by kernel.T",
    sizes={"batch": (2,), "features": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(Tensor("kernel", ("features", "features"), init="glorot_uniform"), Tensor("bias", ("features",), scale=0.1)),
    output=("batch", "features"),
    build_keras=build_keras,
    forward=lambda w, inputs: inputs["x"] @ w["kernel"].T + w["bias"],
    flops=lambda s: 2 * s["batch"] * s["features"] ** 2,
    reduction=lambda s: s["features"],
)
