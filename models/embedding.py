"""embedding: ``keras.layers.Embedding(vocab, dim)`` on integer ``ids`` of shape (batch, seq) -> (batch, seq, dim).

No arithmetic at all: a gather plus the call's dispatch, so every microsecond over NumPy's is overhead.
The ids are drawn uniformly from [0, vocab) (``init="index"``: int32, int64 in float64 runs) and reach every path
as integers. NumPy twin: ``embeddings[ids]``.

Parity: a gather does not round, so every path must return the table's values exactly; the reduction length is 1
(the tightest tolerance, 16 eps) and the measured error is 0.
"""

from kbench.spec import ModelSpec, Tensor

IDS = Tensor("ids", ("batch", "seq"), init="index", high="vocab")


def build_keras(keras, w, sizes, dtype):
    ids = keras.Input(shape=(sizes["seq"],), dtype=IDS.dtype_for(dtype), name="ids")
    layer = keras.layers.Embedding(sizes["vocab"], sizes["dim"], dtype=dtype, name="embedding")
    model = keras.Model(ids, layer(ids))
    layer.set_weights([w["embeddings"]])
    return model


def forward(w, inputs):
    return w["embeddings"][inputs["ids"]]


MODEL = ModelSpec(
    name="embedding",
    summary="Embedding(vocab, dim) on integer ids (batch, seq) -> (batch, seq, dim); NumPy: embeddings[ids]",
    sizes={"batch": (1, 32, 1024), "seq": (16,), "vocab": (1000,), "dim": (64,)},
    inputs=(IDS,),
    weights=(Tensor("embeddings", ("vocab", "dim"), init="uniform", scale=0.05),),  # Keras' default range
    output=("batch", "seq", "dim"),
    sweep={"batch": "2**0..2**12"},
    build_keras=build_keras,
    forward=forward,
    flops=lambda s: 0,  # a gather: memory traffic, no floating point operation
    reduction=lambda s: 1,
)
