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

The reference is the twin in float64, so a wrong twin makes a wrong reference too, and then every Keras path fails
while the twin passes. :func:`check_all` judges a whole cell at once: it also compares the Keras paths with one
another (same scaled tolerance) and blames the NumPy twin when they all agree with one another but none agrees with
it, or names the one Keras path that disagrees with the others and the twin (``ParityResult.culprit``). Paths that
all agree cannot tell a wrong twin from a wrong ``build_keras()``: every path runs the same model, so the message
names both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from kbench.model.spec import ModelSpec

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
    culprit: str = ""  # the cell's blame (check_all): "twin", a path name, or "" (nothing failed, or no clear culprit)
    peer_max_rel_err: float = float("nan")  # max scaled difference to the cell's other Keras paths (check_all)


TF32_EPS = 2.0**-10  # TF32 keeps 10 mantissa bits: float32 matmuls on a GPU in TF32 mode round to this


def tolerance(dtype: str, reduction: int, precision: str = "float32") -> float:
    """16 * eps * sqrt(K); eps is TF32's when float32 matmuls run in TF32 (``precision == "tf32"``)."""
    eps = TF32_EPS if precision == "tf32" and dtype == "float32" else float(np.finfo(dtype).eps)
    return TOL_FACTOR * eps * math.sqrt(max(int(reduction), 1))


def reference(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], options: Mapping[str, Any]
) -> np.ndarray:
    w64 = {k: _f64(v) for k, v in weights.items()}
    x64 = {k: _f64(v) for k, v in inputs.items()}
    return np.asarray(spec.forward(w64, x64, **options), dtype=np.float64)


def _f64(v: np.ndarray, absolute: bool = False) -> np.ndarray:
    """Floats cast up to float64 (and made absolute); integer arrays are indices and stay exactly as they are."""
    if np.issubdtype(v.dtype, np.integer):
        return v
    return np.abs(v.astype(np.float64)) if absolute else v.astype(np.float64)


def magnitude(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], options: Mapping[str, Any]
) -> np.ndarray:
    """M: the forward on |weights| and |inputs| in float64, the size of the terms summed into each output element.
    A model whose forward on absolutes is no such size (a softmax, a normalisation) gives its own ``MODEL.magnitude``,
    called on the float64 arrays as they are (not made absolute). Integer (index) inputs are never changed."""
    if spec.magnitude is not None:
        w64 = {k: _f64(v) for k, v in weights.items()}
        x64 = {k: _f64(v) for k, v in inputs.items()}
        return np.abs(np.asarray(spec.magnitude(w64, x64, **options), dtype=np.float64))
    w64 = {k: _f64(v, absolute=True) for k, v in weights.items()}
    x64 = {k: _f64(v, absolute=True) for k, v in inputs.items()}
    return np.abs(np.asarray(spec.forward(w64, x64, **options), dtype=np.float64))


def _scale(ref: np.ndarray, magnitudes: np.ndarray | None) -> np.ndarray:
    """S per element: max(|ref|, M); max|ref| everywhere without (well-shaped) magnitudes; never below tiny."""
    tiny = np.finfo(np.float64).tiny
    if magnitudes is None or np.shape(magnitudes) != ref.shape:
        return np.full(ref.shape, max(float(np.max(np.abs(ref))) if ref.size else 0.0, tiny))
    return np.maximum(np.maximum(np.abs(ref), magnitudes), tiny)


