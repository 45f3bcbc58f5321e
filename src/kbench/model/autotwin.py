"""The automatic NumPy twin of a Keras model, generated from its layer configs (:class:`kbench.model.keras_file.Graph`).

For every layer call, in graph order, a supported layer kind (:data:`LAYERS`) gives four things:

- its output shape from its config and its input shapes (so the parent knows the model's output without Keras);
- the NumPy *code* of its forward, one line; the lines and the helper functions (:data:`HELPERS`, NumPy only) make
  the source of a module ``forward(W, inputs)``. That same source runs as the ``numpy`` path (in the run's dtype),
  as the float64 reference, and is what ``kbench export`` writes, so the code checked for parity is the code a user
  gets;
- its *error scale* M (see below) from its inputs' values and scales;
- its FLOPs per row and its reduction length.

Supported: Dense (every activation in :data:`ACTIVATIONS`), LayerNormalization (and its RMS form),
BatchNormalization (inference), Embedding, Dot, Add, Concatenate, Flatten, Reshape, Dropout (identity), Softmax,
Activation, ReLU (max_value, negative_slope, threshold) and InputLayer. Any other layer (or a layer called twice, or
a nested model) means no twin: :func:`build` returns a :class:`NoTwin` naming the first such layer.

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

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from kbench.model.keras_file import Graph, Node

Shape = tuple[int, ...]  # without the batch dimension

# -- helpers: NumPy only, dtype-preserving (Python float constants keep float32 arrays float32) ----------------------

HELPERS = '''
def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; no cancellation for large negative x
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.logaddexp(0, x)


def _gelu(x):
    return 0.5 * x * _erfc(x * -0.7071067811865476)  # erfc: no cancellation for large negative x


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))))


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _selu(x):
    return 1.0507009873554805 * _elu(x, 1.6732632423543772)


def _celu(x, alpha=1.0):
    return np.maximum(x, 0) + alpha * np.expm1(np.minimum(x, 0) / alpha)


def _hard_sigmoid(x):
    return np.minimum(np.maximum(x + 3, 0), 6) / 6


# ufunc reductions (np.add.reduce) rather than np.sum / np.mean: the same arithmetic, microseconds less per call


def _softmax(x, axis=-1):
    e = np.exp(x - np.maximum.reduce(x, axis=axis, keepdims=True))
    return e / np.add.reduce(e, axis=axis, keepdims=True)


def _log_softmax(x, axis=-1):
    s = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    return s - np.log(np.add.reduce(np.exp(s), axis=axis, keepdims=True))


def _relu_layer(x, max_value, negative_slope, threshold):
    """keras.layers.ReLU, in Keras' own order of operations."""
    y = x * (x > threshold) if threshold != 0 else np.maximum(x, 0)
    if max_value is not None:
        y = np.minimum(np.maximum(y, 0), max_value)
    if negative_slope != 0:
        y = y - negative_slope * np.maximum(threshold - x, 0)
    return y


def _layer_norm(x, axes, gamma, beta, epsilon, rms):
    """keras.layers.LayerNormalization; its deprecated rms_scaling divides x (not centred) by the variance's root."""
    n = 1
    for a in axes:
        n *= x.shape[a]
    centred = x - np.add.reduce(x, axis=axes, keepdims=True) / n
    var = np.add.reduce(centred * centred, axis=axes, keepdims=True) / n
    y = (x if rms else centred) / np.sqrt(var + epsilon)
    y = y if gamma is None else y * gamma
    return y if beta is None else y + beta


def _l2_normalize(x, axis):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))
'''

ERF_IMPORT = '''
try:  # exact erfc: SciPy's when it is installed, else the standard library's, element by element
    from scipy.special import erfc as _erfc
except ImportError:  # pragma: no cover
    import math as _math

    _erfc = np.vectorize(_math.erfc, otypes=[float])
