"""Seeded arrays for a model: one weight definition feeds both the Keras build and the NumPy twin.

Each array is drawn from its own stream keyed on (seed, model, role, tensor name, resolved shape), so a weight is
the same at every batch size and changing one tensor never shifts another. Values are drawn in float64 and then
cast, so float32 and float64 runs see the same numbers up to rounding. No float array ever holds an exact zero:
zeros hide layout bugs (a transposed kernel times a zero input is still zero). An ``init="index"`` input holds
integer indices drawn uniformly from [0, high) (int32, int64 in float64 runs): the same at either dtype.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping

import numpy as np

from kbench.model.spec import ModelSpec, Tensor

SUPPORTED_DTYPES = ("float32", "float64")


def _stream(seed: int, *key: object) -> np.random.Generator:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([int(seed)] + [zlib.crc32(repr(k).encode()) for k in key])


def draw(tensor: Tensor, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if tensor.init == "normal":
        values = rng.standard_normal(shape) * tensor.scale
    elif tensor.init == "uniform":
        values = rng.uniform(-tensor.scale, tensor.scale, shape)
    elif tensor.init == "glorot_uniform":
        fan_in = shape[0] if shape else 1
        fan_out = shape[-1] if shape else 1
        limit = tensor.scale * math.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-limit, limit, shape)
    else:  # validate_spec rejects this earlier; kept so a bad init can never become zeros silently
        raise ValueError(f"unknown init {tensor.init!r}")
    return np.asarray(values)


def make_arrays(
    spec: ModelSpec, tensors: tuple[Tensor, ...], role: str, sizes: Mapping[str, int], dtype: str, seed: int
) -> dict[str, np.ndarray]:
    out = {}
    for t in tensors:
        shape = t.resolve(sizes)  # plain ints: the stream key must not depend on how a size was typed
        rng = _stream(seed, spec.name, role, t.name, shape)
        if t.init == "index":  # indices: no rounding, no zero rule (index 0 is an index like any other)
            high = int(sizes[t.high]) if isinstance(t.high, str) else int(t.high)
            out[t.name] = rng.integers(0, high, shape).astype(t.dtype_for(dtype))
            continue
        values = draw(t, shape, rng).astype(dtype)
        tiny = np.finfo(dtype).eps
        values[values == 0] = tiny  # measure-zero event, but "never zeros" is a promise
        out[t.name] = values
    return out


def make_weights(spec: ModelSpec, sizes: Mapping[str, int], dtype: str, seed: int) -> dict[str, np.ndarray]:
    return make_arrays(spec, spec.weights, "weight", sizes, dtype, seed)


def make_inputs(spec: ModelSpec, sizes: Mapping[str, int], dtype: str, seed: int) -> dict[str, np.ndarray]:
    return make_arrays(spec, spec.inputs, "input", sizes, dtype, seed)
