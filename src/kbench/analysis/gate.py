"""The gate of ``kbench compare --fail-above``: a default factor and per-path ones (``predict=1.5``).

A row fails when its verdict is ``slower`` (:mod:`kbench.analysis.significance`) and its *point* ratio is above the
factor for its path (a per-path factor, else the default). The point ratio, not the CI's low end: the CI says
whether the change is real, the factor says whether it is big enough to matter; asking the low end to clear the
factor too would let a real 1.3x slowdown through a 1.10 gate whenever the runs are noisy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from kbench.core.errors import BadOptionError
from kbench.measure.callpaths import PATHS


class BadFactorError(BadOptionError):
    """A ``--fail-above`` value that is not a factor > 1, or names a path kbench does not know."""


@dataclass(frozen=True)
class Factors:
    """``--fail-above``: a default factor and per-path ones (``predict=1.5``); None means no gate."""

    default: float | None = None
    per_path: tuple[tuple[str, float], ...] = ()

    def for_path(self, path: str) -> float | None:
        return dict(self.per_path).get(path, self.default)

    @property
    def active(self) -> bool:
        return self.default is not None or bool(self.per_path)

    def describe(self) -> str:
        parts = ([f"{self.default:g}"] if self.default is not None else []) + [f"{p}={f:g}" for p, f in self.per_path]
        return " ".join(f"--fail-above {p}" for p in parts)


def _factor(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadFactorError(f"{flag}: {text!r} is not a number; write a factor above 1, e.g. --fail-above 1.10") from None
    if not math.isfinite(value) or value <= 1:
        raise BadFactorError(f"{flag}: {text!r} is not a factor above 1; write e.g. --fail-above 1.10 (10% slower)")
    return value


def parse_factors(items: Iterable[str]) -> Factors:
    """``["1.10", "predict=1.5"]`` -> Factors; a bad number or an unknown path is a :class:`BadFactorError`."""
    default, per_path = None, {}
    for item in items:
        path, sep, value = str(item).partition("=")
        if not sep:
            default = _factor(item, "--fail-above")
            continue
        path = path.strip()
        if path not in PATHS:
            raise BadFactorError(f"--fail-above {item!r}: no path {path!r}; use one of {', '.join(PATHS)}")
        per_path[path] = _factor(value.strip(), f"--fail-above {path}")
    return Factors(default, tuple(per_path.items()))


def fails(factors: Factors, path: str, verdict: str, ratio: float) -> tuple[float | None, bool]:
    """The row's factor, and whether the row fails the gate: significantly slower by more than that factor."""
    factor = factors.for_path(path)
    return factor, factor is not None and verdict == "slower" and ratio > factor
