"""Attention: MultiHeadAttention, self or cross, without a mask.

Keras' layer projects the query, key and value with three EinsumDense layers (``(features, heads, dim)`` kernels,
``(heads, dim)`` biases), scales the projected query by ``1 / sqrt(key_dim)``, takes a softmax of ``q k^T`` per head
over the key's steps, mixes the projected values with it and projects the heads back with a fourth EinsumDense
(``(heads, value_dim, *output_shape)``). The twin does the same with matmuls (:data:`HELPERS`: ``_mha``): each
projection is one matmul of the steps, flattened, by the kernel reshaped to two axes; the scores and the mix are
batched matmuls over ``(batch, heads)``. With Keras' default ``attention_axes`` (every axis between the batch and
the features), attention over several axes is attention over their steps flattened, which is what the twin does.

The call is read from the saved graph (:class:`kbench.model.keras_file.Node`): ``mha(query, value)``,
``mha(query, value, key)``, or the same by keyword. Refused (no twin, every Keras path still timed): an attention
mask or a query/value/key mask, ``use_causal_mask=True``, ``return_attention_scores=True`` (two outputs),
``attention_axes`` other than the default, ``use_gate``, ``sliding_window``. Dropout is inactive at inference. A
value of the wrong type or range (``num_heads``, ``key_dim``, ``value_dim``, ``output_shape``, ``dropout``, ...)
refuses the model file, naming the field.

FLOPs per row: the four projections (2 per multiply-add, and their biases), the scaling of the query, the scores
and the mix (``2 * heads * T * S * dim`` each, T and S the query's and the key's steps) and the softmax (3 per
score). Reduction length: the chain of sums behind one output element: the longest projection input, ``key_dim``
(a score), ``S`` twice (the softmax's sum and the mix) and ``heads * value_dim`` (the output projection).
"""

from __future__ import annotations

import math
from typing import Any

from kbench.model.twins.base import BadConfig, Call, Emitted, Emitter, Shape, Unsupported, flag, ints, shown

HELPERS = '''
def _mha(q, v, k, wq, bq, wk, bk, wv, bv, wo, bo, scale):
    """Multi-head dot-product attention over every axis between the batch and the features: the projections as
    matmuls, softmax(q k^T * scale) per head over the key's steps, the values mixed by it, the output projection."""
    n, heads, value_dim = len(q), wv.shape[1], wv.shape[2]
    out = q.shape[1:-1] + wo.shape[2:]
    p = _softmax((_mha_heads(q, wq, bq) * scale) @ _mha_heads(k, wk, bk).transpose(0, 1, 3, 2))  # (n, heads, t, s)
    mixed = (p @ _mha_heads(v, wv, bv)).transpose(0, 2, 1, 3).reshape(n, -1, heads * value_dim)
    y = mixed @ wo.reshape(heads * value_dim, -1)
    return (y if bo is None else y + bo.reshape(-1)).reshape(n, *out)


def _mha_heads(x, w, b):
    """x (n, *steps, features) projected by w (features, heads, dim) plus b (heads, dim): (n, heads, steps, dim)."""
    y = x.reshape(len(x), -1, x.shape[-1]) @ w.reshape(len(w), -1)
    if b is not None:
        y = y + b.reshape(-1)
    return y.reshape(len(x), y.shape[1], w.shape[1], w.shape[2]).transpose(0, 2, 1, 3)
'''

ROLES = ("query", "value", "key")  # MultiHeadAttention.call's tensor arguments, in its positional order
MASKS = ("attention_mask", "query_mask", "value_mask", "key_mask")


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _roles(call: Call) -> dict[str, int]:
    """Which of the call's inputs is the query, the value and the key (an index into ``call.args``); masks, the
    causal flag and the attention scores are refused, naming the call argument."""
    kwargs = call.node.kwargs
    for name in MASKS:
        if kwargs.get(name) is not None:
            raise Unsupported(call.node, f"{name} in the call: the twin has no attention mask")
    for name, lacks in (("use_causal_mask", "causal mask"), ("return_attention_scores", "second output")):
        if kwargs.get(name):
            raise Unsupported(call.node, f"{name}={shown(kwargs[name])} in the call: the twin has no {lacks}")
    by_keyword = [k for k, v in kwargs.items() if _is_tensor(v)]
    positional = len(call.args) - len(by_keyword)
    if not 0 <= positional <= len(ROLES) or any(k not in ROLES for k in by_keyword):
        raise Unsupported(call.node, "a call with tensors other than query, value and key (a mask) has no twin")
    roles = {r: i for i, r in enumerate(ROLES[:positional])}
    roles.update({k: positional + i for i, k in enumerate(by_keyword)})
    if len(roles) != len(call.args) or "query" not in roles or "value" not in roles:
        raise Unsupported(call.node, "MultiHeadAttention takes a query and a value (and a key)")
    return {**roles, "key": roles.get("key", roles["value"])}


