"""The automatic NumPy twin of a Keras model, generated from its layer configs (:class:`kbench.model.keras_file.Graph`).

For every layer call, in graph order, the layer's emitter (:data:`kbench.model.twins.registry.LAYERS`, one family
module per kind of layer under :mod:`kbench.model.twins`) gives four things:

- its output shape from its config and its input shapes (so the parent knows the model's output without Keras);
- the NumPy *code* of its forward, one line; the lines and the helpers they call (:func:`kbench.model.twins.registry.helpers_for`) make
  the source of a module ``forward(W, inputs)``. That same source runs as the ``numpy`` path (in the run's dtype),
  as the float64 reference, and is what ``kbench export`` writes, so the code checked for parity is the code a user
  gets;
- its *error scale* M (see below) from its inputs' values and scales;
- its FLOPs per row and its reduction length.

Supported: the layers of :data:`kbench.model.twins.registry.LAYERS` (Dense and the activations, the normalisations,
Embedding, the merges, convolutions, pooling, padding, cropping and upsampling, the recurrent layers with
Bidirectional and TimeDistributed(Dense), the scaling layers, MultiHeadAttention; docs/reference/layers.md lists
them with their options). Any other layer (or a layer called twice, or a nested model) means no twin: :func:`build`
returns a :class:`NoTwin` naming the first such layer; a config value of the wrong type or range makes it
``invalid``, and the model file is refused.

**The error scale M, for parity.** kbench's parity allows ``|out - ref| <= tol * max(|ref|, M)`` per element, M
being the size of the terms behind it, tol = 16 eps sqrt(K). For one Dense layer the forward on |weights| and
|inputs| (|x| @ |W| + |b|) is such a size. Through later layers it is not: a softmax of |z| or a normalisation of
|x| says nothing about how rounding moves the real values, and M compounded as a worst-case bound layer by layer
(tried first) grew to about 100 times the largest |ref| behind a LayerNormalization and a softmax (on the MLP of
``benchmarks/byom_mlp.py``: an absolute tolerance of 2.5e-3 on probabilities, which hides real bugs). So M is
*measured*: the twin runs in float64 :data:`TRIALS` more times,
with every input, weight and layer output multiplied by ``1 + delta * r`` (r standard normal, seeded; delta =
1e-7, far above float64 rounding and small enough to stay linear), and M_i is the largest ``|change_i| / delta``:
the output's response to a unit relative error in every term, which is what rounding is (Monte Carlo arithmetic).
For one Dense layer that is the root-sum-square of the terms x_k W_kj (about sqrt(K) times smaller than
|x| @ |W|); through a softmax, a normalisation or a saturating activation it is what those layers really do to an
error. Rounding inside a layer's sums is what tol's sqrt(K) covers; K is the sum of the layers' reduction lengths
(Dense: its inputs; a normalisation or softmax: its axis; Dot: the contracted length; elementwise: 1), since
successive layers' errors add like a random walk. M is a measurement, not a bound: the factor 16 in tol is the
margin. A model without a twin has no M: parity compares its Keras paths with one another on the max|ref| scale
(:func:`kbench.measure.parity.check_keras_only`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from kbench.core.errors import one_line
from kbench.model.keras_file import Graph, Node
from kbench.model.twins.base import BadConfig, Call, Emitted, Shape, Unsupported
from kbench.model.twins.dense import ERF_IMPORT
from kbench.model.twins.registry import LAYERS, helpers_for

# -- the error scale M (see the module docstring) ------------------------------------------------------------------

PERTURBATION = 1e-7  # the relative size of the float64 perturbations that measure M (linear, far above float64's eps)
TRIALS = 4  # M is the largest response over this many seeded perturbations


@dataclass(frozen=True)
class Step:
    """One layer call of a built twin: what was emitted, and its expression compiled as ``fn(W, *inputs)``."""

    call: Call
    emitted: Emitted
    fn: Callable[..., np.ndarray]


def _jitter(x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """``x * (1 + delta * r)``, r standard normal per element; integer arrays (indices) are left alone."""
    x = np.asarray(x)
    if rng is None or not np.issubdtype(x.dtype, np.floating):
        return x
    return x * (1 + PERTURBATION * rng.standard_normal(x.shape))


# -- building the twin -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoTwin:
    """Why a model has no NumPy twin: the first layer without one; ``invalid`` when its config is broken (a value of
    the wrong type or range, :class:`kbench.model.twins.base.BadConfig`), not merely beyond what a twin covers."""

    layer: str
    cls: str
    why: str
    invalid: bool = False

    @property
    def reason(self) -> str:
        return f"no NumPy twin (layer {self.layer!r}: {self.why})"


@dataclass(frozen=True)
class Twin:
    """A model's generated NumPy twin: its source, compiled forward and error scale, and what kbench needs to
    know about it (output shape, weights, FLOPs per row, reduction length, which inputs are indices)."""

    graph: Graph
    source: str  # a module: ``import numpy as np``, the helpers, ``def forward(W, inputs)``
    steps: tuple[Step, ...]
    names: Mapping[str, str]  # tensor name -> its variable in the source
    output_shape: Shape
    weights: tuple[tuple[str, Shape], ...]  # (key in W, shape), in graph order
    flops_per_row: int
    reduction: int
    index_inputs: Mapping[str, int]  # input name -> the exclusive bound of its indices (it feeds an Embedding)
    forward: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], np.ndarray]

    def magnitude(self, W: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """M per output element, in float64: the largest change of the output over :data:`TRIALS` runs in which
        every input, weight and layer output is multiplied by ``1 + delta * r`` (r standard normal, seeded), over
        delta (see the module docstring)."""
        base = self.run(W, inputs)
        rng = np.random.default_rng(0)
        worst = np.zeros(base.shape)
        for _ in range(TRIALS):
            moved = self.run({k: _jitter(v, rng) for k, v in W.items()}, inputs, rng)
            worst = np.maximum(worst, np.abs(moved - base) / PERTURBATION)
        return worst

    def run(self, W: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
            rng: np.random.Generator | None = None) -> np.ndarray:  # fmt: skip
        """The forward, step by step, each step's output jittered with ``rng`` (when given)."""
        vals = {i.name: inputs[i.name] if i.name in self.index_inputs else _jitter(inputs[i.name], rng)
                for i in self.graph.inputs}  # fmt: skip
        for step in self.steps:
            node = step.call.node
            vals[node.name] = _jitter(step.fn(W, *(vals[t] for t in node.inputs)), rng)
        return np.asarray(vals[self.graph.output], dtype=np.float64)


