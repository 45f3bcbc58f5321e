"""The worker's budget policy (pure functions; the worker process itself is exercised in test_api)."""

import pytest

from kbench import api
from kbench.measure import budget
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import CellDone, Job, PathResult
from kbench.measure.timer import TimerConfig

CFG = TimerConfig(budget_s=4.0, min_samples=10, min_sample_s=0.005)
FLOPS = {0: 2 * 128 * 128, 1: 2 * 128 * 128 * 1024, 2: 2 * 128 * 128 * 16384}


def _job(run_budget):
    plan = api.plan(["dense"], sizes={"batch": "1,1024,16384"}, timer=CFG, processes=1)
    return Job(plan.cells, plan.paths, "tensorflow", 0, CFG, run_budget_s=run_budget)


def _costs(times: dict[str, float], flops: int, cold: float = 1.0) -> budget.CostModel:
    return budget.CostModel("dense", {p: ((flops, t),) for p, t in times.items()}, cold)


def test_without_a_run_budget_every_cell_gets_the_cell_budget():
    assert budget.cell_budget(_job(None), 1, 1e9, None, FLOPS[1]) == (4.0, "")


def test_run_budget_is_shared_by_the_cells_left():
    job = _job(30.0)
    assert budget.cell_budget(job, 0, 3.0, None, FLOPS[0]) == (4.0, "")  # 27 s over 3 cells, capped by the cell budget
    got = budget.cell_budget(job, 1, 24.0, _costs({"numpy": 1e-5}, FLOPS[0], cold=1.0), FLOPS[1])
    assert got == (2.0, "")  # 6 s left over 2 cells, less 1 s of cold start


def test_a_cell_that_cannot_fit_is_skipped_with_its_reason():
    costs = _costs({"numpy": 1e-3, "predict": 0.5}, FLOPS[1])
    seconds, skip = budget.cell_budget(_job(30.0), 2, 25.0, costs, FLOPS[2])
    assert seconds == 0.0
    assert skip.startswith("predicted to need at least") and "of the 30 s run budget left" in skip


def test_a_spent_budget_skips_with_its_reason():
    seconds, skip = budget.cell_budget(_job(5.0), 0, 6.0, None, FLOPS[0])
    assert seconds == 0.0 and "run budget was spent" in skip


def test_a_time_goal_trims_sampling_but_never_skips_a_cell():
    job = Job(_job(None).cells, _job(None).paths, "tensorflow", 0, CFG, time_goal_s=30.0)
    assert budget.cell_budget(job, 0, 3.0, None, FLOPS[0]) == (4.0, "")  # 27 s over 3 cells: the cell budget
    costs = _costs({"numpy": 1e-3, "predict": 0.5}, FLOPS[1], cold=2.0)
    assert budget.cell_budget(job, 1, 22.0, costs, FLOPS[1]) == (2.0, "")  # 8 s over 2 cells, less 2 s outside sampling
    assert budget.cell_budget(job, 2, 29.0, costs, FLOPS[2]) == (budget.FLOOR_S, "")  # where a budget would skip
    assert budget.cell_budget(job, 2, 99.0, costs, FLOPS[2]) == (budget.FLOOR_S, "")


def test_a_later_process_plans_its_first_cell_with_the_overhead_the_processes_before_saw():
    plain = Job(_job(None).cells, _job(None).paths, "tensorflow", 1, CFG, time_goal_s=6.0)
    told = Job(_job(None).cells, _job(None).paths, "tensorflow", 1, CFG, time_goal_s=6.0, cell_overhead_s=1.5)
    assert budget.cell_budget(plain, 0, 0.0, None, FLOPS[0]) == (2.0, "")  # 6 s over 3 cells, nothing outside known
    assert budget.cell_budget(told, 0, 0.0, None, FLOPS[0]) == (0.5, "")  # less the 1.5 s a cell took outside
    costs = _costs({"numpy": 1e-3}, FLOPS[0], cold=0.25)  # from its second cell on, its own cells say
    assert budget.cell_budget(told, 1, 0.0, costs, FLOPS[1]) == (2.75, "")


def test_another_models_cost_model_is_not_used_to_predict():
    other = budget.CostModel("matmul", {"predict": ((10, 100.0),)}, 0.0)  # would never fit if it were used
    assert budget.cell_budget(_job(30.0), 1, 1.0, other, FLOPS[1]) == (4.0, "")


def test_prediction_extrapolates_along_the_last_two_points_and_never_shrinks():
    assert budget.predict_call([(1e6, 1e-4)], 1e7) == pytest.approx(1e-3)  # one point at 10 GFLOP/s: proportional
    # one point, all overhead (1.6 ms at 8 kFLOP): the extra 4.2 MFLOP at 1 GFLOP/s, not 512x the time
    assert budget.predict_call([(8192, 1.6e-3)], 8192 * 512) == pytest.approx(1.6e-3 + 8192 * 511 / 1e9)
    assert budget.predict_call([(10, 1.0), (20, 1.5)], 40) == 2.5  # slope 0.05 per FLOP
    assert budget.predict_call([(10, 2.0), (20, 1.5)], 40) == 1.5  # noise made it faster: not extrapolated down


def test_cost_model_records_each_paths_median_and_the_time_outside_sampling():
    ok = ParityResult("numpy", True, 1e-5, 0.0, 0.0, 0.0)
    r = PathResult("numpy", 0, None, 1e-4, ok, "cpu", "host", "float32", samples=(1.0e-5, 3.0e-5, 2.0e-5), loops=100)
    h = budget.after_cell(None, "dense", CellDone(0, (r,), ("numpy",)), wall_s=1.0, flops=FLOPS[0])
    assert h.points == {"numpy": ((FLOPS[0], 2.0e-5),)}
    assert abs(h.cold_s - (1.0 - 6.0e-5 * 100)) < 1e-12