def _invalid(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> str:
    """Why ``arr`` cannot be compared (wrong shape, NaN or inf), or "" when it can."""
    if arr.shape != shape:
        return f"{name} shape {arr.shape} != reference shape {shape}"
    if not np.all(np.isfinite(arr)):
        return f"{name} holds NaN or inf"
    return ""


def check(
    path: str, out: Any, ref: np.ndarray, twin: np.ndarray, tol: float, magnitudes: np.ndarray | None = None
) -> ParityResult:
    """Compare ``out`` with the float64 ``ref`` and the ``twin``; without ``magnitudes``, S is max|ref| everywhere."""
    out = np.asarray(out)
    twin = np.asarray(twin)
    nan = float("nan")
    for name, arr in (("output", out), ("NumPy twin", twin)):
        why = _invalid(name, arr, ref.shape)
        if why:
            return ParityResult(path, False, tol, nan, nan, nan, why)
    if ref.size == 0:
        return ParityResult(path, True, tol, 0.0, 0.0, 0.0)
    scale = _scale(ref, magnitudes)
    out64 = out.astype(np.float64)
    err = np.abs(out64 - ref)
    twin_err = np.abs(out64 - twin.astype(np.float64))
    rel = float(np.max(err / scale))
    twin_rel = float(np.max(twin_err / scale))
    ok = rel <= tol and twin_rel <= tol
    msg = "" if ok else f"error {rel:.2e} (vs twin {twin_rel:.2e}) of the terms' magnitude exceeds tolerance {tol:.2e}"
    return ParityResult(path, ok, tol, float(np.max(err)), rel, float(np.max(twin_err)), msg)


# ---------------------------------------------------------------------------------------------- a whole cell

TWIN = "twin"  # ParityResult.culprit when the NumPy twin (or the Keras build every path shares) is to blame


@dataclass(frozen=True)
class Blame:
    """The verdict on one cell: who is to blame (``culprit``) and the sentence the failing rows get (``note``)."""

    culprit: str = ""
    note: str = ""


def _peer_diffs(arrays: Mapping[str, np.ndarray], ref: np.ndarray, scale: np.ndarray) -> dict[tuple[str, str], float]:
    """max_i |a_i - b_i| / S_i for every pair of paths; NaN when either output cannot be compared."""
    names = list(arrays)
    diffs = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if _invalid("", arrays[a], ref.shape) or _invalid("", arrays[b], ref.shape):
                diffs[(a, b)] = float("nan")
            elif ref.size == 0:
                diffs[(a, b)] = 0.0
            else:
                d = np.abs(arrays[a].astype(np.float64) - arrays[b].astype(np.float64)) / scale
                diffs[(a, b)] = float(np.max(d))
    return diffs


def _peer_max(name: str, diffs: Mapping[tuple[str, str], float]) -> float:
    """The largest scaled difference between ``name`` and any comparable peer; NaN when there is none."""
    mine = [d for pair, d in diffs.items() if name in pair and not math.isnan(d)]
    return max(mine) if mine else float("nan")


def _agree(names: list[str], diffs: Mapping[tuple[str, str], float], tol: float) -> bool:
    """Every pair among ``names`` within ``tol`` (a NaN difference never agrees)."""
    return all(d <= tol for (a, b), d in diffs.items() if a in names and b in names)


def _twin_note(
    arrays: Mapping[str, np.ndarray],
    ref: np.ndarray,
    twin: np.ndarray,
    scale: np.ndarray,
    diffs: Mapping[tuple[str, str], float],
    tol: float,
) -> str:
    """Why the twin is blamed, with the size of the Keras consensus' (element-wise median's) miss."""
    keras = list(arrays)
    head = (f"likely culprit: the NumPy twin (or build_keras(), which every path shares): the {len(keras)} Keras "
            f"paths agree with one another (max scaled difference {max(diffs.values()):.2e}) but none agrees with "
            f"the twin")  # fmt: skip
    why = _invalid("the twin's output", twin, ref.shape)
    if why:
        return f"{head} ({why})"
    if ref.size == 0:
        return head
    consensus = np.median(np.stack([arrays[n].astype(np.float64) for n in keras]), axis=0)
    err = np.abs(consensus - twin.astype(np.float64))
    rel = float(np.max(err / scale))
    return (f"{head} (Keras consensus vs twin: scaled error {rel:.2e} = {rel / tol:.1f}x tolerance {tol:.2e}, "
            f"max abs error {float(np.max(err)):.2e})")  # fmt: skip


def blame(
    results: Mapping[str, ParityResult], diffs: Mapping[tuple[str, str], float], baseline: str, tol: float
) -> Blame:
    """Who to blame in a cell, from the per-path ``results`` and the Keras paths' pairwise scaled ``diffs``.

    The twin when at least two Keras paths agree with one another and none agrees with the twin; a Keras path when it
    alone fails while the other Keras paths agree among themselves and the baseline passes; the baseline when it
    alone fails. Otherwise nobody (``culprit == ""``), with a note that says why no culprit can be named. The twin
    note needs the arrays and is filled in by :func:`check_all`.
    """
    keras = [n for n in results if n != baseline]
    failing = [n for n in keras if not results[n].ok]
    base_ok = baseline not in results or results[baseline].ok
    if not failing and base_ok:
        return Blame()
    if not failing:
        return Blame(baseline, f"likely culprit: the {baseline} baseline's timed callable, since every Keras path "
                               "agrees with the reference and the twin")  # fmt: skip
    if len(keras) < 2:
        return Blame("", "only one Keras path in this cell, so kbench cannot tell whether it or the NumPy twin "
                         "is wrong")  # fmt: skip
    if len(failing) == len(keras) and _agree(keras, diffs, tol):
        return Blame(TWIN)
    others = [n for n in keras if n != failing[0]]
    if len(failing) == 1 and base_ok and _agree(others, diffs, tol):
        return Blame(failing[0], f"likely culprit: {failing[0]}, the only Keras path that disagrees; the other "
                                 f"{len(others)} Keras path(s) and the NumPy twin agree")  # fmt: skip
    extra = "" if base_ok else f", and the {baseline} baseline fails too"
    return Blame("", f"no clear culprit: {len(failing)} of {len(keras)} Keras paths fail{extra}, with no agreeing "
                     "majority to judge them by")  # fmt: skip


def check_all(
    outputs: Mapping[str, Any],
    ref: np.ndarray,
    twin: np.ndarray,
    tol: float,
    magnitudes: np.ndarray | None = None,
    baseline: str = "numpy",
) -> dict[str, ParityResult]:
    """Judge a whole cell: :func:`check` every path, compare the Keras paths (every path but ``baseline``) with one
    another on the same scaled tolerance, and blame (:func:`blame`). Rows keep :func:`check`'s figures; every row
    gets the cell's ``culprit``, each Keras row its ``peer_max_rel_err``; a failing row's message ends with the blame.
    When the twin is blamed the baseline row fails too (it runs the suspect twin) and carries the full sentence with
    the size of the disagreement; the Keras rows point to it. Same order as ``outputs``."""
    twin = np.asarray(twin)
    results = {name: check(name, out, ref, twin, tol, magnitudes) for name, out in outputs.items()}
    arrays = {n: np.asarray(out) for n, out in outputs.items() if n != baseline}
    scale = _scale(ref, magnitudes)
    diffs = _peer_diffs(arrays, ref, scale)
    verdict = blame(results, diffs, baseline, tol)
    if verdict.culprit == TWIN:
        verdict = Blame(TWIN, _twin_note(arrays, ref, twin, scale, diffs, tol))
    short = verdict.note
    if verdict.culprit == TWIN and baseline in results:  # the full sentence once, on the suspect's own row
        short = f"likely culprit: the NumPy twin, not this path (see the {baseline} row)"
    judged = {}
    for name, r in results.items():
        ok = r.ok and not (verdict.culprit == TWIN and name == baseline)
        parts = [p for p in (r.message, "" if ok else verdict.note if name == baseline else short) if p]
        peer = _peer_max(name, diffs) if name in arrays else float("nan")
        judged[name] = replace(r, ok=ok, message="; ".join(parts), culprit=verdict.culprit, peer_max_rel_err=peer)
    return judged


# ------------------------------------------------------------------------------- a cell without a NumPy twin

KERAS_ONLY = "parity compares the Keras paths with their consensus; no ratio to NumPy"


def check_keras_only(outputs: Mapping[str, Any], tol: float, note: str) -> dict[str, ParityResult]:
    """A cell whose model has no NumPy twin (``note`` says why): each Keras path against the paths' consensus (the
    element-wise median, in float64), on the max|consensus| scale (there are no term magnitudes without a twin).
    Every message starts with ``note`` and :data:`KERAS_ONLY`; a failing one adds the error. With one path there is
    nothing to compare: it passes, and the message says so."""
    arrays = {n: np.asarray(o) for n, o in outputs.items()}
    shapes = {a.shape for a in arrays.values()}
    head = f"{note}: {KERAS_ONLY}"
    nan = float("nan")
    if len(shapes) > 1:
        why = "the Keras paths return different shapes: " + ", ".join(f"{n} {a.shape}" for n, a in arrays.items())
        return {n: ParityResult(n, False, tol, nan, nan, nan, f"{head}; {why}") for n in arrays}
    consensus = np.median(np.stack([a.astype(np.float64) for a in arrays.values()]), axis=0) if arrays else None
    out = {}
    for name, a in arrays.items():
        r = check(name, a, consensus, consensus, tol, None)
        extra = "" if r.ok else f"; against the consensus: {r.message}"
        if len(arrays) == 1:
            extra = "; only one Keras path, so nothing to compare it with" + extra
        out[name] = replace(r, twin_max_abs_err=nan, message=head + extra)
    diffs = _peer_diffs(arrays, consensus, _scale(consensus, None)) if consensus is not None else {}
    failing = [n for n, r in out.items() if not r.ok]
    culprit = failing[0] if len(failing) == 1 and len(arrays) > 2 else ""
    return {n: replace(r, culprit=culprit, peer_max_rel_err=_peer_max(n, diffs)) for n, r in out.items()}


AGAINST_KERAS = "a serving runtime timed in processes of its own, compared with Keras' call of the model there"


def check_against_keras(outputs: Mapping[str, Any], keras_out: Any, tol: float, note: str) -> dict[str, ParityResult]:
    """A model without a twin in a process that times only a serving runtime (each runs in processes of its own):
    each output against Keras' own call of the model in that process, in float64, on the max|Keras| scale. Every
    message starts with ``note`` and :data:`AGAINST_KERAS`; a failing one adds the error."""
    ref = np.asarray(keras_out).astype(np.float64)
    head = f"{note}: {AGAINST_KERAS}"
    out = {}
    for name, a in outputs.items():
        r = check(name, a, ref, ref, tol, None)
        out[name] = replace(r, twin_max_abs_err=float("nan"), message=head + ("" if r.ok else f"; {r.message}"))
    return out
