"""The memory guard: what a cell or a saved model needs in memory, against what the machine has available.

A cell whose estimate (weights, inputs and output, in float64, times the copies a run holds) is over
:data:`MEMORY_SHARE` of the available memory is skipped, and a run whose every cell is refused
(:func:`kbench.orchestrate.planning.make_cells`); a saved model whose weights alone are over it is refused before any
worker loads it (:func:`check_stored_weights`). ``--force`` runs them anyway.
"""

from __future__ import annotations

import math
import os
from typing import Mapping

from kbench.core.errors import MemoryLimitError
from kbench.model.spec import ModelSpec

MEMORY_SHARE = 0.5  # refuse a cell whose estimate exceeds this share of available memory


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def estimate_bytes(spec: ModelSpec, sizes: Mapping[str, int], n_paths: int) -> int:
    """Weights + inputs + output, 8 bytes each (the float64 reference), times (paths + 3) copies: one output per
    path, the run-dtype arrays, the float64 reference arrays and Keras' own copy of the weights."""
    elements = max(sum(math.prod(t.resolve(sizes)) for t in spec.weights), stored_elements(spec))
    elements += sum(math.prod(t.resolve(sizes)) for t in spec.inputs) + math.prod(spec.output_shape(sizes))
    return elements * 8 * (n_paths + 3)


def stored_elements(spec: ModelSpec) -> int:
    """A saved model's weights in elements, from the size they take in its file (4 bytes each: float32 counts
    exactly, float64 twice over), so that a model without a NumPy twin, which declares no weights, is counted too."""
    return spec.stored_bytes // 4


def check_stored_weights(specs: list[ModelSpec], n_paths: int, limit: float, force: bool) -> None:
    """A saved model whose weights alone put every cell over the guard is refused before any worker loads it, in
    one line (``force`` loads it anyway)."""
    for s in specs:
        need = stored_elements(s) * 8 * (n_paths + 3)
        if need > limit and not force:
            raise MemoryLimitError(
                f"model {s.name!r}: its saved weights take {_size(s.stored_bytes)}, about {_size(need)} once loaded "
                f"({n_paths + 3} copies in float64), over {MEMORY_SHARE:.0%} of the {_size(limit / MEMORY_SHARE)} "
                "available; refused before loading it (kbench run --force loads it anyway)"
            )


def _size(n: float) -> str:
    """Bytes as GiB, or MiB below one GiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
