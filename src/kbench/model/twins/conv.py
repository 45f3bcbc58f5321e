"""The convolution layers: Conv1D, Conv2D (strides, padding, dilation, groups), DepthwiseConv2D and SeparableConv2D.

A convolution slides a window over the spatial axes. :data:`HELPERS` holds the NumPy of it: ``_windows`` is every
window at once, a strided view (:func:`numpy.lib.stride_tricks.sliding_window_view`) of the padded input, shaped
``(batch, *out, channels, *size)``; ``_conv`` copies those windows into rows (im2col) and contracts them with the
kernel in one matmul, stacked over the groups. There is no Python loop over positions. A depthwise convolution is
one einsum over the windows; a separable one is a depthwise one followed by a 1x1 convolution (a matmul).

The twin computes channels last; a ``channels_first`` layer moves the channels axis to the end and back. Padding
follows TensorFlow: ``valid`` pads nothing, ``same`` pads so that ``out = ceil(in / stride)`` with the odd pad at
the end, ``causal`` (Conv1D) pads the start by the dilated kernel's span less one. The pooling layers
(:mod:`kbench.model.twins.pooling`) read their windows with the same config readers and the same ``_windows``.

FLOPs per row: a multiply and an add per kernel tap and filter at each output position, plus the bias add and the
activation per output element. Reduction length: the taps one output sums (kernel size x channels per group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kbench.model.twins.base import BadConfig, Call, Emitted, Emitter, Shape, Unsupported, choice, flag, ints
from kbench.model.twins.base import single_input
from kbench.model.twins.dense import ACTIVATIONS, activation_name

HELPERS = '''
def _windows(x, size, strides, pads, dilation, fill=0):
    """Every window of x (batch, *spatial, channels), as a view (batch, *out, channels, *size): each spatial axis
    padded by its (before, after) with fill, windows of size taps dilation apart, starting strides apart."""
    n = len(size)
    if any(before or after for before, after in pads):
        x = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
    span = tuple((k - 1) * d + 1 for k, d in zip(size, dilation))
    view = np.lib.stride_tricks.sliding_window_view(x, span, axis=tuple(range(1, n + 1)))
    starts = tuple(slice(None, None, s) for s in strides)
    taps = tuple(slice(None, None, d) for d in dilation)
    return view[(slice(None), *starts, slice(None), *taps)]


def _conv(x, kernel, strides, pads, dilation, groups=1):
    """Keras' convolution, channels last; kernel (*size, channels // groups, filters): one matmul, stacked over the
    groups."""
    n = kernel.ndim - 2
    win = _windows(x, kernel.shape[:n], strides, pads, dilation)
    filters = kernel.shape[-1]
    rows = win.reshape(-1, groups, kernel[..., 0].size)  # (positions, group, its channels x taps)
    taps = np.moveaxis(kernel, n, 0).reshape(-1, groups, filters // groups)
    y = np.matmul(rows.transpose(1, 0, 2), taps.transpose(1, 0, 2))
    return y.transpose(1, 0, 2).reshape(*win.shape[:n + 1], filters)


def _depthwise(x, kernel, strides, pads, dilation):
    """Keras' depthwise convolution; kernel (*size, channels, multiplier): each channel with its own kernels, the
    output channel c * multiplier + m. One einsum over the windows' view (no copy: ten times faster here than a
    matmul per channel)."""
    n = kernel.ndim - 2
    taps = "ijk"[:n]
    y = np.einsum(f"...c{taps},{taps}cm->...cm", _windows(x, kernel.shape[:n], strides, pads, dilation), kernel)
    return y.reshape(*y.shape[:-2], -1)
'''

# -- reading a windowed layer's config (shared with the pooling layers; the plain readers are in base) -----------------


def channels_first(call: Call) -> bool:
    return choice(call, "data_format", "channels_last", ("channels_last", "channels_first")) == "channels_first"


@dataclass(frozen=True)
class Spatial:
    """A windowed layer's input: its spatial sizes and channels, and the code that reads it channels last."""

    sizes: Shape
    channels: int
    first: bool  # channels_first: the code moves the channels axis to the end and back
    code: str


def spatial_input(call: Call, n: int) -> Spatial:
    """The call's one input as ``n`` spatial axes and channels; :class:`Unsupported` for any other rank."""
    shape, first = single_input(call), channels_first(call)
    if len(shape) != n + 1:
        raise BadConfig(call.node, f"{call.node.cls} takes (*{n} spatial axes, channels) inputs, not {shape}")
    x = call.args[0]
    if first:
        return Spatial(shape[1:], shape[0], True, f"np.moveaxis({x}, 1, -1)")
    return Spatial(shape[:-1], shape[-1], False, x)


@dataclass(frozen=True)
class Window:
    """Where the windows of a layer lie: their size, strides, dilation, the pads and the output's spatial sizes."""

    size: Shape
    strides: Shape
    dilation: Shape
    pads: tuple[tuple[int, int], ...]
    out: Shape

    @property
    def args(self) -> str:
        """The helpers' arguments strides, pads and dilation, as code (the kernel gives the size)."""
        return f"{self.strides!r}, {self.pads!r}, {self.dilation!r}"


