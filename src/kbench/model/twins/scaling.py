"""The scaling layers: UnitNormalization (axis), Rescaling (scale, offset) and Normalization (an adapted mean and
variance as weights, or constants in the config; ``invert``).

Rescaling and Normalization cast an integer input (an image of uint8, say) to the layer's dtype first, as Keras
does. A constant of the config (a scale, an offset, a given mean or variance: a number, a nested list or a saved
NumPy array) is written into the code as a literal and cast to the input's dtype inside the helper, so a float32
twin stays float32 and the float64 reference float64. Rescaling's reshape of a list scale for a global
``channels_first`` image format (Keras' process-wide setting, not saved with the model) is not followed.

:data:`HELPERS` holds the NumPy of the three. UnitNormalization sums squares along its axes (its reduction length
is their size); the others are elementwise (reduction length 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kbench.model.twins.base import Call, Emitted, Emitter, Shape, Unsupported, numpy_axis, single_input
from kbench.model.twins.base import flag

HELPERS = '''
def _floats(x, dtype):
    """x itself when it holds floats, else cast to the layer's dtype."""
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(dtype)


def _unit_normalize(x, axis):
    """keras.layers.UnitNormalization: x times min(1 / sqrt(sum of squares), 1e12)."""
    return x / np.sqrt(np.maximum(np.add.reduce(x * x, axis=axis, keepdims=True), 1e-24))


def _rescale(x, scale, offset, dtype):
    x = _floats(x, dtype)
    return x * np.asarray(scale, x.dtype) + np.asarray(offset, x.dtype)


def _standardize(x, mean, variance, invert, dtype):
    """keras.layers.Normalization: (x - mean) / max(sqrt(variance), 1e-7), or x times that plus the mean."""
    x = _floats(x, dtype)
    mean, std = np.asarray(mean, x.dtype), np.maximum(np.sqrt(np.asarray(variance, x.dtype)), 1e-7)
    return mean + x * std if invert else (x - mean) / std
