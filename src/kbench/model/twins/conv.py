"""The convolution layers (none yet): Conv1D, Conv2D, DepthwiseConv2D and SeparableConv2D."""

from __future__ import annotations

from kbench.model.twins.base import Emitter

HELPERS = ""

LAYERS: dict[str, Emitter] = {}
