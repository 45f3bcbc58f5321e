"""The pooling layers: MaxPooling1D/2D and AveragePooling1D/2D (pool_size, strides, valid/same padding), and the
global poolings GlobalMaxPooling1D/2D and GlobalAveragePooling1D/2D (keepdims), channels last or first.

A pooling reads its windows as a convolution does (the config readers and the ``_windows`` helper of
:mod:`kbench.model.twins.conv`) and reduces each: a max (a ``same`` pad is -inf, so it never wins) or a mean. Keras'
average pooling with ``same`` padding (TensorFlow's) averages the window's real elements only, the pad left out:
``_avg_pool`` divides by that count, the same windows over ones. Keras' global average pooling averages over a
mask when one reaches it (an ``Embedding(mask_zero=True)``); a twin cannot see the mask and averages every step.

A max has no rounding (it picks one of its inputs), so its reduction length is 1; a mean's is the number of elements
it sums. FLOPs count one operation per element read, plus a division per output of a mean.
"""

from __future__ import annotations

import math

from kbench.model.twins.base import Call, Emitted, Emitter, Unsupported, single_input
from kbench.model.twins.base import BadConfig, choice, flag, ints
from kbench.model.twins.conv import channels_first, spatial_input, window

HELPERS = '''
def _max_pool(x, size, strides, pads):
    n = len(size)
    win = _windows(x, size, strides, pads, (1,) * n, -np.inf)
    return np.maximum.reduce(win, axis=tuple(range(-n, 0)))


def _avg_pool(x, size, strides, pads):
    """The mean of each window's real elements: a same pad is not counted."""
    n = len(size)
    axes, ones = tuple(range(-n, 0)), (1,) * n
    total = np.add.reduce(_windows(x, size, strides, pads, ones), axis=axes)
    if not any(before or after for before, after in pads):
        return total / int(np.prod(size))
    count = np.add.reduce(_windows(np.ones((1, *x.shape[1:-1], 1), x.dtype), size, strides, pads, ones), axis=axes)
    return total / count
'''


def _pooling(call: Call, n: int, helper: str) -> Emitted:
    """MaxPooling and AveragePooling: ``pool_size``, ``strides`` (the pool size when absent), ``padding``."""
    spatial = spatial_input(call, n)
    size = ints(call, "pool_size", n)
    strides = size if call.cfg.get("strides") is None else ints(call, "strides", n)
    win = window(call, spatial.sizes, size, strides, (1,) * n, choice(call, "padding", "valid", ("valid", "same")))
    code = f"{helper}({spatial.code}, {size!r}, {strides!r}, {win.pads!r})"
    out = (spatial.channels, *win.out) if spatial.first else (*win.out, spatial.channels)
    if spatial.first:
        code = f"np.moveaxis({code}, -1, 1)"
    outputs, mean = math.prod(out), helper == "_avg_pool"
    return Emitted(code, out, (), outputs * (math.prod(size) + mean), math.prod(size) if mean else 1)


def max_pooling_1d(call: Call) -> Emitted:
    """``pool_size``, ``strides`` (the pool size by default), ``padding`` valid or same, channels last or first."""
    return _pooling(call, 1, "_max_pool")


def max_pooling_2d(call: Call) -> Emitted:
    """``pool_size``, ``strides`` (the pool size by default), ``padding`` valid or same, channels last or first."""
    return _pooling(call, 2, "_max_pool")


def average_pooling_1d(call: Call) -> Emitted:
    """``pool_size``, ``strides``, ``padding`` valid or same (a window's real elements averaged, the pad left out,
    as in Keras), channels last or first."""
    return _pooling(call, 1, "_avg_pool")


def average_pooling_2d(call: Call) -> Emitted:
    """``pool_size``, ``strides``, ``padding`` valid or same (a window's real elements averaged, the pad left out,
    as in Keras), channels last or first."""
    return _pooling(call, 2, "_avg_pool")


def _global(call: Call, n: int, mean: bool) -> Emitted:
    """The max or mean over the spatial axes (1..n channels last, 2..n+1 channels first), kept as length-1 axes
    when ``keepdims``."""
    shape = single_input(call)
    cls = call.node.cls
    if len(shape) != n + 1:
        raise BadConfig(call.node, f"{cls} has a NumPy twin for (*{n} spatial axes, channels) inputs, not {shape}")
    first, keepdims = channels_first(call), flag(call, "keepdims", False)
    axes = tuple(range(2, n + 2)) if first else tuple(range(1, n + 1))
    kept = tuple(1 if i + 1 in axes else d for i, d in enumerate(shape))
    out = kept if keepdims else (shape[0] if first else shape[-1],)
    axis = axes[0] if n == 1 else axes
    code = f"np.{'add' if mean else 'maximum'}.reduce({call.args[0]}, axis={axis!r}" + (
        ", keepdims=True)" if keepdims else ")")
    count = math.prod(shape[a - 1] for a in axes)
    if mean:
        code = f"{code} / {count}"
    return Emitted(code, out, (), math.prod(shape) + (math.prod(out) if mean else 0), count if mean else 1)


def global_max_pooling_1d(call: Call) -> Emitted:
    """The max over the steps, ``keepdims``, channels last or first. Keras' layer ignores a mask, and so does this
    twin."""
    return _global(call, 1, mean=False)


def global_max_pooling_2d(call: Call) -> Emitted:
    """The max over rows and columns, ``keepdims``, channels last or first."""
    return _global(call, 2, mean=False)


def global_average_pooling_1d(call: Call) -> Emitted:
    """The mean over the steps, ``keepdims``, channels last or first. A mask is not honoured: after an
    ``Embedding(mask_zero=True)`` Keras averages the unmasked steps only (parity catches it)."""
    return _global(call, 1, mean=True)


def global_average_pooling_2d(call: Call) -> Emitted:
    """The mean over rows and columns, ``keepdims``, channels last or first."""
    return _global(call, 2, mean=True)


LAYERS: dict[str, Emitter] = {
    "MaxPooling1D": max_pooling_1d,
    "MaxPooling2D": max_pooling_2d,
    "AveragePooling1D": average_pooling_1d,
    "AveragePooling2D": average_pooling_2d,
    "GlobalMaxPooling1D": global_max_pooling_1d,
    "GlobalMaxPooling2D": global_max_pooling_2d,
    "GlobalAveragePooling1D": global_average_pooling_1d,
    "GlobalAveragePooling2D": global_average_pooling_2d,
}
