"""The recurrent layers (none yet): SimpleRNN, GRU, LSTM, Bidirectional and TimeDistributed."""

from __future__ import annotations

from kbench.model.twins.base import Emitter

HELPERS = ""

LAYERS: dict[str, Emitter] = {}