def index_bounds(graph: Graph) -> dict[str, int]:
    """Inputs that feed an Embedding (or have an integer dtype): the exclusive bound of the indices to draw."""
    bounds: dict[str, int] = {}
    for node in graph.nodes:
        if node.cls == "Embedding":
            for t in node.inputs:
                bounds[t] = min(bounds.get(t, 1 << 30), int(node.config["input_dim"]))
    ints = {i.name: INT_INPUT_HIGH for i in graph.inputs if i.dtype.startswith(("int", "uint"))}
    return {i.name: bounds.get(i.name, ints.get(i.name)) for i in graph.inputs if i.name in bounds or i.name in ints}


INT_INPUT_HIGH = 16  # an integer input that feeds no Embedding gets indices in [0, 16)


def build(graph: Graph) -> Twin | NoTwin:
    """The twin of ``graph``, or why there is none."""
    if graph.shared:
        node = next(n for n in graph.nodes if n.name == graph.shared[0])
        return NoTwin(node.name, node.cls, f"{node.cls} is called more than once (a shared layer)")
    names = {inp.name: f"x{i}" for i, inp in enumerate(graph.inputs)}
    shapes: dict[str, Shape] = {inp.name: inp.shape for inp in graph.inputs}
    steps, lines = [], []
    for j, node in enumerate(graph.nodes):
        try:
            emitted, call = _emit_node(node, names, shapes)
        except Unsupported as exc:
            return NoTwin(exc.node.name, exc.node.cls, exc.why, isinstance(exc, BadConfig))
        names[node.name], shapes[node.name] = f"t{j}", emitted.shape
        lines.append(f"    t{j} = {emitted.code}  # layer {node.name!r} ({node.cls})")
        steps.append(Step(call, emitted, _compile(emitted.code, call.args)))
    source = module_source(graph, names, lines)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<kbench twin of {graph.name!r}>", "exec"), namespace)  # noqa: S102  (our own generated code)
    return Twin(graph, source, tuple(steps), names, shapes[graph.output],
                tuple((s.call.key(n), shp) for s in steps for n, shp in s.emitted.weights),
                sum(s.emitted.flops for s in steps), max(1, sum(s.emitted.reduction for s in steps)),
                index_bounds(graph), namespace["forward"])  # fmt: skip


def _emit_node(node: Node, names: Mapping[str, str], shapes: Mapping[str, Shape]) -> tuple[Emitted, Call]:
    emitter = LAYERS.get(node.cls)
    if emitter is None:
        raise Unsupported(node, f"{node.cls} has no NumPy twin" if node.cls not in ("Sequential", "Functional")
                          else "a nested model has no NumPy twin")  # fmt: skip
    missing = [t for t in node.inputs if t not in names]
    if missing or not node.inputs:
        raise Unsupported(node, f"reads {missing[0]!r}, which is not a tensor of this model" if missing else "no input")
    call = Call(node, tuple(names[t] for t in node.inputs), tuple(shapes[t] for t in node.inputs))
    try:
        return emitter(call), call
    except Unsupported:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, ZeroDivisionError) as exc:
        # a config value no reader checked (the readers in kbench.model.twins.base name their field): still one line
        raise BadConfig(node, f"its config cannot be read ({type(exc).__name__}: {one_line(str(exc))[:160]})") from None


def _compile(code: str, args: tuple[str, ...]) -> Callable[..., np.ndarray]:
    namespace: dict[str, Any] = {}
    exec(_header(code) + helpers_for(code), namespace)  # noqa: S102
    # a tensor read twice (self-attention's query and value, Add()([a, a])) is one parameter, the repeat a dummy
    params = [a if a not in args[:i] else f"_repeat{i}" for i, a in enumerate(args)]
    return eval(f"lambda W, {', '.join(params)}: {code}", namespace)  # noqa: S307  (our own generated code)


def _header(code: str) -> str:
    return "import numpy as np\n" + (ERF_IMPORT if "_gelu(" in code else "")


def module_source(graph: Graph, names: Mapping[str, str], lines: list[str]) -> str:
    """``import numpy as np``, the helpers, and ``forward(W, inputs)``: the twin as a module's source."""
    reads = [f"    {names[i.name]} = inputs[{i.name!r}]" for i in graph.inputs]
    body = "\n".join([*reads, *lines, f"    return {names[graph.output]}"])
    return (f"{_header(body)}{helpers_for(body)}\n\ndef forward(W, inputs):\n"
            f'    """The model, layer by layer: W maps "<layer>/<variable>" to its array, inputs each input\'s name."""\n'
            f"{body}\n")  # fmt: skip
