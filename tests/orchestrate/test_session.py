"""The run session's pure parts: each worker's job (its share of the budgets) and its log file's name."""

from __future__ import annotations

import pytest

from kbench.measure.protocol import Cell
from kbench.measure.timer import TimerConfig
from kbench.orchestrate.planning import Plan
from kbench.orchestrate.session import log_name, worker_job

CELL = Cell("dense", "dense.py", (("batch", 1),), (), "float32")


def test_each_process_gets_its_share_of_the_cell_budget_and_of_the_run_budget_left():
    plan = Plan((CELL,), ("numpy",), timer=TimerConfig(budget_s=4.0), run_budget_s=100.0,
                backends=("tensorflow", "jax"), processes=2, threads=(1, 2))  # fmt: skip
    first = worker_job(plan, "tensorflow", 0, 1, elapsed_s=0.0)
    assert first.timer.budget_s == 2.0 and first.threads == 1 and first.processes == 2
    assert first.run_budget_s == pytest.approx(100.0 / 8)  # 2 backends x 2 thread settings x 2 processes
    last = worker_job(plan, "jax", 1, 2, elapsed_s=90.0)
    assert last.run_budget_s == pytest.approx(10.0) and last.process == 1 and last.backend == "jax"
    assert worker_job(plan, "jax", 1, 2, elapsed_s=200.0).run_budget_s == 0.0
    assert worker_job(Plan((CELL,), ("numpy",)), "tensorflow", 0, None, 5.0).run_budget_s is None


@pytest.mark.parametrize("args, name", [
    (("tensorflow", 0), "worker-tensorflow.log"),
    (("tensorflow", 2), "worker-tensorflow-3.log"),
    (("jax", 0, 1), "worker-jax-threads1.log"),
    (("jax", 1, 4), "worker-jax-threads4-2.log"),
])  # fmt: skip
def test_log_names(args, name):
    assert log_name(*args) == name
