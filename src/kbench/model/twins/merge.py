"""The merging layers: Dot (with ``normalize``), Add and Concatenate.

:data:`HELPERS` is the NumPy source of ``_l2_normalize``, which a normalizing Dot calls.
"""

from __future__ import annotations

import math

from kbench.model.twins.base import Call, Emitted, Unsupported, numpy_axis

HELPERS = '''
def _l2_normalize(x, axis):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))
'''


def dot(call: Call) -> Emitted:
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
    return numpy_axis(call, ia, len(call.shapes[0])), numpy_axis(call, ib, len(call.shapes[1]))


def _einsum(ia: int, ib: int) -> str:
    """Keras' batch_dot of two (batch, p, q) arrays contracting NumPy axes ia and ib: a's other axis, then b's."""
    return f"b{'xi' if ia == 2 else 'ix'},b{'yi' if ib == 2 else 'iy'}->bxy"


def add(call: Call) -> Emitted:
    if len(call.shapes) < 2 or len(set(call.shapes)) != 1:
        raise Unsupported(call.node, "Add has a NumPy twin for two or more inputs of one shape")
    return Emitted(" + ".join(call.args), call.shapes[0], (), (len(call.args) - 1) * math.prod(call.shapes[0]),
                   len(call.args))  # fmt: skip


def concatenate(call: Call) -> Emitted:
    rank = len(call.shapes[0])
    axis = numpy_axis(call, call.cfg.get("axis", -1), rank)
    if any(len(s) != rank or any(s[i] != call.shapes[0][i] for i in range(rank) if i != axis - 1) for s in call.shapes):
        raise Unsupported(call.node, "Concatenate's inputs differ off the axis")
    out = list(call.shapes[0])
    out[axis - 1] = sum(s[axis - 1] for s in call.shapes)
    return Emitted(f"np.concatenate([{', '.join(call.args)}], axis={axis})", tuple(out))

