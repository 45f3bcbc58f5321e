"""A correct model that prints to stdout at import and on every forward call: the protocol must survive it."""
from kbench.spec import ModelSpec, Tensor

print("noisy model file imported")


def build_keras(keras, w, sizes, dtype):
    print("noisy build")
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    return keras.Model(x, x * 2)


def forward(w, inputs):
    print("noisy forward")
    return inputs["x"] * 2


MODEL = ModelSpec(
    name="noisy",
    summary="prints a lot",
    sizes={"batch": (2,), "features": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(),
    output=("batch", "features"),
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: s["batch"] * s["features"],
    reduction=lambda s: 1,
)
