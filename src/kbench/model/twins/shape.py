"""The layers that look values up or move them, with no arithmetic: Embedding, Flatten, Reshape, the identities
(Dropout at inference, InputLayer), and (:data:`LAYERS`) ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D (nearest
neighbour: a repeat), RepeatVector and Permute. Their FLOPs are 0 and their reduction length 1.

The padding, cropping and upsampling layers act on the spatial axes, 1.. channels last and 2.. channels first (the
1D cropping and upsampling layers have no data_format: channels last); the config readers are those of
:mod:`kbench.model.twins.conv`.
"""

from __future__ import annotations

import math

from kbench.model.twins.base import MAX_INT, BadConfig, Call, Emitted, Emitter, Shape, Unsupported, choice, flag, ints
from kbench.model.twins.base import shown, single_input
from kbench.model.twins.conv import channels_first


def embedding(call: Call) -> Emitted:
    """The rows of ``embeddings`` looked up by index (float indices cast to integers, as Keras does)."""
    shape = single_input(call)
    if flag(call, "mask_zero", False):  # Keras' pooling and recurrent layers skip masked steps; a twin sees no mask
        raise Unsupported(call.node, "mask_zero=True: later layers treat the masked steps apart, and a twin has no mask")
    (dim,), (rows,) = ints(call, "output_dim", 1), ints(call, "input_dim", 1)
    return Emitted(f"{call.w('embeddings')}[{call.args[0]}.astype(np.intp)]", (*shape, dim),
                   (("embeddings", (rows, dim)),))  # fmt: skip


def flatten(call: Call) -> Emitted:
    """Every axis but the batch into one."""
    shape = single_input(call)
    return Emitted(f"{call.args[0]}.reshape(len({call.args[0]}), -1)", (math.prod(shape),))


def reshape(call: Call) -> Emitted:
    """Reshape to ``target_shape`` (one -1 allowed)."""
    shape = single_input(call)
    value = call.cfg.get("target_shape")
    target = list(value) if isinstance(value, (list, tuple)) else None
    if not target or not all(type(d) is int and (d == -1 or 1 <= d <= MAX_INT) for d in target) or target.count(-1) > 1:
        raise BadConfig(call.node, f"target_shape={shown(value)}: expected integers from 1 to {MAX_INT}, one -1 at most")
    if target.count(-1) == 1:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(shape) // known
    if math.prod(target) != math.prod(shape):
        raise BadConfig(call.node, f"Reshape to {tuple(target)} does not fit {shape}")
    return Emitted(f"{call.args[0]}.reshape(len({call.args[0]}), {', '.join(map(str, target))})", tuple(target))


def identity(call: Call) -> Emitted:
    """The identity: Dropout (at inference) and InputLayer."""
    return Emitted(call.args[0], single_input(call))


# -- the spatial layers: padding, cropping, upsampling -----------------------------------------------------------------


def _spatial_axes(call: Call, n: int) -> tuple[Shape, tuple[int, ...]]:
    """The input's shape and its ``n`` spatial axes (NumPy's, batch first); :class:`Unsupported` for another rank."""
    shape = single_input(call)
    if len(shape) != n + 1:
        raise BadConfig(call.node, f"{call.node.cls} takes (*{n} spatial axes, channels) inputs, not {shape}")
    first = "data_format" in call.cfg and channels_first(call)
    return shape, tuple(range(2, n + 2)) if first else tuple(range(1, n + 1))


def _pairs(call: Call, field: str, n: int) -> tuple[tuple[int, int], ...]:
    """``n`` (before, after) pairs of integers >= 0 from an integer (all alike), a pair (1D) or ``n`` integers (each
    axis symmetric) or ``n`` pairs (2D); :class:`Unsupported` naming the field otherwise."""
    value = call.cfg.get(field)
    items = value if isinstance(value, (list, tuple)) else [value] * n
    items = [items] if n == 1 and isinstance(value, (list, tuple)) else items
    pairs = [list(v) if isinstance(v, (list, tuple)) else [v, v] for v in items]
    if len(pairs) != n or not all(len(p) == 2 and all(type(i) is int and i >= 0 for i in p) for p in pairs):
        raise BadConfig(call.node, f"{field}={shown(value)}: expected {n} pair(s) of integers >= 0")
    return tuple((p[0], p[1]) for p in pairs)


