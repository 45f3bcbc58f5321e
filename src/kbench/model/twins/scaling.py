"""The scaling layers (none yet): UnitNormalization, Rescaling and Normalization."""

from __future__ import annotations

from kbench.model.twins.base import Emitter

HELPERS = ""

LAYERS: dict[str, Emitter] = {}
