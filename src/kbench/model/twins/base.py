"""What a layer twin sees and returns: the vocabulary every family module (``kbench.model.twins.*``) shares.

A family module declares one *emitter* per Keras layer class: ``emitter(call: Call) -> Emitted``. It reads the
layer's config and its inputs' shapes (batch dimension left out) from the :class:`Call` and returns the NumPy
expression of the output, its shape, the layer's weights, its FLOPs per row and its reduction length; it raises
:class:`Unsupported` (with a reason) when this config has no twin. :mod:`kbench.model.twins.registry` maps the
class names to the emitters; :mod:`kbench.model.autotwin` calls them in graph order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kbench.model.keras_file import Node

Shape = tuple[int, ...]  # without the batch dimension


class Unsupported(Exception):
    """Raised while building: this layer has no NumPy twin (``why`` says what is missing)."""

    def __init__(self, node: Node, why: str) -> None:
        super().__init__(why)
        self.node, self.why = node, why


class BadConfig(Unsupported):
    """Raised while building: a config value of the wrong type or out of range, which Keras could not honour either
    (the model file is refused rather than timed without a twin)."""


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


@dataclass(frozen=True)
class Emitted:
    code: str  # the expression of the output
    shape: Shape
    weights: tuple[tuple[str, Shape], ...] = ()  # (variable name, shape) of the layer's weights
    flops: int = 0  # per row of the batch
    reduction: int = 1


Emitter = Callable[[Call], Emitted]


def numpy_axis(call: Call, axis: Any, rank: int) -> int:
    """A Keras axis (counting the batch as 0) as a NumPy axis of the batched array; the batch axis has no twin, and
    an axis that is no integer or out of range is a broken config."""
    if type(axis) is not int or not -(rank + 1) <= axis <= rank:
        raise BadConfig(call.node, f"axis={shown(axis)}: expected an integer from {-(rank + 1)} to {rank}")
    a = axis + rank + 1 if axis < 0 else axis
    if a == 0:
        raise Unsupported(call.node, f"axis {axis} (the batch axis) has no NumPy twin")
    return a


def single_input(call: Call) -> Shape:
    """The shape of the call's one input; :class:`Unsupported` when it has several."""
    if len(call.shapes) != 1:
        raise Unsupported(call.node, f"{len(call.shapes)} inputs, where the layer takes one")
    return call.shapes[0]


# -- reading a layer's config: a value of the wrong type or range is Unsupported, naming the field ----------------------


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a hostile config's value stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


MAX_INT = 2**31 - 1  # the largest size a config may give (TensorFlow's int32 shapes)


def ints(call: Call, field: str, n: int, default: Any = None, minimum: int = 1) -> tuple[int, ...]:
    """A config field of ``n`` integers from ``minimum`` to :data:`MAX_INT` (one integer, or a list of ``n``);
    :class:`BadConfig` naming the field otherwise."""
    value = call.cfg.get(field, default)
    items = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(items) != n or not all(type(v) is int and minimum <= v <= MAX_INT for v in items):
        raise BadConfig(call.node, f"{field}={shown(value)}: expected {n} integer(s) from {minimum} to {MAX_INT}")
    return tuple(items)


def number(call: Call, field: str, default: Any, minimum: float | None = None) -> float | None:
    """A finite number (not a bool) from the config, at least ``minimum``; None stays None when the default is
    None; :class:`BadConfig` naming the field otherwise (a NaN or an infinity would not even be valid code)."""
    value = call.cfg.get(field, default)
    if value is None and default is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (minimum is not None and value < minimum):
        least = "" if minimum is None else f" >= {minimum:g}"
        raise BadConfig(call.node, f"{field}={shown(value)}: expected a finite number{least}")
    return float(value)


def flag(call: Call, field: str, default: bool) -> bool:
    """A config field of true or false (a missing one is ``default``); :class:`BadConfig` otherwise."""
    value = call.cfg.get(field, default)
    if not isinstance(value, bool):
        raise BadConfig(call.node, f"{field}={shown(value)}: expected true or false")
    return value


def choice(call: Call, field: str, default: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (a missing or null field is ``default``); a value that is no string is a broken config, a
    string the twin does not know is :class:`Unsupported`."""
    value = call.cfg.get(field)
    value = default if value is None else value
    if not isinstance(value, str):
        raise BadConfig(call.node, f"{field}={shown(value)}: expected one of {', '.join(allowed)}")
    if value not in allowed:
        raise Unsupported(call.node, f"{field}={shown(value)}: the twin supports {', '.join(allowed)}")
    return value
