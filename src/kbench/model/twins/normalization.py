"""The normalization layers: LayerNormalization (and its RMS form) and BatchNormalization (inference).

:data:`HELPERS` is the NumPy source of ``_layer_norm``, which the LayerNormalization code calls.
"""

from __future__ import annotations

import math

from kbench.model.twins.base import Call, Emitted, Shape, flag, number, numpy_axis, single_input

HELPERS = '''
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
'''


def _norm_axes(call: Call, shape: Shape) -> tuple[int, ...]:
    axes = call.cfg.get("axis", -1)
    return tuple(sorted(numpy_axis(call, a, len(shape)) for a in (axes if isinstance(axes, (list, tuple)) else [axes])))


def _param_shape(shape: Shape, axes: tuple[int, ...]) -> Shape:
    return tuple(shape[a - 1] for a in axes)


def _bcast(call: Call, name: str, shape: Shape, axes: tuple[int, ...]) -> str:
    """A per-feature weight reshaped to broadcast against the batched input (as is, when it is the last axis)."""
    if axes == (len(shape),):
        return call.w(name)
    full = tuple(shape[i - 1] if i in axes else 1 for i in range(1, len(shape) + 1))
    return f"{call.w(name)}.reshape({full!r})"


def layer_normalization(call: Call) -> Emitted:
    """Over one axis or several (``axis``), ``epsilon``, ``center``, ``scale`` and ``rms_scaling``."""
    shape = single_input(call)
    axes = _norm_axes(call, shape)
    rms = flag(call, "rms_scaling", False)
    scale, center = flag(call, "scale", True), flag(call, "center", True) and not rms
    pshape = _param_shape(shape, axes)
    weights = ([("gamma", pshape)] if scale else []) + ([("beta", pshape)] if center else [])
    gamma = _bcast(call, "gamma", shape, axes) if scale else "None"
    beta = _bcast(call, "beta", shape, axes) if center else "None"
    code = f"_layer_norm({call.args[0]}, {axes!r}, {gamma}, {beta}, {number(call, 'epsilon', 1e-3, 0)!r}, {rms})"
    n = math.prod(pshape)
    return Emitted(code, shape, tuple(weights), 8 * math.prod(shape), n)


def batch_normalization(call: Call) -> Emitted:
    """Inference: the moving mean and variance, ``axis``, ``epsilon``, ``center`` and ``scale``."""
    shape = single_input(call)
    axes = _norm_axes(call, shape)
    pshape = _param_shape(shape, axes)
    scale, center = flag(call, "scale", True), flag(call, "center", True)
    weights = ([("gamma", pshape)] if scale else []) + ([("beta", pshape)] if center else [])
    weights += [("moving_mean", pshape), ("moving_variance", pshape)]
    b = lambda name: _bcast(call, name, shape, axes)  # noqa: E731
    code = f"({call.args[0]} - {b('moving_mean')}) / np.sqrt({b('moving_variance')} + {number(call, 'epsilon', 1e-3, 0)!r})"
    code = f"{code} * {b('gamma')}" if scale else code
    code = f"{code} + {b('beta')}" if center else code
    return Emitted(code, shape, tuple(weights), 4 * math.prod(shape))

