"""Planted fault: MODEL lacks required fields (no forward, flops, reduction). Must be a one-line usage error."""
from kbench.spec import ModelSpec, Tensor

MODEL = ModelSpec(
    name="missingfields",
    summary="incomplete",
    sizes={"batch": (2,)},
    inputs=(Tensor("x", ("batch",)),),
    weights=(),
    output=("batch",),
    build_keras=lambda keras, w, sizes, dtype: None,
)
