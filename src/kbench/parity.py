"""Numerical parity: every call path's output against a float64 reference and against the NumPy twin.

The reference is the model's own NumPy forward run in float64 on the *same* arrays (cast up, so input rounding is
not counted as error). A path passes when, against both the reference and the twin in the run's dtype,

    max |out - other|  <=  tol * max |reference|,      tol = 16 * eps(dtype) * sqrt(K)

where K is the model's reduction length (the longest sum in one output element). Rounding error of a length-K dot
product grows like sqrt(K) * eps for random data; the factor 16 leaves room for blocked/FMA summation orders
(oneDNN, XLA) while a real bug (a transposed kernel, a missing bias, a wrong axis) misses by orders of magnitude.
Errors are scaled by the output's largest magnitude, not element by element, so outputs that are legitimately
near zero (ReLU, cancellation) do not turn rounding noise into a false failure.
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
    max_rel_err: float  # max_abs_err / max|reference|
    twin_max_abs_err: float  # against the NumPy twin in the run's dtype
    message: str = ""


def tolerance(dtype: str, reduction: int) -> float:
    return TOL_FACTOR * float(np.finfo(dtype).eps) * math.sqrt(max(int(reduction), 1))


def reference(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], options: Mapping[str, Any]
) -> np.ndarray:
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    x64 = {k: v.astype(np.float64) for k, v in inputs.items()}
    return np.asarray(spec.forward(w64, x64, **options), dtype=np.float64)


def check(path: str, out: Any, ref: np.ndarray, twin: np.ndarray, tol: float) -> ParityResult:
    out = np.asarray(out)
    nan = float("nan")
    if out.shape != ref.shape:
        return ParityResult(path, False, tol, nan, nan, nan, f"output shape {out.shape} != reference shape {ref.shape}")
    if not np.all(np.isfinite(out)):
        return ParityResult(path, False, tol, nan, nan, nan, "output holds NaN or inf")
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, np.finfo(np.float64).tiny)
    out64 = out.astype(np.float64)
    abs_err = float(np.max(np.abs(out64 - ref))) if ref.size else 0.0
    twin_err = float(np.max(np.abs(out64 - twin.astype(np.float64)))) if ref.size else 0.0
    rel = abs_err / scale
    ok = abs_err <= tol * scale and twin_err <= tol * scale
    msg = "" if ok else f"error {rel:.2e} x max|ref| (twin {twin_err / scale:.2e}) exceeds tolerance {tol:.2e}"
    return ParityResult(path, ok, tol, abs_err, rel, twin_err, msg)
