"""A correct Dense twin whose summary, option names and option values are hostile text: rich markup, HTML, an
ANSI escape and a very long string. Every one must be shown literally, in the terminal and in the report."""

from kbench.spec import ModelSpec, Tensor

MARKUP = "[/bold]<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert('kbench')</script>"
ANSI = "\x1b[31mred\x1b[0m"
LONG = "L" * 3000
SUMMARY = f"[red]summary[/red] [/] {SCRIPT} {ANSI} {MARKUP}"


def build_keras(keras, w, sizes, dtype, **options):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype)
    layer = keras.layers.Dense(sizes["units"], dtype=dtype)
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])
    return model


def forward(w, inputs, **options):
    return inputs["x"] @ w["kernel"] + w["bias"]


MODEL = ModelSpec(
    name="hostile",
    summary=SUMMARY,
    sizes={"batch": (1,), "features": (8,), "units": (8,)},
    inputs=(Tensor("x", ("batch", "features")),),
    weights=(Tensor("kernel", ("features", "units"), init="glorot_uniform"), Tensor("bias", ("units",), scale=0.1)),
    output=("batch", "units"),
    options={"markup": (MARKUP,), "html": (SCRIPT,), "ansi": (ANSI,), "long": (LONG,), "[red]key<b>": ("v",)},
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 2 * s["batch"] * s["features"] * s["units"] + s["batch"] * s["units"],
    reduction=lambda s: s["features"],
)
