"""The pooling layers: GlobalMaxPooling1D.

A global max has no rounding (it picks one of its inputs), so its reduction length is 1; its FLOPs count one
comparison per input element.
"""

from __future__ import annotations

import math

from kbench.model.twins.base import Call, Emitted, Emitter, Unsupported, single_input


def global_max_pooling_1d(call: Call) -> Emitted:
    """``keras.layers.GlobalMaxPooling1D``: the max over the steps axis (1 for channels_last, 2 for channels_first;
    kept as a length-1 axis when ``keepdims``). Keras' layer ignores a mask, and so does this twin."""
    shape = single_input(call)
    if len(shape) != 2:
        raise Unsupported(call.node, f"GlobalMaxPooling1D has a NumPy twin for (steps, features) inputs, not {shape}")
    first = call.cfg.get("data_format", "channels_last") == "channels_first"
    axis, keepdims = (2 if first else 1), bool(call.cfg.get("keepdims", False))
    kept = (shape[0], 1) if first else (1, shape[1])
    out = kept if keepdims else (shape[0] if first else shape[1],)
    code = f"np.maximum.reduce({call.args[0]}, axis={axis}" + (", keepdims=True)" if keepdims else ")")
    return Emitted(code, out, (), math.prod(shape))


LAYERS: dict[str, Emitter] = {
    "GlobalMaxPooling1D": global_max_pooling_1d,
}
