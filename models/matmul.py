"""matmul: the example of kbench's seed text, two (n, n) matrices multiplied inside a Keras model.

Keras: ``keras.ops.matmul(a, b)`` in a functional model whose inputs are (n, n) (the first axis is Keras' batch
axis, so ``predict`` is given ``batch_size=n`` like every other path: one step, the whole product). NumPy twin:
``a @ b``. There is no batch size here, so the cold-start "retrace" figure does not apply.
"""

from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    a = keras.Input(shape=(sizes["n"],), dtype=dtype, name="a")
    b = keras.Input(shape=(sizes["n"],), dtype=dtype, name="b")
    return keras.Model([a, b], keras.ops.matmul(a, b))


def forward(w, inputs):
    return inputs["a"] @ inputs["b"]


MODEL = ModelSpec(
    name="matmul",
    summary="keras.ops.matmul of two (n, n) inputs; NumPy: a @ b",
    sizes={"n": (100,)},
    inputs=(Tensor("a", ("n", "n"), init="uniform"), Tensor("b", ("n", "n"), init="uniform")),
    weights=(),
    output=("n", "n"),
    sweep={"n": "2**4..2**10"},
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 2 * s["n"] ** 3,
    reduction=lambda s: s["n"],
)
