"""The merging layers: Dot (with ``normalize``), Add and Concatenate, and the elementwise Multiply, Subtract, Average,
Maximum and Minimum.

:data:`HELPERS` is the NumPy source of ``_l2_normalize``, which a normalizing Dot calls. The elementwise merges take
inputs of one shape (Keras' broadcasting of unequal shapes has no twin); :data:`LAYERS` lists them (the registry
lists Dot, Add and Concatenate itself). Their reduction length is the number of inputs they combine (a max or a min
picks one, so 1), their FLOPs one operation per element per input after the first (Average: one more, its division).
"""

from __future__ import annotations

import math

from kbench.model.twins.base import Call, Emitted, Emitter, Unsupported, flag, numpy_axis

HELPERS = '''
def _l2_normalize(x, axis):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))
'''


def dot(call: Call) -> Emitted:
    """Two inputs of rank 2 or 3, ``axes`` (an int or a pair), ``normalize`` (L2 along the contracted axes)."""
    if len(call.shapes) != 2 or len(call.shapes[0]) != len(call.shapes[1]) or len(call.shapes[0]) not in (1, 2):
        raise Unsupported(call.node, "Dot has a NumPy twin for two inputs of rank 2 or 3 only")
    (sa, sb), (ia, ib) = call.shapes, dot_axes(call)
    if sa[ia - 1] != sb[ib - 1]:
        raise Unsupported(call.node, f"Dot contracts lengths {sa[ia - 1]} and {sb[ib - 1]}, which differ")
    a, b = call.args
    if flag(call, "normalize", False):
        a, b = f"_l2_normalize({a}, {ia})", f"_l2_normalize({b}, {ib})"
    n = sa[ia - 1]
    if len(sa) == 1:
        return Emitted(f"np.sum({a} * {b}, axis=1, keepdims=True)", (1,), (), 2 * n, n)
    out = (sa[2 - ia], sb[2 - ib])
    return Emitted(f"np.einsum({_einsum(ia, ib)!r}, {a}, {b})", out, (), 2 * n * math.prod(out), n)


def dot_axes(call: Call) -> tuple[int, int]:
    axes = call.cfg.get("axes", -1)
    ia, ib = (axes, axes) if isinstance(axes, int) else tuple(axes)
    return numpy_axis(call, ia, len(call.shapes[0])), numpy_axis(call, ib, len(call.shapes[1]))


def _einsum(ia: int, ib: int) -> str:
    """Keras' batch_dot of two (batch, p, q) arrays contracting NumPy axes ia and ib: a's other axis, then b's."""
    return f"b{'xi' if ia == 2 else 'ix'},b{'yi' if ib == 2 else 'iy'}->bxy"


def add(call: Call) -> Emitted:
    """Two or more inputs of one shape, summed left to right (no broadcasting)."""
    if len(call.shapes) < 2 or len(set(call.shapes)) != 1:
        raise Unsupported(call.node, "Add has a NumPy twin for two or more inputs of one shape")
    return Emitted(" + ".join(call.args), call.shapes[0], (), (len(call.args) - 1) * math.prod(call.shapes[0]),
                   len(call.args))  # fmt: skip


def concatenate(call: Call) -> Emitted:
    """Two or more inputs along ``axis``, equal off it."""
    rank = len(call.shapes[0])
    axis = numpy_axis(call, call.cfg.get("axis", -1), rank)
    if any(len(s) != rank or any(s[i] != call.shapes[0][i] for i in range(rank) if i != axis - 1) for s in call.shapes):
        raise Unsupported(call.node, "Concatenate's inputs differ off the axis")
    out = list(call.shapes[0])
    out[axis - 1] = sum(s[axis - 1] for s in call.shapes)
    return Emitted(f"np.concatenate([{', '.join(call.args)}], axis={axis})", tuple(out))



def _same_shapes(call: Call, least: int, most: int | None = None) -> tuple[int, ...]:
    """The one shape of the call's ``least``..``most`` inputs; :class:`Unsupported` otherwise."""
    n, cls = len(call.shapes), call.node.cls
    if n < least or (most is not None and n > most) or len(set(call.shapes)) != 1:
        count = f"{least}" if most == least else f"{least} or more"
        raise Unsupported(call.node, f"{cls} has a NumPy twin for {count} inputs of one shape, not {list(call.shapes)}")
    return call.shapes[0]


def multiply(call: Call) -> Emitted:
    """Two or more inputs of one shape, multiplied left to right (no broadcasting)."""
    shape = _same_shapes(call, 2)
    return Emitted(" * ".join(call.args), shape, (), (len(call.args) - 1) * math.prod(shape), len(call.args))


def subtract(call: Call) -> Emitted:
    """Two inputs of one shape: the first minus the second."""
    shape = _same_shapes(call, 2, 2)
    return Emitted(f"{call.args[0]} - {call.args[1]}", shape, (), math.prod(shape), 2)


def average(call: Call) -> Emitted:
    """Keras' order: the inputs summed left to right, then divided by their count."""
    shape = _same_shapes(call, 2)
    n = len(call.args)
    return Emitted(f"({' + '.join(call.args)}) / {n}", shape, (), n * math.prod(shape), n)


def _extreme(call: Call, ufunc: str) -> Emitted:
    shape = _same_shapes(call, 2)
    code = call.args[0]
    for arg in call.args[1:]:
        code = f"np.{ufunc}({code}, {arg})"
    return Emitted(code, shape, (), (len(call.args) - 1) * math.prod(shape))


def maximum(call: Call) -> Emitted:
    """Two or more inputs of one shape, element-wise maximum."""
    return _extreme(call, "maximum")


def minimum(call: Call) -> Emitted:
    """Two or more inputs of one shape, element-wise minimum."""
    return _extreme(call, "minimum")


LAYERS: dict[str, Emitter] = {
    "Multiply": multiply,
    "Subtract": subtract,
    "Average": average,
    "Maximum": maximum,
    "Minimum": minimum,
}
