"""``kbench new-model NAME``: write a model file that works out of the box, to be edited step by step.

The scaffold is one ``Dense`` layer (``x @ kernel + bias``) with every part a model file needs, each under an
``EDIT`` comment: sizes, inputs and weights by symbolic shape, the Keras build, the NumPy twin, the FLOP count and
the reduction length. It passes ``kbench parity --model NAME --models-dir DIR`` as written, so every later failure
comes from an edit. Refusals are :class:`ScaffoldError` (exit 2, one line): a name that is no Python identifier
(or starts with ``_``, which kbench skips), the name of a built-in model, an existing file, or a folder that
cannot be written; ``force`` allows the last-but-one and the shadowing.
"""

from __future__ import annotations

import keyword
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kbench.core.errors import UsageError
from kbench.model.loader import available_models, builtin_models_dir, load_model_file
from kbench.model.spec import ModelSpec

DEFAULT_DIR = Path("models_user")


class ScaffoldError(UsageError):
    """``kbench new-model`` cannot write the file asked for. Exit code 2."""


@dataclass(frozen=True)
class Scaffolded:
    path: Path
    spec: ModelSpec
    overwrote: bool


TEMPLATE = '''"""__NAME__: scaffolded by `kbench new-model __NAME__`; edit the parts marked EDIT.

As written it is one Dense layer, x @ kernel + bias on x of shape (batch, features), and it passes
`kbench parity --model __NAME__ --models-dir <this folder>`. Change one part at a time and rerun parity:

1. MODEL.sizes, inputs, weights, output: every array by name and symbolic shape (size names or fixed ints).
2. build_keras(): the Keras model, using the very arrays in ``w`` (set_weights), so both sides share them.
3. forward(): the same computation by hand in NumPy: the twin, and in float64 the parity reference.
4. flops() and reduction(): FLOPs of one call; the length of the longest sum behind one output element.

This file runs as Python. Do not import Keras here at module level: build_keras() receives ``keras``.
"""

import numpy as np  # noqa: F401  (the twin is NumPy)

from kbench.spec import ModelSpec, Tensor

# EDIT 1: the arrays. Shapes name sizes (set with --size NAME=LIST or --batch); the first input axis is the batch.
SIZES = {"batch": (1, 32, 1024), "features": (64,), "units": (32,)}
INPUTS = (Tensor("x", ("batch", "features")),)
WEIGHTS = (
    Tensor("kernel", ("features", "units"), init="glorot_uniform"),
    Tensor("bias", ("units",), init="normal", scale=0.1),
)
OUTPUT = ("batch", "units")


# EDIT 2: the Keras model. `w` maps weight names to arrays, `sizes` size names to ints; `dtype` is the run's.
def build_keras(keras, w, sizes, dtype):
    x = keras.Input(shape=(sizes["features"],), dtype=dtype, name="x")
    layer = keras.layers.Dense(sizes["units"], dtype=dtype, name="dense")
    model = keras.Model(x, layer(x))
    layer.set_weights([w["kernel"], w["bias"]])  # after the layer is built: Keras' own order of weights
    return model


# EDIT 3: the NumPy twin: the same numbers from the same arrays (inputs by name, like the weights).
def forward(w, inputs):
    return inputs["x"] @ w["kernel"] + w["bias"]


# EDIT 4: FLOPs of one call, and the reduction length K (parity's tolerance is 16 * eps * sqrt(K)).
def flops(s):
    return 2 * s["batch"] * s["features"] * s["units"] + s["batch"] * s["units"]


def reduction(s):
    return s["features"]


MODEL = ModelSpec(
    name="__NAME__",  # must stay the file's name
    summary="__NAME__: Dense(units) on (batch, features); NumPy: x @ kernel + bias",
    sizes=SIZES,
    inputs=INPUTS,
    weights=WEIGHTS,
    output=OUTPUT,
    sweep={"batch": "2**0..2**12"},  # what `kbench run --sweep` measures
    build_keras=build_keras,
    forward=forward,
    flops=flops,
    reduction=reduction,
)
'''


def render(name: str) -> str:
    return TEMPLATE.replace("__NAME__", name)


def check_name(name: str, force: bool = False) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or not name.isascii():
        raise ScaffoldError(f"model name {name!r} is not usable: it becomes a file name and a Python module, so "
                            "use letters, digits and underscores, not starting with a digit or '_', e.g. my_model")
    if name in available_models((builtin_models_dir(),)) and not force:
        raise ScaffoldError(f"{name!r} is a built-in model and a user model of that name would shadow it; pick "
                            "another name, or pass --force to shadow it on purpose")  # fmt: skip


def _target(name: str, folder: Path, force: bool) -> Path:
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"--dir {folder} is a file, not a folder; pass a folder for the model file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScaffoldError(f"--dir {folder} cannot be created ({exc.strerror}); pass a writable folder") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScaffoldError(f"--dir {folder} is not writable; pass a writable folder")
    path = folder / f"{name}.py"
    if path.exists() and not force:
        raise ScaffoldError(f"{path} already exists; edit it, pick another name, or pass --force to overwrite it")
    if path.exists() and not path.is_file():
        raise ScaffoldError(f"{path} exists and is not a file; remove it or pick another name")
    return path


def _write(path: Path, text: str) -> None:
    """Through a temporary file and a rename: never a half-written model file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_model(name: str, folder: str | Path = DEFAULT_DIR, force: bool = False) -> Scaffolded:
    """Write ``folder/name.py`` from the template, load it back (so it is known to be valid) and return it."""
    check_name(name, force)
    path = _target(name, Path(folder), force)
    existed = path.exists()
    try:
        _write(path, render(name))
    except OSError as exc:
        raise ScaffoldError(f"cannot write {path} ({exc.strerror}); pass a writable --dir") from None
    return Scaffolded(path, load_model_file(path), existed)
