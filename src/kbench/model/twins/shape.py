"""The layers that look values up or move them, with no arithmetic: Embedding, Flatten, Reshape, and the
identities (Dropout at inference, InputLayer)."""

from __future__ import annotations

import math

from kbench.model.twins.base import Call, Emitted, Unsupported, single_input


def embedding(call: Call) -> Emitted:
    shape, c = single_input(call), call.cfg
    dim = int(c["output_dim"])
    return Emitted(f"{call.w('embeddings')}[{call.args[0]}.astype(np.intp)]", (*shape, dim),
                   (("embeddings", (int(c["input_dim"]), dim)),))  # fmt: skip


def flatten(call: Call) -> Emitted:
    shape = single_input(call)
    return Emitted(f"{call.args[0]}.reshape(len({call.args[0]}), -1)", (math.prod(shape),))


def reshape(call: Call) -> Emitted:
    shape = single_input(call)
    target = [int(d) for d in call.cfg["target_shape"]]
    if target.count(-1) == 1:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(shape) // known
    if math.prod(target) != math.prod(shape):
        raise Unsupported(call.node, f"Reshape to {tuple(target)} does not fit {shape}")
    return Emitted(f"{call.args[0]}.reshape(len({call.args[0]}), {', '.join(map(str, target))})", tuple(target))


def identity(call: Call) -> Emitted:
    return Emitted(call.args[0], single_input(call))

