"""The :class:`kbench.model.spec.ModelSpec` of a user's own model: a saved ``.keras`` file or a factory.

Its Keras build loads the file in the worker; its weights are the file's own; its forward is the generated NumPy
twin (:mod:`kbench.model.autotwin`), or none, with the reason in :attr:`ModelSpec.no_twin`. The spec's callables are
small frozen classes, not closures, so a spec stays picklable and comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kbench.core.errors import ModelLoadError
from kbench.core.fmt import visible
from kbench.model import autotwin
from kbench.model.factory import is_factory, resolve_factory
from kbench.model.keras_checks import check_built_shapes, check_embeddings, load_keras, stored_weight_bytes
from kbench.model.keras_file import Graph, read_graph
from kbench.model.spec import ModelSpec, Tensor


def load_spec(name: str | Path) -> ModelSpec:
    """A :class:`kbench.model.spec.ModelSpec` for a ``.keras`` file (or a ``module:function`` factory, saved first).

    Its Keras build loads the file in the worker (``compile=False``, safe mode); its weights are the file's own
    (read from the loaded model once per cell, :attr:`ModelSpec.own_weights`); its forward is the generated twin
    (:mod:`kbench.model.autotwin`), or none, with the reason in :attr:`ModelSpec.no_twin`."""
    label = str(name)
    path = resolve_factory(label) if is_factory(label) else Path(label).expanduser().resolve()
    graph = read_graph(path)
    twin = autotwin.build(graph)
    if isinstance(twin, autotwin.NoTwin) and twin.invalid:
        raise ModelLoadError(f"{visible(label)}: layer {visible(repr(twin.layer))} ({visible(twin.cls)}) has a broken "
                             f"config: {visible(twin.why)}; fix it in the model, save it again and rerun")  # fmt: skip
    has_twin = isinstance(twin, autotwin.Twin)
    if has_twin:
        check_built_shapes(twin, label)
    else:
        check_embeddings(graph, label)
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
        dtypes=(graph.dtype,), stored_bytes=stored_weight_bytes(path),
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
        return load_keras(keras, self.path)


@dataclass(frozen=True)
class _Weights:
    """``own_weights`` of a ``.keras`` file: ``"<layer>/<variable>"`` -> the saved array, as the twin reads them."""

    path: str

    def __call__(self, keras: Any, dtype: str) -> dict:
        model = load_keras(keras, self.path)
        return {key: keras.ops.convert_to_numpy(v.value) for layer in model.layers for key, v in weight_keys(layer)}


def weight_keys(layer: Any) -> list[tuple[str, Any]]:
    """(key, variable) for each of a layer's weights: ``"<layer>/<variable>"``, and for a Bidirectional
    ``"<layer>/forward/<variable>"`` and ``"<layer>/backward/<variable>"`` (Keras names both directions' variables
    alike, so one key per name would let the backward weights overwrite the forward ones); for a
    MultiHeadAttention ``"<layer>/<query|key|value|attention_output>/<variable>"`` (its four projections' variables
    are all named kernel and bias)."""
    if type(layer).__name__ == "MultiHeadAttention":
        return [(f"{layer.name}/{'/'.join(v.path.split('/')[-2:])}", v) for v in layer.weights]
    if type(layer).__name__ != "Bidirectional":
        return [(f"{layer.name}/{v.name}", v) for v in layer.weights]
    sides = (("forward", layer.forward_layer), ("backward", layer.backward_layer))
    return [(f"{layer.name}/{side}/{v.name}", v) for side, sub in sides for v in sub.weights]


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
