"""A user's own model: a saved ``.keras`` file (or a ``module:function`` factory), read without importing Keras.

A ``.keras`` file is a zip holding ``config.json`` (the model's architecture, plain JSON), ``metadata.json`` and
``model.weights.h5``. The parent process reads ``config.json`` only, with :mod:`zipfile` and :mod:`json`, and turns
it into a :class:`Graph`: the model's inputs (name, shape, dtype), its layer calls in graph order and its output.
Every check that can refuse the file happens here, in milliseconds and with one line: not a zip, no
``config.json``, a layer class that is not Keras' own (custom objects are not supported), a ``Lambda`` layer (Python
code), ragged, sparse or string inputs, a dimension other than the batch left free, mixed precision, several
outputs. :mod:`kbench.model.autotwin` then builds the NumPy twin from the graph, and :func:`load_spec` the
:class:`kbench.model.spec.ModelSpec` every other stage uses (its Keras build loads the file in the worker).

A factory (``--model my_pkg.models:make_mlp``) is resolved in a child process: it imports the module, calls the
function with Keras on the first backend and saves the model to a ``.keras`` file in kbench's cache folder
(``$KBENCH_CACHE_DIR/factories``), keyed on the module's source; from there on it is a ``.keras`` file. So its
module must be importable from the current folder or ``PYTHONPATH``, and its layers must be Keras' own.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kbench.core.errors import ModelLoadError, UsageError

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
    named after the layer that made it; an input after its InputLayer)."""

    name: str
    cls: str
    config: Mapping[str, Any]
    inputs: tuple[str, ...]


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


def is_factory(name: str) -> bool:
    """``package.module:function``: a dotted module, a colon, a name (never a path: no slash, no .py)."""
    module, sep, fn = name.partition(":")
    ok = sep and module and fn and "/" not in name and "\\" not in name and not module.endswith(".py")
    return bool(ok) and all(p.isidentifier() for p in (*module.split("."), fn))


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
        nodes.append(Node(layer["name"], layer["class_name"], layer["config"], tuple(_tensor_names(args))))
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


# -- the spec every other stage uses ---------------------------------------------------------------------------------


def load_spec(name: str | Path):
    """A :class:`kbench.model.spec.ModelSpec` for a ``.keras`` file (or a ``module:function`` factory, saved first).

    Its Keras build loads the file in the worker (``compile=False``, safe mode); its weights are the file's own
    (read from the loaded model once per cell, :attr:`ModelSpec.own_weights`); its forward is the generated twin
    (:mod:`kbench.model.autotwin`), or none, with the reason in :attr:`ModelSpec.no_twin`."""
    from kbench.model import autotwin
    from kbench.model.spec import ModelSpec, Tensor

    label = str(name)
    path = resolve_factory(label) if is_factory(label) else Path(label).expanduser().resolve()
    graph = read_graph(path)
    twin = autotwin.build(graph)
    has_twin = isinstance(twin, autotwin.Twin)
    bounds = twin.index_inputs if has_twin else autotwin.index_bounds(graph)
    inputs = tuple(Tensor(i.name, ("batch", *i.shape), init="index", high=bounds[i.name]) if i.name in bounds
                   else Tensor(i.name, ("batch", *i.shape)) for i in graph.inputs)  # fmt: skip
    return ModelSpec(
        name=label if is_factory(label) else path.name, summary=_summary(path.name, graph, twin),
        sizes={"batch": (1, 32, 1024)}, inputs=inputs,
        weights=tuple(Tensor(k, s) for k, s in twin.weights) if has_twin else (),
        output=("batch", *twin.output_shape) if has_twin else ("batch",),
        build_keras=_Build(str(path)), forward=_Forward(twin.forward) if has_twin else None,
        flops=_PerRow(twin.flops_per_row if has_twin else 0),
        reduction=_Fixed(twin.reduction if has_twin else _reduction_bound(graph)),
        sweep={"batch": "2**0..2**14"}, magnitude=_Magnitude(twin) if has_twin else None, source=str(path),
        own_weights=_Weights(str(path)) if has_twin else None, no_twin="" if has_twin else twin.reason,
        dtypes=(graph.dtype,),
    )  # fmt: skip


