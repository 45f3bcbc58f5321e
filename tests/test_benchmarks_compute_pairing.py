"""benchmarks/compute_pairing.py without a run: its by-process estimate on synthetic reference timings."""

import importlib.util
import math
from pathlib import Path

import pytest

from kbench.measure.protocol import Reference

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("compute_pairing", ROOT / "benchmarks" / "compute_pairing.py")
cp = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(cp)
US = 1e-6


def test_pairing_by_process_cancels_each_processs_level_where_pooling_does_not():
    # floor = dispatch + 10 µs in every process; the processes sit at their own levels and took unequal counts
    levels, counts = (250, 262, 290), ((9, 4), (4, 16), (4, 4))
    per_process = [(Reference("kernel", ((lv + 10) * US,) * nf, 9), Reference("dispatch", (lv * US,) * nd, 20))
                   for lv, (nf, nd) in zip(levels, counts)]  # fmt: skip
    pooled, paired = cp.estimates(per_process)
    assert paired == pytest.approx(10 * US)
    assert pooled == pytest.approx(-2 * US)  # the floor's middle sample is process 0's, the dispatch's process 1's


def test_no_estimate_unless_every_process_timed_both():
    both = (Reference("kernel", (260 * US,), 9), Reference("dispatch", (250 * US,), 20))
    assert math.isnan(cp.by_process([both, both[:1]]))
    assert cp.spread([("dense", 1.1), ("dense", 0.9), ("matmul", 1.05)]).startswith("dense mean -0.005 sd 0.142")
