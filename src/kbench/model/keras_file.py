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
HALF_DTYPES = ("float16", "bfloat16")  # inputs Keras rounds before a float32 layer sees them


class NotAKerasFileError(ModelLoadError):
    """The path is not a readable Keras v3 file (missing, not a zip, no config.json, not a model)."""


class CustomObjectError(ModelLoadError):
    """The model needs a class Keras does not ship (custom objects are not supported)."""


class UnsupportedInputError(ModelLoadError):
    """An input kbench cannot feed: ragged, sparse, string, or with a free dimension besides the batch."""


class BrokenConfigError(NotAKerasFileError):
    """``config.json`` is damaged: a key missing, a value of the wrong type, a reference to no layer, a name Keras
    refuses, nesting no model has."""


class _Damage(Exception):
    """Raised while reading the graph; :func:`graph_from_config` turns it into one :class:`BrokenConfigError`."""


MAX_DEPTH = 64  # a model's config.json nests about 10 deep; deeper is damage (and every reader of it recurses)
MAX_DIM = 2**31 - 1  # the largest size of one dimension (TensorFlow's int32 shapes)


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
    build: Mapping[str, Any] = field(default_factory=dict)  # the layer's saved build_config (the shapes it was built for)


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
    except RecursionError:
        raise NotAKerasFileError(f"{p}: config.json nests thousands of levels deep, which no model does; the file is "
                                 "damaged (save it again with model.save('x.keras'))") from None  # fmt: skip
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotAKerasFileError(f"{p} cannot be read as a Keras model file ({type(exc).__name__}); save it again "
                                 "with model.save('x.keras')") from None  # fmt: skip
    if not isinstance(config, dict) or "class_name" not in config:
        raise NotAKerasFileError(f"{p}: config.json does not describe a model; save it with model.save('x.keras')")
    if _depth(config) > MAX_DEPTH:
        raise NotAKerasFileError(f"{p}: config.json nests more than {MAX_DEPTH} levels deep, which no model does; the "
                                 "file is damaged (save it again with model.save('x.keras'))")  # fmt: skip
    return config


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            todo.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def check_custom_objects(config: Any, where: str) -> None:
    """Refuse any class that Keras does not ship (a module outside ``keras``) and ``Lambda`` layers."""
    todo = [config]
    while todo:  # no recursion: a damaged config may nest deep (read_config refuses past MAX_DEPTH)
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        module, cls = item.get("module"), item.get("class_name")
        name = _obj(item.get("config")).get("name")
        if isinstance(cls, str) and isinstance(module, str):
            if module != "keras" and not module.startswith("keras."):
                what = f"layer {name!r} is" if name else "it uses"
                raise CustomObjectError(f"{where}: {what} the custom class {cls!r} from module {module!r}; kbench "
                                        "loads Keras' own layers only (custom objects are not supported)")  # fmt: skip
            if cls == "Lambda":
                raise CustomObjectError(f"{where}: layer {name!r} is a Lambda layer (Python code, which safe loading "
                                        "refuses); custom objects are not supported")  # fmt: skip
        todo.extend(item.values())


def _obj(value: Any) -> dict:
    """``value`` when it is a JSON object, else an empty one (for optional parts read with ``.get``)."""
    return value if isinstance(value, dict) else {}


def graph_from_config(config: dict, where: str) -> Graph:
    """The model's graph from ``config.json``; every refusal is one line naming ``where`` (the file)."""
    cls = config.get("class_name")
    if cls not in MODEL_CLASSES:
        module = config.get("module", "")
        raise CustomObjectError(f"{where}: the model is a {cls!r} ({module!r}), a subclassed model; kbench loads "
                                "Sequential and Functional models only (custom objects are not supported)")  # fmt: skip
    check_custom_objects(config, where)
    try:
        body, layers = _body(config)
        if cls == "Sequential":
            inputs, nodes = _sequential(body, layers, where)
            output = nodes[-1].name if nodes else inputs[0].name
            shared: tuple[str, ...] = ()
        else:
            inputs, nodes, output, shared = _functional(body, layers, where)
        dtype = _policy(layers, where)
    except _Damage as exc:
        raise BrokenConfigError(f"{where}: config.json is damaged: {exc}; save the model again with "
                                "model.save('x.keras')") from None  # fmt: skip
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:  # a part no check above names
        raise BrokenConfigError(f"{where}: config.json is damaged ({type(exc).__name__} reading it); save the model "
                                "again with model.save('x.keras')") from None  # fmt: skip
    return Graph("Sequential" if cls == "Sequential" else "Functional", str(body.get("name", "model")), inputs,
                 nodes, output, dtype, shared)  # fmt: skip