def _output_shape(call: Call, default: int) -> Shape:
    value = call.cfg.get("output_shape")
    if value is None:
        return (default,)
    return ints(call, "output_shape", len(value) if isinstance(value, list) and value else 1)


def _check_options(call: Call, query: Shape) -> None:
    """Refuse what Keras would refuse (a bad value) or the twin does not compute (gate, window, other axes)."""
    dropout = call.cfg.get("dropout", 0.0)
    if type(dropout) not in (int, float) or not 0 <= dropout <= 1:
        raise BadConfig(call.node, f"dropout={shown(dropout)}: expected a number in [0, 1]")
    if flag(call, "use_gate", False):
        raise Unsupported(call.node, "use_gate=True: the twin has no gated attention")
    if call.cfg.get("sliding_window") is not None:
        raise Unsupported(call.node, f"sliding_window={shown(call.cfg['sliding_window'])}: the twin has no mask")
    axes = call.cfg.get("attention_axes")
    default = list(range(1, len(query)))  # every axis between the batch and the features
    items = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    if axes is None or items == default:
        return
    if not all(type(a) is int for a in items):
        raise BadConfig(call.node, f"attention_axes={shown(axes)}: expected null, an integer or a list of integers")
    normal = sorted(a + len(query) + 1 if a < 0 else a for a in items)
    if normal != default:
        raise Unsupported(call.node, f"attention_axes={shown(axes)}: the twin attends over {default} only")


def multi_head_attention(call: Call) -> Emitted:
    """Self or cross attention, ``mha(query, value)`` or ``mha(query, value, key)``: ``num_heads``, ``key_dim``,
    ``value_dim``, ``use_bias``, ``output_shape``, inputs of any rank (every axis between the batch and the
    features attended: Keras' default ``attention_axes``); no mask, no causal mask, ``use_gate`` or
    ``sliding_window``."""
    (heads,), (key_dim,) = ints(call, "num_heads", 1), ints(call, "key_dim", 1)
    (value_dim,) = ints(call, "value_dim", 1) if call.cfg.get("value_dim") is not None else (key_dim,)
    bias = flag(call, "use_bias", True)
    roles = _roles(call)
    q, v, k = (call.shapes[roles[r]] for r in ROLES)
    if len(q) < 2 or not len(q) == len(v) == len(k) or v[:-1] != k[:-1]:
        raise Unsupported(call.node, f"query {q}, value {v} and key {k}: the twin takes (steps..., features) "
                                     "inputs of one rank, the value's steps the key's")  # fmt: skip
    _check_options(call, q)
    out = _output_shape(call, q[-1])
    weights = [("query/kernel", (q[-1], heads, key_dim)), ("query/bias", (heads, key_dim)),
               ("key/kernel", (k[-1], heads, key_dim)), ("key/bias", (heads, key_dim)),
               ("value/kernel", (v[-1], heads, value_dim)), ("value/bias", (heads, value_dim)),
               ("attention_output/kernel", (heads, value_dim, *out)), ("attention_output/bias", out)]  # fmt: skip
    args = [call.w(n) if bias or n.endswith("kernel") else "None" for n, _ in weights]
    code = (f"_mha({call.args[roles['query']]}, {call.args[roles['value']]}, {call.args[roles['key']]}, "
            f"{', '.join(args)}, {1.0 / math.sqrt(float(key_dim))!r})")  # fmt: skip
    t, s = math.prod(q[:-1]), math.prod(k[:-1])
    flops = _flops(t, s, (q[-1], k[-1], v[-1]), heads, key_dim, value_dim, math.prod(out), bias)
    return Emitted(code, (*q[:-1], *out), tuple(w for w in weights if bias or w[0].endswith("kernel")), flops,
                   max(q[-1], k[-1], v[-1]) + key_dim + 2 * s + heads * value_dim)  # fmt: skip


def _flops(t: int, s: int, features: tuple[int, int, int], heads: int, key_dim: int, value_dim: int, out: int,
           bias: bool) -> int:  # fmt: skip
    """Per row: the projections (and biases), the query's scaling, the scores, the softmax, the mix, the output."""
    fq, fk, fv = features
    project = 2 * heads * (t * fq * key_dim + s * fk * key_dim + s * fv * value_dim) + 2 * t * heads * value_dim * out
    biases = heads * (t * key_dim + s * key_dim + s * value_dim) + t * out
    attend = t * heads * key_dim + heads * t * s * (2 * key_dim + 3 + 2 * value_dim)
    return project + attend + (biases if bias else 0)


LAYERS: dict[str, Emitter] = {"MultiHeadAttention": multi_head_attention}
