"""attention: attention scores ``softmax(q @ k^T / sqrt(dim))`` over the last axis, q and k of shape
(batch, seq, dim) -> (batch, seq, seq).

A batched matmul, a scale, and a softmax (max, exp, sum, divide): a reduction over ``dim`` then one over ``seq``
per call. NumPy twin, written by hand with a stable softmax (the row max subtracted before ``exp``).

Parity: the softmax's output is in [0, 1], but its *relative* error grows with the size of the scores' terms: an
absolute error d in a score becomes a relative error d in every probability of its row. The forward on |q| and |k|
(a softmax of other scores) is no such scale, so the model gives its own magnitude: with p the output and
A = |q| @ |k|^T / sqrt(dim) the scores' terms,

    M_ij = p_ij * (1 + A_ij + sum_l p_il * A_il),     K = max(dim, seq)

(the score error of element j, the row's weighted error carried by the normalisation, and the exp/sum/divide's own
rounding; K covers the score sums over dim and the normalising sum over seq). M >= p everywhere.
"""

import math

import numpy as np

from kbench.spec import ModelSpec, Tensor


def build_keras(keras, w, sizes, dtype):
    q = keras.Input(shape=(sizes["seq"], sizes["dim"]), dtype=dtype, name="q")
    k = keras.Input(shape=(sizes["seq"], sizes["dim"]), dtype=dtype, name="k")
    scores = keras.ops.matmul(q, keras.ops.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(sizes["dim"]))
    return keras.Model([q, k], keras.layers.Softmax(axis=-1, dtype=dtype, name="softmax")(scores))


def _scores(q, k):
    return (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(1.0 / math.sqrt(q.shape[-1]))


def _softmax(s):
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def forward(w, inputs):
    return _softmax(_scores(inputs["q"], inputs["k"]))


def magnitude(w, inputs):
    """M per output element (module docstring)."""
    p = forward(w, inputs)
    terms = _scores(np.abs(inputs["q"]), np.abs(inputs["k"]))
    return p * (1.0 + terms + np.sum(p * terms, axis=-1, keepdims=True))


def flops(s):
    """q @ k^T (2 B S S D), the scale (B S S), and the softmax: subtract, exp, sum, divide (4 B S S)."""
    b, n, d = s["batch"], s["seq"], s["dim"]
    return 2 * b * n * n * d + 5 * b * n * n


MODEL = ModelSpec(
    name="attention",
    summary="softmax(q @ k^T / sqrt(dim)) of q, k (batch, seq, dim) -> (batch, seq, seq); NumPy: stable softmax",
    sizes={"batch": (1, 32, 1024), "seq": (32,), "dim": (64,)},
    inputs=(Tensor("q", ("batch", "seq", "dim")), Tensor("k", ("batch", "seq", "dim"))),
    weights=(),
    output=("batch", "seq", "seq"),
    sweep={"batch": "2**0..2**12"},
    build_keras=build_keras,
    forward=forward,
    flops=flops,
    reduction=lambda s: max(s["dim"], s["seq"]),
    magnitude=magnitude,
)
