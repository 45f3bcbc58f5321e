"""Planted fault: the Keras build forgets the bias that the NumPy twin adds. Parity must fail."""
from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    layer = keras.layers.Dense(sizes["units"], use_bias=False, dtype=dtype)
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"]])
    return model


MODEL = ModelSpec(
    name="nobias",
    summary="Dense without its bias in Keras",
    sizes={"batch": (2,), "features": (8,), "units": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(Tensor("kernel", ("features", "units"), init="glorot_uniform"), Tensor("bias", ("units",), scale=0.1)),
    output=("batch", "units"),
    build_keras=build_keras,
    forward=lambda w, inputs: inputs["x"] @ w["kernel"] + w["bias"],
    flops=lambda s: 2 * s["batch"] * s["features"] * s["units"],
    reduction=lambda s: s["features"],
)