def _body(config: dict) -> tuple[dict, list[dict]]:
    """The model's ``config`` and its layers, each an object with a class name, a config and a name Keras takes
    (a non-empty string without ``/``, unique); :class:`_Damage` naming the first that is not."""
    body = config.get("config") if config.get("config") is not None else {}
    if not isinstance(body, dict):
        raise _Damage(f"the model's config is {_kind(body)}, not an object")
    layers = body.get("layers")
    if not isinstance(layers, list):  # Keras saves a list, empty or not
        raise _Damage(f"its layers are {_kind(layers)}, not a list")
    seen: set[str] = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            raise _Damage(f"layer {i} is {_kind(layer)} without a class name")
        if not isinstance(layer.get("config"), dict):
            raise _Damage(f"layer {i} ({layer['class_name']!r}) has no config object")
        name = layer.get("name", layer["config"].get("name"))
        if not isinstance(name, str) or not name or "/" in name or name != layer["config"].get("name", name):
            raise _Damage(f"layer {i} ({layer['class_name']!r}) is named {_short(name)}: Keras takes a non-empty "
                          "string without '/', the same in the layer and its config")  # fmt: skip
        if name in seen:
            raise _Damage(f"two layers are named {_short(name)} (Keras needs unique names)")
        seen.add(name)
    return body, layers


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a hostile value stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sequential(body: dict, layers: list, where: str) -> tuple[tuple[ModelInput, ...], tuple[Node, ...]]:
    first = layers[0] if layers else None
    if first is not None and first.get("class_name") == "InputLayer":
        inputs, rest = (_input(first["config"], where),), layers[1:]
    else:
        shape = _obj(_obj(first).get("build_config")).get("input_shape") or body.get("build_input_shape")
        if not shape:
            raise UnsupportedInputError(f"{where}: the Sequential model was saved unbuilt, so its input shape is "
                                        "unknown; add keras.Input(shape=...) as its first layer and save it again")  # fmt: skip
        inputs, rest = (_input({"name": "input", "batch_shape": shape, "dtype": "float32"}, where),), layers
    nodes, previous = [], inputs[0].name
    for layer in rest:
        name = layer["config"]["name"]
        nodes.append(Node(name, layer["class_name"], layer["config"], (previous,), {}, _obj(layer.get("build_config"))))
        previous = name
    return inputs, tuple(nodes)


def _functional(body: dict, layers: list, where: str):
    outs = _refs(body.get("output_layers"), "output_layers")
    if len(outs) != 1:
        raise UnsupportedInputError(f"{where}: the model has {len(outs)} outputs; kbench times single-output models "
                                    "(wrap one output in its own keras.Model)")  # fmt: skip
    by_name, nodes, inputs, shared = {}, [], [], []
    for layer in layers:
        name = layer["config"]["name"]  # the same as layer["name"] (checked in _body)
        by_name[name] = layer
        if layer["class_name"] == "InputLayer":
            continue
        calls = layer.get("inbound_nodes") or []
        if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("args", []), list)
                                                  for c in calls):  # fmt: skip
            raise _Damage(f"layer {_short(name)}'s inbound_nodes are not a list of calls")
        if len(calls) > 1:
            shared.append(name)
        args = calls[0].get("args", []) if calls else []
        kwargs = _obj(calls[0].get("kwargs")) if calls else {}
        names = tuple(_tensor_names(args) + _tensor_names(kwargs))  # a tensor passed by keyword is read too
        nodes.append(Node(name, layer["class_name"], layer["config"], names, kwargs, _obj(layer.get("build_config"))))
    for ref in _refs(body.get("input_layers"), "input_layers"):
        if _obj(by_name.get(ref[0])).get("class_name") != "InputLayer":
            raise _Damage(f"input_layers names {_short(ref[0])}, which is no InputLayer of the model")
        inputs.append(_input(by_name[ref[0]]["config"], where))
    tensors = {i.name for i in inputs} | {n.name for n in nodes}  # an InputLayer not among the inputs makes none
    for node in nodes:
        for t in node.inputs:
            if t not in tensors:
                raise _Damage(f"layer {_short(node.name)} reads {_short(t)}, which is no layer or input of the model")
    if outs[0][0] not in tensors:
        raise _Damage(f"output_layers names {_short(outs[0][0])}, which is no layer or input of the model")
    return tuple(inputs), tuple(nodes), outs[0][0], tuple(shared)


