"""A saved ``.keras`` file read as data, without importing Keras: its :class:`Graph`.

A ``.keras`` file is a zip holding ``config.json`` (the model's architecture, plain JSON), ``metadata.json`` and
``model.weights.h5``. The parent process reads ``config.json`` only, with :mod:`zipfile` and :mod:`json`, and turns
it into a :class:`Graph`: the model's inputs (name, shape, dtype), its layer calls in graph order and its output.
Every check that can refuse the file happens here, in milliseconds and with one line: not a zip, no
``config.json``, a layer class that is not Keras' own (custom objects are not supported), a ``Lambda`` layer (Python
code), ragged, sparse or string inputs, a dimension other than the batch left free, mixed precision, several
outputs. :mod:`kbench.model.autotwin` then builds the NumPy twin from the graph, and
:func:`kbench.model.keras_spec.load_spec` the :class:`kbench.model.spec.ModelSpec` every other stage uses.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from kbench.core.errors import ModelLoadError

KERAS_SUFFIX = ".keras"
MODEL_CLASSES = ("Sequential", "Functional", "Model")
NUMBER_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
                 "uint32", "uint64")  # fmt: skip
FLOAT_POLICIES = ("float32", "float64")


class NotAKerasFileError(ModelLoadError):
    """The path is not a readable Keras v3 file (missing, not a zip, no config.json, not a model)."""


class CustomObjectError(ModelLoadError):
    """The model needs a class Keras does not ship (custom objects are not supported)."""


class UnsupportedInputError(ModelLoadError):
    """An input kbench cannot feed: ragged, sparse, string, or with a free dimension besides the batch."""


@dataclass(frozen=True)
class ModelInput:
    name: str
    shape: tuple[int, ...]  # without the batch dimension
    dtype: str


@dataclass(frozen=True)
class Node:
    """One layer call: the layer's name, class and config, and the names of the tensors it reads (each tensor is
    named after the layer that made it; an input after its InputLayer): the positional arguments' tensors, then the
    keyword arguments' in their saved order. ``kwargs`` is the call's keyword arguments as saved (a Functional
    model's only), so a twin can tell a ``key=`` from a ``mask=`` and refuse what it does not honour."""

    name: str
    cls: str
    config: Mapping[str, Any]
    inputs: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    kind: str  # "Sequential" or "Functional"
    name: str
    inputs: tuple[ModelInput, ...]
    nodes: tuple[Node, ...]  # in graph order: every node after the nodes it reads
    output: str  # the tensor the model returns
    dtype: str  # the layers' compute dtype: float32 or float64
    shared: tuple[str, ...] = ()  # layers called more than once (no NumPy twin for those)


def is_keras_path(name: str) -> bool:
    return name.endswith(KERAS_SUFFIX)


# -- reading the file ------------------------------------------------------------------------------------------------


def read_config(path: str | Path) -> dict:
    """``config.json`` of a ``.keras`` file, as a dict; :class:`NotAKerasFileError` (one line) when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise NotAKerasFileError(f"model file {p} does not exist; pass the path of a model saved with model.save('x.keras')")
    if not zipfile.is_zipfile(p):
        raise NotAKerasFileError(f"{p} is not a Keras model file (not a zip archive); save the model with "
                                 "model.save('x.keras') (Keras 3 format)")  # fmt: skip
    try:
        with zipfile.ZipFile(p) as z:
            if "config.json" not in z.namelist():
                raise NotAKerasFileError(f"{p} is a zip without config.json, so not a Keras 3 model file; save the "
                                         "model with model.save('x.keras')")  # fmt: skip
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAKerasFileError(f"{p} cannot be read as a Keras model file ({type(exc).__name__}); save it again "
                                 "with model.save('x.keras')") from None  # fmt: skip
    if not isinstance(config, dict) or "class_name" not in config:
        raise NotAKerasFileError(f"{p}: config.json does not describe a model; save it with model.save('x.keras')")
    return config


def check_custom_objects(config: Any, where: str) -> None:
    """Refuse any class that Keras does not ship (a module outside ``keras``) and ``Lambda`` layers."""
    if isinstance(config, list):
        for item in config:
            check_custom_objects(item, where)
        return
    if not isinstance(config, dict):
        return
    module, cls = config.get("module"), config.get("class_name")
    if isinstance(cls, str) and isinstance(module, str):
        if module != "keras" and not module.startswith("keras."):
            name = (config.get("config") or {}).get("name") if isinstance(config.get("config"), dict) else None
            what = f"layer {name!r} is" if name else "it uses"
            raise CustomObjectError(f"{where}: {what} the custom class {cls!r} from module {module!r}; kbench loads "
                                    "Keras' own layers only (custom objects are not supported)")  # fmt: skip
        if cls == "Lambda":
            raise CustomObjectError(f"{where}: layer {config.get('config', {}).get('name')!r} is a Lambda layer (Python "
                                    "code, which safe loading refuses); custom objects are not supported")  # fmt: skip
    for value in config.values():
        check_custom_objects(value, where)


def graph_from_config(config: dict, where: str) -> Graph:
    """The model's graph from ``config.json``; every refusal is one line naming ``where`` (the file)."""
    cls = config.get("class_name")
    if cls not in MODEL_CLASSES:
        module = config.get("module", "")
        raise CustomObjectError(f"{where}: the model is a {cls!r} ({module}), a subclassed model; kbench loads "
                                "Sequential and Functional models only (custom objects are not supported)")  # fmt: skip
    check_custom_objects(config, where)
    body = config.get("config") or {}
    layers = body.get("layers") or []
    if cls == "Sequential":
        inputs, nodes = _sequential(body, layers, where)
        output = nodes[-1].name if nodes else inputs[0].name
        shared: tuple[str, ...] = ()
    else:
        inputs, nodes, output, shared = _functional(body, layers, where)
    return Graph("Sequential" if cls == "Sequential" else "Functional", str(body.get("name", "model")), inputs,
                 nodes, output, _policy(layers, where), shared)  # fmt: skip


def _sequential(body: dict, layers: list, where: str) -> tuple[tuple[ModelInput, ...], tuple[Node, ...]]:
    first = layers[0] if layers else None
    if first is not None and first.get("class_name") == "InputLayer":
        inputs, rest = (_input(first["config"], where),), layers[1:]
    else:
        shape = (first or {}).get("build_config", {}).get("input_shape") or body.get("build_input_shape")
        if not shape:
            raise UnsupportedInputError(f"{where}: the Sequential model was saved unbuilt, so its input shape is "
                                        "unknown; add keras.Input(shape=...) as its first layer and save it again")  # fmt: skip
        inputs, rest = (_input({"name": "input", "batch_shape": shape, "dtype": "float32"}, where),), layers
    nodes, previous = [], inputs[0].name
    for layer in rest:
        name = str(layer["config"].get("name"))
        nodes.append(Node(name, layer["class_name"], layer["config"], (previous,)))
        previous = name
    return inputs, tuple(nodes)


def _functional(body: dict, layers: list, where: str):
    outs = _refs(body.get("output_layers"))
    if len(outs) != 1:
        raise UnsupportedInputError(f"{where}: the model has {len(outs)} outputs; kbench times single-output models "
                                    "(wrap one output in its own keras.Model)")  # fmt: skip
    by_name, nodes, inputs, shared = {}, [], [], []
    for layer in layers:
        by_name[layer["name"]] = layer
        if layer["class_name"] == "InputLayer":
            continue
        calls = layer.get("inbound_nodes") or []
        if len(calls) > 1:
            shared.append(layer["name"])
        args = calls[0]["args"] if calls else []
        kwargs = calls[0].get("kwargs") if calls and isinstance(calls[0], dict) else None
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        names = tuple(_tensor_names(args) + _tensor_names(kwargs))  # a tensor passed by keyword is read too
        nodes.append(Node(layer["name"], layer["class_name"], layer["config"], names, kwargs))
    for ref in _refs(body.get("input_layers")):
        inputs.append(_input(by_name[ref[0]]["config"], where))
    return tuple(inputs), tuple(nodes), outs[0][0], tuple(shared)


def _refs(value: Any) -> list[list]:
    """``[name, node, index]`` or a list of them (Keras saves a single one bare) as a list of them."""
    if not value:
        return []
    return [value] if not isinstance(value[0], list) else list(value)


def _tensor_names(args: Any) -> list[str]:
    """The producing layers' names of every Keras tensor in a call's arguments (lists nested as Keras saves them)."""
    if isinstance(args, dict):
        if args.get("class_name") == "__keras_tensor__":
            return [str(args["config"]["keras_history"][0])]
        return [n for v in args.values() for n in _tensor_names(v)]
    if isinstance(args, list):
        return [n for v in args for n in _tensor_names(v)]
    return []


def _input(config: Mapping[str, Any], where: str) -> ModelInput:
    name = str(config.get("name", "input"))
    shape = config.get("batch_shape") or ([None, *config["shape"]] if config.get("shape") else None)
    dtype = config.get("dtype") or "float32"
    dtype = dtype.get("config", {}).get("name", "float32") if isinstance(dtype, dict) else str(dtype)
    if config.get("ragged") or config.get("sparse"):
        kind = "ragged" if config.get("ragged") else "sparse"
        raise UnsupportedInputError(f"{where}: input {name!r} is {kind}; kbench feeds dense arrays, so {kind} inputs "
                                    "are not supported")  # fmt: skip
    if dtype not in NUMBER_DTYPES:
        raise UnsupportedInputError(f"{where}: input {name!r} has dtype {dtype!r}; kbench feeds numeric arrays only "
                                    "(float or int inputs)")  # fmt: skip
    if not shape or len(shape) < 2:
        raise UnsupportedInputError(f"{where}: input {name!r} has shape {shape}; kbench needs a batch dimension and "
                                    "at least one more")  # fmt: skip
    if shape[0] is not None:
        raise UnsupportedInputError(f"{where}: input {name!r} fixes its batch size to {shape[0]}; save the model with "
                                    "keras.Input(shape=...) so kbench can sweep the batch")  # fmt: skip
    if any(d is None for d in shape[1:]):
        raise UnsupportedInputError(f"{where}: input {name!r} has shape {tuple(shape)}; kbench needs every dimension "
                                    "but the batch fixed (save it with keras.Input(shape=(...)) of fixed sizes)")  # fmt: skip
    return ModelInput(name, tuple(int(d) for d in shape[1:]), dtype)


def _policy(layers: list, where: str) -> str:
    """The layers' one compute dtype (float32 or float64); mixed precision and float16 are refused."""
    seen = set()
    for layer in layers:
        policy = (layer.get("config") or {}).get("dtype")
        if isinstance(policy, dict):
            seen.add(str((policy.get("config") or {}).get("name", "float32")))
        elif isinstance(policy, str) and layer.get("class_name") != "InputLayer":
            seen.add(policy)
    bad = sorted(seen - set(FLOAT_POLICIES))
    if bad:
        raise UnsupportedInputError(f"{where}: the model computes in {bad[0]}; kbench compares float32 and float64 "
                                    "models only (mixed precision is not supported)")  # fmt: skip
    if len(seen) > 1:
        raise UnsupportedInputError(f"{where}: the layers mix float32 and float64; save the model in one dtype")
    return seen.pop() if seen else "float32"


def read_graph(path: str | Path) -> Graph:
    return graph_from_config(read_config(path), str(path))

