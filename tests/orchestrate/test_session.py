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


def test_min_samples_count_over_the_processes_and_the_time_goal_is_shared_like_a_budget():
    plan = Plan((CELL, CELL), ("numpy",), timer=TimerConfig(budget_s=3.0, min_samples=10), processes=3,
                cell_goal_s=15.0)  # fmt: skip
    first = worker_job(plan, "tensorflow", 0, None, elapsed_s=3.0)
    assert first.timer.min_samples == 4 and first.timer.budget_s == 1.0  # ceil(10 / 3); 3 s over 3 processes
    assert first.time_goal_s == pytest.approx((30.0 - 3.0) / 3) and first.run_budget_s is None
    assert worker_job(plan, "tensorflow", 2, None, elapsed_s=25.0).time_goal_s == pytest.approx(5.0)
    # at least 3 samples per process however many processes, unless the user asked for fewer in all
    many = Plan((CELL,), ("numpy",), timer=TimerConfig(min_samples=10), processes=8)
    assert worker_job(many, "tensorflow", 0, None, 0.0).timer.min_samples == 3
    few = Plan((CELL,), ("numpy",), timer=TimerConfig(min_samples=2), processes=3)
    assert worker_job(few, "tensorflow", 0, None, 0.0).timer.min_samples == 2
    assert worker_job(few, "tensorflow", 0, None, 0.0).time_goal_s is None


def test_under_the_time_goal_the_extras_run_in_process_0_and_later_processes_learn_a_cells_overhead():
    goal = Plan((CELL,), ("numpy",), processes=3, cell_goal_s=15.0)
    jobs = [worker_job(goal, "tensorflow", k, None, 0.0, None if k == 0 else 2.5) for k in range(3)]
    assert all(j.extras_first_only for j in jobs) and [j.runs_extras for j in jobs] == [True, False, False]
    assert [j.cell_overhead_s for j in jobs] == [None, 2.5, 2.5]
    chosen = Plan((CELL,), ("numpy",), processes=3)  # a run that chose its own time: every process as before
    assert not any(worker_job(chosen, "tensorflow", k, None, 0.0).extras_first_only for k in range(3))
    many = Plan((CELL,), ("numpy",), processes=15)  # --rigorous: no time goal, many processes
    assert [worker_job(many, "tensorflow", k, None, 0.0).runs_extras for k in range(15)] == [True] + [False] * 14


@pytest.mark.parametrize("args, name", [
    (("tensorflow", 0), "worker-tensorflow.log"),
    (("tensorflow", 2), "worker-tensorflow-3.log"),
    (("jax", 0, 1), "worker-jax-threads1.log"),
    (("jax", 1, 4), "worker-jax-threads4-2.log"),
])  # fmt: skip
def test_log_names(args, name):
    assert log_name(*args) == name


def test_each_serving_runtime_gets_worker_processes_of_its_own_and_shares_the_run_budget():
    """Importing one runtime slows another's calls (ONNX Runtime's import doubled OpenVINO's infer), so a backend's
    processes time its Keras paths and NumPy together and each runtime apart; the budget counts every group."""
    plan = Plan((CELL,), ("numpy", "call", "onnxruntime", "openvino"), run_budget_s=80.0, processes=2)
    assert plan.path_groups("tensorflow") == (("numpy", "call"), ("onnxruntime",), ("openvino",))
    assert plan.path_groups("jax") == (("numpy", "call"),)  # no runtime on another backend
    jobs = [worker_job(plan, "tensorflow", k, None, 0.0, group=g) for g in range(3) for k in range(2)]
    assert [j.paths for j in jobs[::2]] == [("numpy", "call"), ("onnxruntime",), ("openvino",)]
    assert [j.slot for j in jobs] == [0, 1, 2, 3, 4, 5]  # distinct keys when the cell's rows are pooled
    assert jobs[0].run_budget_s == pytest.approx(80.0 / 6) and jobs[-1].run_budget_s == pytest.approx(80.0)
    assert log_name("tensorflow", 1, None, ("openvino",)) == "worker-tensorflow-openvino-2.log"
