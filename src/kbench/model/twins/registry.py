"""The one registry of layer twins: Keras layer class name -> its emitter, and the helpers' NumPy source.

A new layer twin is an emitter in its family module (``kbench.model.twins.<family>``, see
:mod:`kbench.model.twins.base`), listed in that module's ``LAYERS``; a family whose code calls helper functions
declares their source in its ``HELPERS``. Any class not listed here has no NumPy twin. A generated module holds only
the helpers its code calls (:func:`helpers_for`), so an exported twin stays as short as its model.
"""

from __future__ import annotations

import ast
import re

from kbench.model.twins import attention, conv, dense, merge, normalization, pooling, recurrent, scaling, shape
from kbench.model.twins.base import Emitter

FAMILIES = (dense, normalization, shape, merge, pooling, conv, recurrent, scaling, attention)

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
    **{name: emitter for family in FAMILIES for name, emitter in getattr(family, "LAYERS", {}).items()},
}


def _functions(source: str) -> dict[str, str]:
    """Each top-level function of ``source``: name -> its source."""
    tree = ast.parse(source)
    return {node.name: ast.get_source_segment(source, node) for node in tree.body if isinstance(node, ast.FunctionDef)}


# every helper function (NumPy only), by name, in the families' order
HELPER_FUNCTIONS: dict[str, str] = {name: src for family in FAMILIES
                                    for name, src in _functions(getattr(family, "HELPERS", "")).items()}  # fmt: skip
_NAME = re.compile(r"\b(_[A-Za-z0-9_]+)\(")


def helpers_for(code: str) -> str:
    """The helper functions ``code`` calls, and those they call in turn, as source (two blank lines apart), in the
    registry's order; empty when it calls none."""
    wanted: set[str] = set()
    todo = [n for n in _NAME.findall(code) if n in HELPER_FUNCTIONS]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [n for n in _NAME.findall(HELPER_FUNCTIONS[name]) if n in HELPER_FUNCTIONS]
    picked = [src for name, src in HELPER_FUNCTIONS.items() if name in wanted]
    return "\n" + "\n\n\n".join(picked) + "\n" if picked else ""
