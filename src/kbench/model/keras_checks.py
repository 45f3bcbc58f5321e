"""The checks of a ``.keras`` file beyond its graph: what the parent can still refuse before a worker loads it, and
the worker's load itself, whose failure is the file's.

:mod:`kbench.model.keras_file` refuses a damaged ``config.json`` and the twins' config readers
(:mod:`kbench.model.twins.base`) a bad value of a field they read. What is left here: a layer saved as built for
inputs of one shape whose input in the graph has another (a changed size upstream: the saved weights no longer fit,
and Keras refuses the file), an Embedding's ``input_dim`` when there is no twin to read it, and the size of the saved
weights (``model.weights.h5``, read from the zip's directory without opening it) for the memory guard of
:mod:`kbench.orchestrate.planning`. Whatever Keras still refuses when the worker loads the file
(:func:`load_keras`) is a :class:`KerasLoadError`: one line, exit 2, never a worker failure.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from kbench.core.errors import ModelLoadError, one_line
from kbench.core.fmt import visible
from kbench.model.keras_file import MAX_DIM, Graph

WEIGHTS_FILE = "model.weights.h5"
LOAD_MESSAGE_CHARS = 300  # the most of Keras' own reason a refusal repeats (Keras puts whole configs in them)


class KerasLoadError(ModelLoadError):
    """Keras refused to load the file in the worker (a config Keras rejects, weights that do not fit it)."""


class LayerShapeError(ModelLoadError):
    """A layer's saved build shape differs from the shape its input has in the graph."""


def _short(value: Any, limit: int = 60) -> str:
    text = visible(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fits(saved: Any, actual: Any) -> bool:
    """Whether a saved shape (``[None, 8]`` or a list of them) matches the actual one; a None on either side fits
    anything: the batch dimension (an adapted Normalization is saved built for its data's batch, e.g. ``[40, 4]``)
    and any size the graph leaves open."""
    if saved is None or actual is None:
        return True
    if isinstance(saved, list) and isinstance(actual, list):
        return len(saved) == len(actual) and all(_fits(s, a) for s, a in zip(saved, actual))
    return type(saved) is int and saved == actual


def check_built_shapes(twin: Any, where: str) -> None:
    """Each layer of ``twin`` (an :class:`kbench.model.autotwin.Twin`) whose config saves the input shape it was
    built for (``build_config.input_shape``) gets inputs of that shape in the graph; :class:`LayerShapeError`
    naming the layer otherwise (its saved weights were made for the saved shape)."""
    for step in twin.steps:
        node, shapes = step.call.node, step.call.shapes
        saved = node.build.get("input_shape")
        actual = [None, *shapes[0]] if len(shapes) == 1 else [[None, *s] for s in shapes]
        if saved is not None and not _fits(saved, actual):
            raise LayerShapeError(f"{visible(where)}: layer {_short(node.name)} ({visible(node.cls)}) was saved built "
                                  f"for input shape {_short(saved)}, but its input here is {_short(actual)}: the "
                                  "config and the weights disagree; save the model again")  # fmt: skip


def check_embeddings(graph: Graph, where: str) -> None:
    """Without a twin nothing else reads an Embedding's ``input_dim`` before the bounds of its indices do."""
    for node in graph.nodes:
        value = node.config.get("input_dim")
        if node.cls == "Embedding" and (type(value) is not int or not 1 <= value <= MAX_DIM):
            raise ModelLoadError(f"{visible(where)}: layer {_short(node.name)} (Embedding) has a broken config: "
                                 f"input_dim={_short(value)}: expected an integer from 1 to {MAX_DIM}")  # fmt: skip


def stored_weight_bytes(path: str | Path) -> int:
    """The size of the saved weights (``model.weights.h5``, uncompressed), from the zip's directory: what loading
    the file reads into memory at least. 0 when there is none."""
    try:
        with zipfile.ZipFile(path) as z:
            return max((i.file_size for i in z.infolist() if i.filename == WEIGHTS_FILE), default=0)
    except (zipfile.BadZipFile, OSError):
        return 0


def load_keras(keras: Any, path: str) -> Any:
    """The saved model, loaded by Keras (``compile=False``, safe mode); a refusal is the file's
    (:class:`KerasLoadError`, one line with the end of Keras' reason), not a worker failure."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001  (whatever Keras raises on a file it refuses)
        reason = one_line(exc).rsplit("Exception encountered:", 1)[-1].strip()
        if len(reason) > LOAD_MESSAGE_CHARS:  # its first sentences say what; then come configs and arrays
            reason = reason[:LOAD_MESSAGE_CHARS] + "..."
        raise KerasLoadError(f"{visible(Path(path).name)}: Keras cannot load it ({type(exc).__name__}: "
                             f"{visible(reason)}); the file is damaged or its config does not fit its weights: save "
                             "the model again with model.save('x.keras')") from None  # fmt: skip
