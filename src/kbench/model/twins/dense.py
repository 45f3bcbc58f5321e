"""Dense and the activations: the Activation, Softmax and ReLU layers, and every activation a Dense may carry.

:data:`ACTIVATIONS` maps Keras' activation names to NumPy code; :data:`HELPERS` is the NumPy source of the helper
functions that code calls (NumPy only, dtype-preserving: Python float constants keep float32 arrays float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kbench.model.keras_file import Node
from kbench.model.twins.base import Call, Emitted, Unsupported, flag, ints, number, numpy_axis, single_input

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
    "hard_sigmoid": Activation("_hard_sigmoid({})"),
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


# -- the layers ----------------------------------------------------------------------------------------------------


def dense(call: Call) -> Emitted:
    """``x @ kernel + bias`` over the last axis (any rank), ``use_bias``, and every activation in :data:`ACTIVATIONS`."""
    shape = single_input(call)
    (units,), act = ints(call, "units", 1), activation_name(call.node, call.cfg.get("activation"))
    weights = [("kernel", (shape[-1], units))] + ([("bias", (units,))] if flag(call, "use_bias", True) else [])
    z = f"{call.args[0]} @ {call.w('kernel')}" + (f" + {call.w('bias')}" if len(weights) == 2 else "")
    out = (*shape[:-1], units)
    rows = math.prod(shape[:-1])
    flops = rows * (2 * shape[-1] * units + units * (len(weights) - 1) + (units if act != "linear" else 0))
    return Emitted(ACTIVATIONS[act].code.format(z), out, tuple(weights), flops, shape[-1])


def activation(call: Call) -> Emitted:
    """The Activation layer: any activation in :data:`ACTIVATIONS`, element by element or over its axis."""
    shape, act = single_input(call), activation_name(call.node, call.cfg.get("activation"))
    return Emitted(ACTIVATIONS[act].code.format(call.args[0]), shape, (), math.prod(shape),
                   shape[-1] if ACTIVATIONS[act].axis else 1)  # fmt: skip


def softmax(call: Call) -> Emitted:
    """The Softmax layer over one axis or several (``axis``), max-subtracted; a mask is not supported."""
    shape = single_input(call)
    axes = call.cfg.get("axis", -1)
    axes = tuple(numpy_axis(call, a, len(shape)) for a in (axes if isinstance(axes, list) else [axes]))
    n = math.prod(shape[a - 1] for a in axes)
    return Emitted(f"_softmax({call.args[0]}, axis={axes!r})", shape, (), 3 * math.prod(shape), n)


def relu(call: Call) -> Emitted:
    """The ReLU layer with ``max_value``, ``negative_slope`` and ``threshold``."""
    shape = single_input(call)
    mv, slope = number(call, "max_value", None, 0), number(call, "negative_slope", 0.0, 0)
    code = f"_relu_layer({call.args[0]}, {mv!r}, {slope!r}, {number(call, 'threshold', 0.0)!r})"
    return Emitted(code, shape, (), math.prod(shape))