def _refs(value: Any, field: str) -> list[list]:
    """``[name, node, index]`` or a list of them (Keras saves a single one bare) as a list of them."""
    if not value:
        return []
    refs = [value] if isinstance(value, list) and not isinstance(value[0], list) else value
    if not isinstance(refs, list) or not all(isinstance(r, list) and r and isinstance(r[0], str) for r in refs):
        raise _Damage(f"{field} is {_short(value)}, not [layer name, node, index] references")
    return list(refs)


def _tensor_names(args: Any) -> list[str]:
    """The producing layers' names of every Keras tensor in a call's arguments (lists nested as Keras saves them)."""
    if isinstance(args, dict):
        if args.get("class_name") == "__keras_tensor__":
            history = _obj(args.get("config")).get("keras_history")
            if not isinstance(history, list) or not history or not isinstance(history[0], str):
                raise _Damage(f"a layer call reads a tensor whose keras_history is {_short(history)}")
            return [history[0]]
        return [n for v in args.values() for n in _tensor_names(v)]
    if isinstance(args, list):
        return [n for v in args for n in _tensor_names(v)]
    return []


def _input(config: Mapping[str, Any], where: str) -> ModelInput:
    name = str(config.get("name", "input"))
    shape = config.get("batch_shape") or ([None, *config["shape"]] if isinstance(config.get("shape"), list) else None)
    dtype = config.get("dtype") or "float32"
    dtype = _obj(dtype.get("config")).get("name", "float32") if isinstance(dtype, dict) else dtype
    if not isinstance(shape, (list, type(None))):
        raise _Damage(f"input {name!r} has shape {_short(shape)}, not a list")
    if config.get("ragged") or config.get("sparse"):
        kind = "ragged" if config.get("ragged") else "sparse"
        raise UnsupportedInputError(f"{where}: input {name!r} is {kind}; kbench feeds dense arrays, so {kind} inputs "
                                    "are not supported")  # fmt: skip
    if not isinstance(dtype, str) or dtype not in NUMBER_DTYPES:
        raise UnsupportedInputError(f"{where}: input {name!r} has dtype {_short(dtype)}; kbench feeds numeric arrays only "
                                    "(float or int inputs)")  # fmt: skip
    if dtype in HALF_DTYPES:
        raise UnsupportedInputError(f"{where}: input {name!r} has dtype {dtype}; Keras rounds it to {dtype} and the "
                                    "NumPy twin would not, so parity would fail on rounding alone; save the model "
                                    "with a float32 or float64 input")  # fmt: skip
    if not shape or len(shape) < 2:
        raise UnsupportedInputError(f"{where}: input {name!r} has shape {_short(shape)}; kbench needs a batch dimension and "
                                    "at least one more")  # fmt: skip
    if shape[0] is not None:
        raise UnsupportedInputError(f"{where}: input {name!r} fixes its batch size to {_short(shape[0])}; save the model with "
                                    "keras.Input(shape=...) so kbench can sweep the batch")  # fmt: skip
    if any(d is None for d in shape[1:]):
        raise UnsupportedInputError(f"{where}: input {name!r} has shape {_short(tuple(shape))}; kbench needs every dimension "
                                    "but the batch fixed (save it with keras.Input(shape=(...)) of fixed sizes)")  # fmt: skip
    for d in shape[1:]:
        if type(d) is not int or not 1 <= d <= MAX_DIM:
            raise _Damage(f"input {name!r} has shape {_short(shape)}: each dimension but the batch is an integer "
                          f"from 1 to {MAX_DIM}")  # fmt: skip
    return ModelInput(name, tuple(int(d) for d in shape[1:]), dtype)


def _policy(layers: list, where: str) -> str:
    """The layers' one compute dtype (float32 or float64); mixed precision and float16 are refused."""
    seen = set()
    for layer in layers:
        policy = (layer.get("config") or {}).get("dtype")
        if isinstance(policy, dict):
            seen.add(str(_obj(policy.get("config")).get("name", "float32")))
        elif isinstance(policy, str) and layer.get("class_name") != "InputLayer":
            seen.add(policy)
        elif policy is not None and not isinstance(policy, str):
            raise _Damage(f"layer {_short(layer['config'].get('name'))}'s dtype is {_short(policy)}, not a dtype name "
                          "or policy")  # fmt: skip
    bad = sorted(seen - set(FLOAT_POLICIES))
    if bad:
        raise UnsupportedInputError(f"{where}: the model computes in {bad[0]}; kbench compares float32 and float64 "
                                    "models only (mixed precision is not supported)")  # fmt: skip
    if len(seen) > 1:
        raise UnsupportedInputError(f"{where}: the layers mix float32 and float64; save the model in one dtype")
    return seen.pop() if seen else "float32"


def read_graph(path: str | Path) -> Graph:
    return graph_from_config(read_config(path), str(path))