def window(call: Call, sizes: Shape, size: Shape, strides: Shape, dilation: Shape, padding: str) -> Window:
    """TensorFlow's window geometry: ``valid`` pads nothing; ``same`` gives ``ceil(in / stride)`` outputs, padding
    half before and the rest (the odd one) after; ``causal`` pads the dilated span less one before."""
    spans = [(k - 1) * d + 1 for k, d in zip(size, dilation)]
    if padding == "same":
        out = tuple(-(-n // s) for n, s in zip(sizes, strides))
        total = [max((o - 1) * s + span - n, 0) for o, s, span, n in zip(out, strides, spans, sizes)]
        pads = tuple((t // 2, t - t // 2) for t in total)
    else:
        pads = tuple((span - 1, 0) if padding == "causal" else (0, 0) for span in spans)
        out = tuple((n + p[0] - span) // s + 1 for n, p, span, s in zip(sizes, pads, spans, strides))
    if min(out) < 1:
        raise BadConfig(call.node, f"a window spanning {tuple(spans)} does not fit the input's {sizes} ({padding})")
    return Window(size, strides, dilation, pads, out)


def conv_window(call: Call, spatial: Spatial, n: int, paddings: tuple[str, ...]) -> Window:
    """The window of a convolution: ``kernel_size``, ``strides``, ``dilation_rate`` and ``padding``."""
    size = ints(call, "kernel_size", n)
    strides, dilation = ints(call, "strides", n, 1), ints(call, "dilation_rate", n, 1)
    return window(call, spatial.sizes, size, strides, dilation, choice(call, "padding", "valid", paddings))


# -- the layers ----------------------------------------------------------------------------------------------------


def _finish(call: Call, spatial: Spatial, win: Window, z: str, channels: int, flops: int, reduction: int,
            weights: list) -> Emitted:  # fmt: skip
    """Add the bias (when used), move the channels back for channels_first, apply the activation: the Emitted."""
    act, bias = activation_name(call.node, call.cfg.get("activation")), flag(call, "use_bias", True)
    if bias:
        z, weights = f"{z} + {call.w('bias')}", [*weights, ("bias", (channels,))]
    out = (channels, *win.out) if spatial.first else (*win.out, channels)
    if spatial.first:
        z = f"np.moveaxis({z}, -1, 1)"
    flops += math.prod(out) * (bias + (act != "linear"))
    reduction += out[-1] if ACTIVATIONS[act].axis else 0
    return Emitted(ACTIVATIONS[act].code.format(z), out, tuple(weights), flops, reduction)


def _convolution(call: Call, n: int) -> Emitted:
    """Conv1D and Conv2D: ``filters``, ``groups`` (the channels and filters split in as many consecutive groups)."""
    spatial = spatial_input(call, n)
    win = conv_window(call, spatial, n, ("valid", "same", "causal") if n == 1 else ("valid", "same"))
    (filters,), (groups,) = ints(call, "filters", 1), ints(call, "groups", 1, 1)
    if spatial.channels % groups or filters % groups:
        raise BadConfig(call.node, f"groups={groups} does not divide both the {spatial.channels} channels and the "
                                     f"{filters} filters")
    per_group = spatial.channels // groups
    z = f"_conv({spatial.code}, {call.w('kernel')}, {win.args}, {groups})"
    taps = math.prod(win.size) * per_group
    return _finish(call, spatial, win, z, filters, math.prod(win.out) * 2 * taps * filters, taps,
                   [("kernel", (*win.size, per_group, filters))])  # fmt: skip


def conv1d(call: Call) -> Emitted:
    """``strides``, ``padding`` valid, same or causal, ``dilation_rate``, ``groups``, ``use_bias``, channels last or
    first, and every activation a Dense supports."""
    return _convolution(call, 1)


def conv2d(call: Call) -> Emitted:
    """``strides``, ``padding`` valid or same, ``dilation_rate``, ``groups``, ``use_bias``, channels last or first,
    and every activation a Dense supports."""
    return _convolution(call, 2)


def depthwise_conv2d(call: Call) -> Emitted:
    """``depth_multiplier``, ``strides``, ``padding`` valid or same, ``dilation_rate``, ``use_bias``, channels last
    or first, and every activation a Dense supports."""
    spatial = spatial_input(call, 2)
    win = conv_window(call, spatial, 2, ("valid", "same"))
    (mult,) = ints(call, "depth_multiplier", 1, 1)
    z = f"_depthwise({spatial.code}, {call.w('kernel')}, {win.args})"
    channels, taps = spatial.channels * mult, math.prod(win.size)
    return _finish(call, spatial, win, z, channels, math.prod(win.out) * 2 * taps * channels, taps,
                   [("kernel", (*win.size, spatial.channels, mult))])  # fmt: skip


def separable_conv2d(call: Call) -> Emitted:
    """A depthwise convolution (``depth_multiplier``, ``strides``, ``padding`` valid or same, ``dilation_rate``),
    then a 1x1 one to ``filters``; ``use_bias``, channels last or first, and every activation a Dense supports."""
    spatial = spatial_input(call, 2)
    win = conv_window(call, spatial, 2, ("valid", "same"))
    (mult,), (filters,) = ints(call, "depth_multiplier", 1, 1), ints(call, "filters", 1)
    depth, taps = spatial.channels * mult, math.prod(win.size)
    z = f"_depthwise({spatial.code}, {call.w('depthwise_kernel')}, {win.args}) @ {call.w('pointwise_kernel')}[0, 0]"
    flops = math.prod(win.out) * (2 * taps * depth + 2 * depth * filters)
    return _finish(call, spatial, win, z, filters, flops, taps + depth,
                   [("depthwise_kernel", (*win.size, spatial.channels, mult)),
                    ("pointwise_kernel", (1, 1, depth, filters))])  # fmt: skip


LAYERS: dict[str, Emitter] = {
    "Conv1D": conv1d,
    "Conv2D": conv2d,
    "DepthwiseConv2D": depthwise_conv2d,
    "SeparableConv2D": separable_conv2d,
}