def _zero_padding(call: Call, n: int) -> Emitted:
    shape, axes = _spatial_axes(call, n)
    pads, out = [(0, 0)] * (n + 2), list(shape)
    for a, pair in zip(axes, _pairs(call, "padding", n)):
        pads[a], out[a - 1] = pair, shape[a - 1] + sum(pair)
    return Emitted(f"np.pad({call.args[0]}, {tuple(pads)!r})", tuple(out))


def _cropping(call: Call, n: int) -> Emitted:
    shape, axes = _spatial_axes(call, n)
    index, out = [":"] * (n + 2), list(shape)
    for a, (before, after) in zip(axes, _pairs(call, "cropping", n)):
        out[a - 1] = shape[a - 1] - before - after
        if out[a - 1] < 1:
            raise BadConfig(call.node, f"cropping {(before, after)} leaves nothing of an axis of {shape[a - 1]}")
        index[a] = f"{before}:{before + out[a - 1]}"
    return Emitted(f"{call.args[0]}[{', '.join(index)}]", tuple(out))


def _upsampling(call: Call, n: int) -> Emitted:
    """Nearest-neighbour upsampling: each element repeated ``size`` times along its spatial axis."""
    shape, axes = _spatial_axes(call, n)
    choice(call, "interpolation", "nearest", ("nearest",))  # bilinear and the others are refused
    code, out = call.args[0], list(shape)
    for a, k in zip(axes, ints(call, "size", n, 2)):
        code, out[a - 1] = f"np.repeat({code}, {k}, axis={a})", shape[a - 1] * k
    return Emitted(code, tuple(out))


def repeat_vector(call: Call) -> Emitted:
    """A (features,) input repeated ``n`` times, into (n, features)."""
    shape = single_input(call)
    (n,) = ints(call, "n", 1)
    if len(shape) != 1:
        raise BadConfig(call.node, f"RepeatVector takes (features,) inputs, not {shape}")
    return Emitted(f"np.repeat({call.args[0]}[:, None, :], {n}, axis=1)", (n, shape[0]))


def permute(call: Call) -> Emitted:
    """``dims``: a permutation of the axes 1..rank (the batch stays first)."""
    shape, dims = single_input(call), call.cfg.get("dims")
    axes = list(range(1, len(shape) + 1))
    if not isinstance(dims, (list, tuple)) or sorted(d for d in dims if type(d) is int) != axes:
        raise BadConfig(call.node, f"dims={shown(dims)}: expected a permutation of 1..{len(shape)}")
    return Emitted(f"np.transpose({call.args[0]}, {(0, *dims)!r})", tuple(shape[d - 1] for d in dims))


def zero_padding_1d(call: Call) -> Emitted:
    """``padding`` zeros (an integer or a (before, after) pair) around the steps."""
    return _zero_padding(call, 1)


def zero_padding_2d(call: Call) -> Emitted:
    """``padding`` zeros (an integer, one per axis, or (before, after) pairs) around rows and columns, channels last
    or first."""
    return _zero_padding(call, 2)


def cropping_1d(call: Call) -> Emitted:
    """``cropping`` (an integer or a (before, after) pair) off the steps."""
    return _cropping(call, 1)


def cropping_2d(call: Call) -> Emitted:
    """``cropping`` (an integer, one per axis, or (before, after) pairs) off rows and columns, channels last or
    first."""
    return _cropping(call, 2)


def upsampling_1d(call: Call) -> Emitted:
    """Each step repeated ``size`` times."""
    return _upsampling(call, 1)


def upsampling_2d(call: Call) -> Emitted:
    """``interpolation="nearest"`` only: each row and column repeated ``size`` times, channels last or first
    (bilinear and the other interpolations are refused)."""
    return _upsampling(call, 2)


LAYERS: dict[str, Emitter] = {
    "ZeroPadding1D": zero_padding_1d,
    "ZeroPadding2D": zero_padding_2d,
    "Cropping1D": cropping_1d,
    "Cropping2D": cropping_2d,
    "UpSampling1D": upsampling_1d,
    "UpSampling2D": upsampling_2d,
    "RepeatVector": repeat_vector,
    "Permute": permute,
}