'''


@dataclass(frozen=True)
class Activation:
    code: str  # a format string of one argument: the pre-activation's expression
    axis: bool = False  # acts along the last axis (softmax, log_softmax), not element by element


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("{}"),
    "relu": Activation("np.maximum({}, 0)"),
    "relu6": Activation("np.minimum(np.maximum({}, 0), 6)"),
    "leaky_relu": Activation("_relu_layer({}, None, 0.2, 0.0)"),
    "gelu": Activation("_gelu({})"),
    "gelu_approximate": Activation("_gelu_tanh({})"),
    "sigmoid": Activation("_sigmoid({})"),
    "hard_sigmoid": Activation("_hard_sigmoid({})", 1 / 6),
    "hard_silu": Activation("(lambda z: z * _hard_sigmoid(z))({})"),
    "hard_swish": Activation("(lambda z: z * _hard_sigmoid(z))({})"),
    "tanh": Activation("np.tanh({})"),
    "hard_tanh": Activation("np.minimum(np.maximum({}, -1), 1)"),
    "tanh_shrink": Activation("(lambda z: z - np.tanh(z))({})"),
    "silu": Activation("(lambda z: z * _sigmoid(z))({})"),
    "swish": Activation("(lambda z: z * _sigmoid(z))({})"),
    "elu": Activation("_elu({})"),
    "selu": Activation("_selu({})"),
    "celu": Activation("_celu({})"),
    "softplus": Activation("_softplus({})"),
    "softsign": Activation("(lambda z: z / (1 + np.abs(z)))({})"),
    "log_sigmoid": Activation("-_softplus(-({}))"),
    "mish": Activation("(lambda z: z * np.tanh(_softplus(z)))({})"),
    "exponential": Activation("np.exp({})"),
    "squareplus": Activation("(lambda z: 0.5 * (z + np.sqrt(z * z + 4)))({})"),
    "softmax": Activation("_softmax({})", axis=True),
    "log_softmax": Activation("_log_softmax({})", axis=True),
}


class Unsupported(Exception):
    """Raised while building: this layer has no NumPy twin (``why`` says what is missing)."""

    def __init__(self, node: Node, why: str) -> None:
        super().__init__(why)
        self.node, self.why = node, why


def activation_name(node: Node, value: Any) -> str:
    """An activation from a config (a name, or ``{"class_name": "function", "config": name}``) as a key of
    :data:`ACTIVATIONS`; :class:`Unsupported` otherwise."""
    name = value
    if isinstance(value, dict):
        name = value.get("config") if value.get("class_name") in ("function", "Function") else None
        if isinstance(name, dict):
            name = name.get("name")
    if value is None:
        return "linear"
    if not isinstance(name, str) or name not in ACTIVATIONS or name == "gelu_approximate":
        raise Unsupported(node, f"activation {name if isinstance(name, str) else value!r} has no NumPy twin")
    return name


# -- the layer kinds -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One layer call as the generator sees it."""

    node: Node
    args: tuple[str, ...]  # the code names of its input tensors
    shapes: tuple[Shape, ...]  # their shapes, batch dimension left out

    @property
    def cfg(self) -> Mapping[str, Any]:
        return self.node.config

    def key(self, name: str) -> str:
        """The weight's key in W: ``"<layer name>/<variable name>"`` (Keras' own variable path)."""
        return f"{self.node.name}/{name}"

    def w(self, name: str) -> str:
        return f"W[{self.key(name)!r}]"


def _axis(call: Call, axis: Any, rank: int) -> int:
    """A Keras axis (counting the batch as 0) as a NumPy axis of the batched array; the batch axis is refused."""
    a = int(axis)
    a = a + rank + 1 if a < 0 else a
    if not 1 <= a <= rank:
        raise Unsupported(call.node, f"axis {axis} (the batch axis or out of range) has no NumPy twin")
    return a


def _one(call: Call) -> Shape:
    if len(call.shapes) != 1:
        raise Unsupported(call.node, f"{len(call.shapes)} inputs, where the layer takes one")
    return call.shapes[0]


@dataclass(frozen=True)
class Emitted:
    code: str  # the expression of the output
    shape: Shape
    weights: tuple[tuple[str, Shape], ...] = ()  # (variable name, shape) of the layer's weights
    flops: int = 0  # per row of the batch
    reduction: int = 1


def _dense(call: Call) -> Emitted:
    shape = _one(call)
    units, act = int(call.cfg["units"]), activation_name(call.node, call.cfg.get("activation"))
    weights = [("kernel", (shape[-1], units))] + ([("bias", (units,))] if call.cfg.get("use_bias", True) else [])
    z = f"{call.args[0]} @ {call.w('kernel')}" + (f" + {call.w('bias')}" if len(weights) == 2 else "")
    out = (*shape[:-1], units)
    rows = math.prod(shape[:-1])
    flops = rows * (2 * shape[-1] * units + units * (len(weights) - 1) + (units if act != "linear" else 0))
    return Emitted(ACTIVATIONS[act].code.format(z), out, tuple(weights), flops, shape[-1])


def _activation(call: Call) -> Emitted:
    shape, act = _one(call), activation_name(call.node, call.cfg.get("activation"))
    return Emitted(ACTIVATIONS[act].code.format(call.args[0]), shape, (), math.prod(shape),
                   shape[-1] if ACTIVATIONS[act].axis else 1)  # fmt: skip


def _softmax_layer(call: Call) -> Emitted:
    shape = _one(call)
    axes = call.cfg.get("axis", -1)
    axes = tuple(_axis(call, a, len(shape)) for a in (axes if isinstance(axes, list) else [axes]))
    n = math.prod(shape[a - 1] for a in axes)
    return Emitted(f"_softmax({call.args[0]}, axis={axes!r})", shape, (), 3 * math.prod(shape), n)


def _relu(call: Call) -> Emitted:
    shape, c = _one(call), call.cfg
    mv = None if c.get("max_value") is None else float(c["max_value"])
    code = f"_relu_layer({call.args[0]}, {mv!r}, {float(c.get('negative_slope') or 0)!r}, {float(c.get('threshold') or 0)!r})"
    return Emitted(code, shape, (), math.prod(shape))


def _norm_axes(call: Call, shape: Shape) -> tuple[int, ...]:
    axes = call.cfg.get("axis", -1)
    return tuple(sorted(_axis(call, a, len(shape)) for a in (axes if isinstance(axes, (list, tuple)) else [axes])))


def _param_shape(shape: Shape, axes: tuple[int, ...]) -> Shape:
    return tuple(shape[a - 1] for a in axes)


def _bcast(call: Call, name: str, shape: Shape, axes: tuple[int, ...]) -> str:
    """A per-feature weight reshaped to broadcast against the batched input (as is, when it is the last axis)."""
    if axes == (len(shape),):
        return call.w(name)
    full = tuple(shape[i - 1] if i in axes else 1 for i in range(1, len(shape) + 1))
    return f"{call.w(name)}.reshape({full!r})"


def _layer_norm(call: Call) -> Emitted:
    shape, c = _one(call), call.cfg
    axes = _norm_axes(call, shape)
    rms = bool(c.get("rms_scaling", False))
    scale, center = bool(c.get("scale", True)), bool(c.get("center", True)) and not rms
    pshape = _param_shape(shape, axes)
    weights = ([("gamma", pshape)] if scale else []) + ([("beta", pshape)] if center else [])
    gamma = _bcast(call, "gamma", shape, axes) if scale else "None"
    beta = _bcast(call, "beta", shape, axes) if center else "None"
    code = f"_layer_norm({call.args[0]}, {axes!r}, {gamma}, {beta}, {float(c.get('epsilon', 1e-3))!r}, {rms})"
    n = math.prod(pshape)
    return Emitted(code, shape, tuple(weights), 8 * math.prod(shape), n)


def _batch_norm(call: Call) -> Emitted:
    shape, c = _one(call), call.cfg
    axes = _norm_axes(call, shape)
    pshape = _param_shape(shape, axes)
    scale, center = bool(c.get("scale", True)), bool(c.get("center", True))
    weights = ([("gamma", pshape)] if scale else []) + ([("beta", pshape)] if center else [])
    weights += [("moving_mean", pshape), ("moving_variance", pshape)]
    b = lambda name: _bcast(call, name, shape, axes)  # noqa: E731
    code = f"({call.args[0]} - {b('moving_mean')}) / np.sqrt({b('moving_variance')} + {float(c.get('epsilon', 1e-3))!r})"
    code = f"{code} * {b('gamma')}" if scale else code
    code = f"{code} + {b('beta')}" if center else code
    return Emitted(code, shape, tuple(weights), 4 * math.prod(shape))


def _embedding(call: Call) -> Emitted:
    shape, c = _one(call), call.cfg
    dim = int(c["output_dim"])
    return Emitted(f"{call.w('embeddings')}[{call.args[0]}.astype(np.intp)]", (*shape, dim),
                   (("embeddings", (int(c["input_dim"]), dim)),))  # fmt: skip


def _dot(call: Call) -> Emitted:
    if len(call.shapes) != 2 or len(call.shapes[0]) != len(call.shapes[1]) or len(call.shapes[0]) not in (1, 2):
        raise Unsupported(call.node, "Dot has a NumPy twin for two inputs of rank 2 or 3 only")
    (sa, sb), (ia, ib) = call.shapes, dot_axes(call)
    if sa[ia - 1] != sb[ib - 1]:
        raise Unsupported(call.node, f"Dot contracts lengths {sa[ia - 1]} and {sb[ib - 1]}, which differ")
    a, b = call.args
    if call.cfg.get("normalize"):
        a, b = f"_l2_normalize({a}, {ia})", f"_l2_normalize({b}, {ib})"
    n = sa[ia - 1]
    if len(sa) == 1:
        return Emitted(f"np.sum({a} * {b}, axis=1, keepdims=True)", (1,), (), 2 * n, n)
    out = (sa[2 - ia], sb[2 - ib])
    return Emitted(f"np.einsum({_einsum(ia, ib)!r}, {a}, {b})", out, (), 2 * n * math.prod(out), n)


def dot_axes(call: Call) -> tuple[int, int]:
    axes = call.cfg.get("axes", -1)
    ia, ib = (axes, axes) if isinstance(axes, int) else tuple(axes)
    return _axis(call, ia, len(call.shapes[0])), _axis(call, ib, len(call.shapes[1]))


def _einsum(ia: int, ib: int) -> str:
    """Keras' batch_dot of two (batch, p, q) arrays contracting NumPy axes ia and ib: a's other axis, then b's."""
    return f"b{'xi' if ia == 2 else 'ix'},b{'yi' if ib == 2 else 'iy'}->bxy"


def _add(call: Call) -> Emitted:
    if len(call.shapes) < 2 or len(set(call.shapes)) != 1:
        raise Unsupported(call.node, "Add has a NumPy twin for two or more inputs of one shape")
    return Emitted(" + ".join(call.args), call.shapes[0], (), (len(call.args) - 1) * math.prod(call.shapes[0]),
                   len(call.args))  # fmt: skip


def _concatenate(call: Call) -> Emitted:
    rank = len(call.shapes[0])
    axis = _axis(call, call.cfg.get("axis", -1), rank)
    if any(len(s) != rank or any(s[i] != call.shapes[0][i] for i in range(rank) if i != axis - 1) for s in call.shapes):
        raise Unsupported(call.node, "Concatenate's inputs differ off the axis")
    out = list(call.shapes[0])
    out[axis - 1] = sum(s[axis - 1] for s in call.shapes)
    return Emitted(f"np.concatenate([{', '.join(call.args)}], axis={axis})", tuple(out))


def _flatten(call: Call) -> Emitted:
    shape = _one(call)
    return Emitted(f"{call.args[0]}.reshape(len({call.args[0]}), -1)", (math.prod(shape),))


def _reshape(call: Call) -> Emitted:
    shape = _one(call)
    target = [int(d) for d in call.cfg["target_shape"]]
    if target.count(-1) == 1:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(shape) // known
    if math.prod(target) != math.prod(shape):
        raise Unsupported(call.node, f"Reshape to {tuple(target)} does not fit {shape}")
    return Emitted(f"{call.args[0]}.reshape(len({call.args[0]}), {', '.join(map(str, target))})", tuple(target))


def _identity(call: Call) -> Emitted:
    return Emitted(call.args[0], _one(call))


LAYERS: dict[str, Callable[[Call], Emitted]] = {
    "Dense": _dense,
    "Activation": _activation,
    "Softmax": _softmax_layer,
    "ReLU": _relu,
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Embedding": _embedding,
    "Dot": _dot,
    "Add": _add,
    "Concatenate": _concatenate,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": _identity,
    "InputLayer": _identity,
}


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
    """Why a model has no NumPy twin: the first layer without one."""

    layer: str
    cls: str
    why: str

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
            return NoTwin(exc.node.name, exc.node.cls, exc.why)
        names[node.name], shapes[node.name] = f"t{j}", emitted.shape
        lines.append(f"    t{j} = {emitted.code}  # layer {node.name!r} ({node.cls})")
        steps.append(Step(call, emitted, _compile(emitted.code, call.args)))
    source = module_source(graph, names, lines)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<kbench twin of {graph.name}>", "exec"), namespace)  # noqa: S102  (our own generated code)
    return Twin(graph, source, tuple(steps), names, shapes[graph.output],
                tuple((s.call.key(n), shp) for s in steps for n, shp in s.emitted.weights),
                sum(s.emitted.flops for s in steps), max(1, sum(s.emitted.reduction for s in steps)),
                index_bounds(graph), namespace["forward"])  # fmt: skip


def _emit_node(node: Node, names: Mapping[str, str], shapes: Mapping[str, Shape]) -> tuple[Emitted, Call]:
    kind = LAYERS.get(node.cls)
    if kind is None:
        raise Unsupported(node, f"{node.cls} has no NumPy twin" if node.cls not in ("Sequential", "Functional")
                          else "a nested model has no NumPy twin")  # fmt: skip
    missing = [t for t in node.inputs if t not in names]
    if missing or not node.inputs:
        raise Unsupported(node, f"reads {missing[0]!r}, which is not a tensor of this model" if missing else "no input")
    call = Call(node, tuple(names[t] for t in node.inputs), tuple(shapes[t] for t in node.inputs))
    return kind(call), call


def _compile(code: str, args: tuple[str, ...]) -> Callable[..., np.ndarray]:
    namespace: dict[str, Any] = {}
    exec(_header(code) + HELPERS, namespace)  # noqa: S102
    return eval(f"lambda W, {', '.join(args)}: {code}", namespace)  # noqa: S307  (our own generated code)


def _header(code: str) -> str:
    return "import numpy as np\n" + (ERF_IMPORT if "_gelu(" in code else "")


def module_source(graph: Graph, names: Mapping[str, str], lines: list[str]) -> str:
    """``import numpy as np``, the helpers, and ``forward(W, inputs)``: the twin as a module's source."""
    reads = [f"    {names[i.name]} = inputs[{i.name!r}]" for i in graph.inputs]
    body = "\n".join([*reads, *lines, f"    return {names[graph.output]}"])
    return (f"{_header(body)}{HELPERS}\n\ndef forward(W, inputs):\n"
            f'    """The model, layer by layer: W maps "<layer>/<variable>" to its array, inputs each input\'s name."""\n'
            f"{body}\n")  # fmt: skip
