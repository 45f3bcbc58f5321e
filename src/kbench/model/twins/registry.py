"""The one registry of layer twins: Keras layer class name -> its emitter, and the helpers' NumPy source.

A new layer twin is an emitter in its family module (``kbench.model.twins.<family>``, see
:mod:`kbench.model.twins.base`) and one line in :data:`LAYERS`; a family whose code calls helper functions adds
its ``HELPERS`` to :data:`HELPERS`. Any class not listed here has no NumPy twin.
"""

from __future__ import annotations

from kbench.model.twins import dense, merge, normalization, pooling, shape
from kbench.model.twins.base import Emitter

LAYERS: dict[str, Emitter] = {
    "Dense": dense.dense,
    "Activation": dense.activation,
    "Softmax": dense.softmax,
    "ReLU": dense.relu,
    "LayerNormalization": normalization.layer_normalization,
    "BatchNormalization": normalization.batch_normalization,
    "Embedding": shape.embedding,
    "Dot": merge.dot,
    "Add": merge.add,
    "Concatenate": merge.concatenate,
    "Flatten": shape.flatten,
    "Reshape": shape.reshape,
    "Dropout": shape.identity,
    "InputLayer": shape.identity,
    "GlobalMaxPooling1D": pooling.global_max_pooling_1d,
}

# every generated module holds these helper functions (NumPy only), two blank lines apart
HELPERS = "\n" + "\n\n\n".join(h.strip("\n") for h in (dense.HELPERS, normalization.HELPERS, merge.HELPERS)) + "\n"
