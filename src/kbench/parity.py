"""Numerical parity: every call path's output against a float64 reference and against the NumPy twin.

The reference is the model's own NumPy forward run in float64 on the *same* arrays (cast up, so input rounding is
not counted as error). A path passes when, for every output element i, against both the reference and the twin in
the run's dtype,

    |out_i - other_i|  <=  tol * S_i,      tol = 16 * eps(dtype) * sqrt(K),      S_i = max(|ref_i|, M_i)

K is the model's reduction length (the longest sum in one output element) and M is the *magnitude of the terms*
behind each element: the same NumPy forward run in float64 on |weights| and |inputs| (for x @ W + b that is
|x| @ |W| + |b|). Rounding error of a length-K sum is bounded by eps times the sum of |terms| and grows like
sqrt(K) * eps for random data; the factor 16 leaves room for blocked/FMA summation orders (oneDNN, XLA). Scaling
by M rather than by |ref_i| keeps an element that cancels to nearly zero from turning rounding noise into a false
failure, while a real bug (a transposed kernel, a missing bias, a wrong axis) still misses by orders of magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from kbench.spec import ModelSpec

TOL_FACTOR = 16.0


@dataclass(frozen=True)
class ParityResult:
    path: str
    ok: bool
    tol: float
    max_abs_err: float  # against the float64 reference
    max_rel_err: float  # max over elements of |out - ref| / S (see the module docstring); compared with tol
    twin_max_abs_err: float  # against the NumPy twin in the run's dtype
    message: str = ""


TF32_EPS = 2.0**-10  # TF32 keeps 10 mantissa bits: float32 matmuls on a GPU in TF32 mode round to this


def tolerance(dtype: str, reduction: int, precision: str = "float32") -> float:
    """16 * eps * sqrt(K); eps is TF32's when float32 matmuls run in TF32 (``precision == "tf32"``)."""
    eps = TF32_EPS if precision == "tf32" and dtype == "float32" else float(np.finfo(dtype).eps)
    return TOL_FACTOR * eps * math.sqrt(max(int(reduction), 1))


def reference(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], options: Mapping[str, Any]
) -> np.ndarray:
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    x64 = {k: v.astype(np.float64) for k, v in inputs.items()}
    return np.asarray(spec.forward(w64, x64, **options), dtype=np.float64)


def magnitude(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], options: Mapping[str, Any]
) -> np.ndarray:
    """M: the forward on |weights| and |inputs| in float64, the size of the terms summed into each output element."""
    w64 = {k: np.abs(v.astype(np.float64)) for k, v in weights.items()}
    x64 = {k: np.abs(v.astype(np.float64)) for k, v in inputs.items()}
    return np.abs(np.asarray(spec.forward(w64, x64, **options), dtype=np.float64))


def check(
    path: str, out: Any, ref: np.ndarray, twin: np.ndarray, tol: float, magnitudes: np.ndarray | None = None
) -> ParityResult:
    """Compare ``out`` with the float64 ``ref`` and the ``twin``; without ``magnitudes``, S is max|ref| everywhere."""
    out = np.asarray(out)
    twin = np.asarray(twin)
    nan = float("nan")
    for name, arr in (("output", out), ("NumPy twin", twin)):
        if arr.shape != ref.shape:
            return ParityResult(path, False, tol, nan, nan, nan, f"{name} shape {arr.shape} != reference shape {ref.shape}")
        if not np.all(np.isfinite(arr)):
            return ParityResult(path, False, tol, nan, nan, nan, f"{name} holds NaN or inf")
    if ref.size == 0:
        return ParityResult(path, True, tol, 0.0, 0.0, 0.0)
    tiny = np.finfo(np.float64).tiny
    if magnitudes is None or np.shape(magnitudes) != ref.shape:
        scale = np.full(ref.shape, max(float(np.max(np.abs(ref))), tiny))
    else:
        scale = np.maximum(np.maximum(np.abs(ref), magnitudes), tiny)
    out64 = out.astype(np.float64)
    err = np.abs(out64 - ref)
    twin_err = np.abs(out64 - twin.astype(np.float64))
    rel = float(np.max(err / scale))
    twin_rel = float(np.max(twin_err / scale))
    ok = rel <= tol and twin_rel <= tol
    msg = "" if ok else f"error {rel:.2e} (vs twin {twin_rel:.2e}) of the terms' magnitude exceeds tolerance {tol:.2e}"
    return ParityResult(path, ok, tol, float(np.max(err)), rel, float(np.max(twin_err)), msg)