def _summary(file: str, graph: Graph, twin: Any) -> str:
    layers = ", ".join(n.cls for n in graph.nodes[:6]) + (", ..." if len(graph.nodes) > 6 else "")
    tail = "NumPy twin generated from the layer configs" if not hasattr(twin, "reason") else twin.reason
    return f"{file}: {graph.kind} model of {len(graph.nodes)} layers ({layers}), {graph.dtype}; {tail}"


def _reduction_bound(graph: Graph) -> int:
    """Without a twin, the longest sum is unknown: the largest layer input (every element could be summed)."""
    sizes = [1]
    for node in graph.nodes:
        shape = ((node.config.get("build_config") or {}) if isinstance(node.config, dict) else {}).get("input_shape")
        if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape[1:]):
            sizes.append(_prod(shape[1:]))
    return max(sizes + [_prod(i.shape) for i in graph.inputs])


def _prod(values: Any) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


@dataclass(frozen=True)
class _Build:
    """``build_keras`` of a ``.keras`` file: load it (a fresh instance per call). A class, not a closure."""

    path: str

    def __call__(self, keras: Any, weights: Any = None, sizes: Any = None, dtype: Any = None, **options: Any) -> Any:
        return keras.saving.load_model(self.path, compile=False, safe_mode=True)


@dataclass(frozen=True)
class _Weights:
    """``own_weights`` of a ``.keras`` file: ``"<layer>/<variable>"`` -> the saved array, as the twin reads them."""

    path: str

    def __call__(self, keras: Any, dtype: str) -> dict:
        model = keras.saving.load_model(self.path, compile=False, safe_mode=True)
        return {f"{layer.name}/{v.name}": keras.ops.convert_to_numpy(v.value)
                for layer in model.layers for v in layer.weights}  # fmt: skip


@dataclass(frozen=True)
class _Forward:
    fn: Any

    def __call__(self, weights: Any, inputs: Any, **options: Any) -> Any:
        return self.fn(weights, inputs)


@dataclass(frozen=True)
class _Magnitude:
    twin: Any

    def __call__(self, weights: Any, inputs: Any, **options: Any) -> Any:
        return self.twin.magnitude(weights, inputs)


@dataclass(frozen=True)
class _PerRow:
    flops: int

    def __call__(self, sizes: Mapping[str, int]) -> int:
        return int(sizes["batch"]) * self.flops


@dataclass(frozen=True)
class _Fixed:
    value: int

    def __call__(self, sizes: Mapping[str, int]) -> int:
        return self.value


# -- a factory, resolved in a child process --------------------------------------------------------------------------

_FACTORY_CHILD = """
import importlib, json, sys
module, function, out = sys.argv[1:4]
def fail(message):
    print(json.dumps({"error": " ".join(str(message).split())}))
    sys.exit(0)
try:
    fn = getattr(importlib.import_module(module), function)
except Exception as exc:
    fail(f"cannot import {module}:{function} ({type(exc).__name__}: {exc}); make its module importable from the "
         "current folder or PYTHONPATH")
import keras
try:
    model = fn()
except Exception as exc:
    fail(f"{module}:{function}() raised {type(exc).__name__}: {exc}")
if not isinstance(model, keras.Model):
    fail(f"{module}:{function}() returned a {type(model).__name__}, not a keras.Model; return a built model")
try:
    model.save(out)
except Exception as exc:
    fail(f"the model of {module}:{function}() cannot be saved ({type(exc).__name__}: {exc}); kbench needs a model "
         "of Keras' own layers (custom objects are not supported)")
print(json.dumps({"path": out}))
"""


def factory_dir() -> Path:
    import os

    root = os.environ.get("KBENCH_CACHE_DIR") or Path.home() / ".cache" / "kbench"
    return Path(root) / "factories"


def resolve_factory(name: str, backend: str | None = None) -> Path:
    """Call ``module:function`` in a child process (the parent never imports Keras) and save its model as a
    ``.keras`` file under :func:`factory_dir`; every worker then loads that file, so they share its weights."""
    import os
    import subprocess
    import sys

    module, _, function = name.partition(":")
    folder = factory_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{module}.{function}.keras"
    tmp = folder / f".{module}.{function}.{os.getpid()}.keras"
    env = {**os.environ, "KERAS_BACKEND": backend or os.environ.get("KERAS_BACKEND", "tensorflow"),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", _FACTORY_CHILD, module, function, str(tmp)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {"error": f"the factory's process failed: {_tail(proc.stderr)}"}
    if "error" in answer:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(f"--model {name}: {answer['error']}")
    os.replace(tmp, out)
    return out


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
