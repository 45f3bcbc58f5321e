"""The property test of the NumPy twins at full size: at least ``--count`` random configurations per layer (200 by
default) against Keras on one backend, and the table of counts to paste into the docs (issue 21).

    python benchmarks/twin_property_counts.py --backend tensorflow        # about 2 minutes on 2 cores
    python benchmarks/twin_property_counts.py --backend torch             # about 3 minutes
    python benchmarks/twin_property_counts.py --backend jax               # about 40 minutes (eager XLA per op)
    python benchmarks/twin_property_counts.py --backend jax --layers MultiHeadAttention,GRU --count 50

Each layer class gets seeded random configurations (kernel sizes, strides, padding, dilation, groups, units,
sequence lengths, heads, ...; ``tests/model/twin_property.py`` draws them); Keras computes them all in one child
process on the backend, and each twin, built from the saved layer config alone, is checked with kbench's parity
rule. Configurations Keras refuses, and those a known Keras bug makes wrong on that backend (``keras_bug``), are
counted apart and topped up with fresh draws until every layer has ``--count`` checked. Prints the table
``layer | configs | failures | max error (x tol) | Keras refused | Keras' bugs`` and the first failures; exit 1 when
any configuration fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "model"))

import twin_property as tp  # noqa: E402


def counts(backend: str, layers: list[str], count: int, folder: Path, rounds: int = 4):
    """Tallies per layer with at least ``count`` checked each (fresh seeded draws for the short ones), and the
    failures. One Keras child per layer and round (a slow backend shows progress, on stderr, layer by layer)."""
    total: dict[str, tp.Tally] = {cls: tp.Tally() for cls in layers}
    failures: list[str] = []
    for cls, mine in total.items():
        for r in range(rounds):
            if mine.checked >= count:
                break
            wanted = {cls: int((count - mine.checked) * 1.25) + 5}
            tallies, failed = tp.run(folder / f"{cls}{r}", wanted, backend, seed=20240611 + r, timeout=4 * 3600)
            failures += failed
            t = tallies[cls]
            mine.checked, mine.failures = mine.checked + t.checked, mine.failures + t.failures
            mine.refused, mine.bugs, mine.worst = mine.refused + t.refused, mine.bugs + t.bugs, max(mine.worst, t.worst)
        print(f"{cls}: {mine.checked} checked, {mine.failures} failed", file=sys.stderr, flush=True)
    return total, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--count", type=int, default=200, help="checked configurations per layer, at least")
    parser.add_argument("--layers", default=",".join(tp.KINDS), help="comma-separated layer classes")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kbench-twin-property-") as folder:
        tallies, failures = counts(args.backend, args.layers.split(","), args.count, Path(folder))
    print(tp.table(tallies, args.backend))
    print(f"\n{sum(t.checked for t in tallies.values())} configurations checked, {len(failures)} failed, "
          f"in {time.perf_counter() - start:.0f} s")  # fmt: skip
    for line in failures[:10]:
        print("FAILED", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