'''


def _axes(call: Call, shape: Shape, empty_ok: bool) -> tuple[int, ...]:
    """The config's ``axis`` (an integer, a list, or None: no axis) as sorted NumPy axes of the batched input."""
    value = call.cfg.get("axis", -1)
    items = [] if value is None else (list(value) if isinstance(value, (list, tuple)) else [value])
    if not all(type(a) is int for a in items) or (not items and not empty_ok):
        raise Unsupported(call.node, f"axis={value!r}: expected an integer or a list of integers")
    return tuple(sorted({numpy_axis(call, a, len(shape)) for a in items}))


def _dtype(call: Call) -> str:
    """The layer's compute dtype from its dtype policy (float32 unless it says float64)."""
    policy = call.cfg.get("dtype")
    name = (policy.get("config") or {}).get("name") if isinstance(policy, dict) else policy
    return "float64" if name == "float64" else "float32"


def _constant(call: Call, field: str, default: Any = None) -> np.ndarray:
    """A number, a nested list of numbers or a saved NumPy array from the config, as a float64 array;
    :class:`Unsupported` naming the field when it is none of those."""
    value = call.cfg.get(field, default)
    if isinstance(value, dict) and value.get("class_name") in ("__numpy__", "__tensor__"):
        value = (value.get("config") or {}).get("value")
    array = np.asarray(value, dtype=np.float64) if _numbers(value) else None
    if array is None or array.dtype != np.float64 or not np.all(np.isfinite(array)):
        raise Unsupported(call.node, f"{field}={value!r}: expected a finite number or a (nested) list of them")
    return array


def _numbers(value: Any) -> bool:
    """A number (not a bool), or a non-empty list of lists of the same length ... of numbers."""
    if isinstance(value, (list, tuple)):
        if not value or not all(_numbers(v) for v in value):
            return False
        shapes = {np.shape(v) for v in value}
        return len(shapes) == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _literal(array: np.ndarray) -> str:
    return repr(float(array)) if array.ndim == 0 else repr(array.tolist())


def unit_normalization(call: Call) -> Emitted:
    """Divides by the L2 norm over ``axis`` (an int or a list), at most a factor 1e12 as in Keras."""
    shape = single_input(call)
    axes = _axes(call, shape, empty_ok=False)
    axis = axes[0] if len(axes) == 1 else axes
    n = math.prod(shape[a - 1] for a in axes)
    return Emitted(f"_unit_normalize({call.args[0]}, {axis!r})", shape, (), 3 * math.prod(shape), n)


def rescaling(call: Call) -> Emitted:
    """``x * scale + offset``; a list scale or offset broadcasts against the input's last axes."""
    shape = single_input(call)
    scale, offset = _constant(call, "scale"), _constant(call, "offset", 0.0)
    for field, array in (("scale", scale), ("offset", offset)):
        if array.ndim > len(shape) or _broadcast(shape, array.shape) != shape:
            raise Unsupported(call.node, f"{field} of shape {array.shape} does not broadcast to the input's {shape}")
    code = f"_rescale({call.args[0]}, {_literal(scale)}, {_literal(offset)}, {_dtype(call)!r})"
    return Emitted(code, shape, (), 2 * math.prod(shape))


def _broadcast(shape: Shape, other: Shape) -> Shape | None:
    try:
        return tuple(np.broadcast_shapes(shape, other))
    except ValueError:
        return None


def normalization(call: Call) -> Emitted:
    """Adapted (weights ``mean`` and ``variance`` over the kept ``axis``) or given in the config; ``invert``."""
    shape = single_input(call)
    kept = _axes(call, shape, empty_ok=True)
    invert = flag(call, "invert", False)
    full = tuple(shape[i - 1] if i in kept else 1 for i in range(1, len(shape) + 1))
    given = call.cfg.get("mean") is not None, call.cfg.get("variance") is not None
    if given == (False, False):
        pshape = tuple(shape[a - 1] for a in kept)
        mean, variance = (_reshaped(call.w(n), full, kept, len(shape)) for n in ("mean", "variance"))
        weights: tuple = (("mean", pshape), ("variance", pshape))
    elif given == (True, True):
        mean, variance = (_literal(_aligned(call, n, full, kept)) for n in ("mean", "variance"))
        weights = ()
    else:
        raise Unsupported(call.node, "mean and variance: the config gives one without the other")
    code = f"_standardize({call.args[0]}, {mean}, {variance}, {invert}, {_dtype(call)!r})"
    return Emitted(code, shape, weights, 2 * math.prod(shape))


def _reshaped(w: str, full: Shape, kept: tuple[int, ...], rank: int) -> str:
    """An adapted weight (the kept axes' sizes) as code that broadcasts against the batched input."""
    return w if kept == (rank,) or not kept else f"{w}.reshape({full!r})"


def _aligned(call: Call, field: str, full: Shape, kept: tuple[int, ...]) -> np.ndarray:
    """A mean or variance given in the config, as Keras aligns it: a number everywhere, else its axes matched to
    the kept axes from the last one back."""
    array = _constant(call, field)
    if array.ndim == 0:
        return array
    if array.ndim > len(kept):
        raise Unsupported(call.node, f"{field} has {array.ndim} axes, more than the {len(kept)} kept by axis")
    expanded = [1] * len(full)
    for i in range(1, array.ndim + 1):
        expanded[kept[-i] - 1] = array.shape[-i]
    if any(e not in (1, f) for e, f in zip(expanded, full)):
        raise Unsupported(call.node, f"{field} of shape {array.shape} does not fit the kept axes' sizes")
    return array.reshape(expanded)


LAYERS: dict[str, Emitter] = {
    "UnitNormalization": unit_normalization,
    "Rescaling": rescaling,
    "Normalization": normalization,
}
