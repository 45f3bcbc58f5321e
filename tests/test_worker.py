"""The worker's budget bookkeeping (pure functions; the worker process itself is exercised in test_api)."""

from kbench import api, worker
from kbench.timer import TimerConfig

CFG = TimerConfig(budget_s=4.0, min_samples=10, min_sample_s=0.005)


def _plan(budget):
    return api.plan(["dense"], sizes={"batch": "1,1024,16384"}, timer=CFG, run_budget=budget)


def _history(times: dict[str, float], flops: int, cold: float = 1.0):
    return {"model": "dense", "points": {p: [(flops, t)] for p, t in times.items()}, "cold_s": cold}


def test_without_a_run_budget_every_cell_gets_the_cell_budget():
    plan = _plan(None)
    assert worker.cell_budget(plan, 1, 1e9, None) == (4.0, "")


def test_run_budget_is_shared_by_the_cells_left():
    plan = _plan(30)
    budget, skip = worker.cell_budget(plan, 0, 3.0, None)
    assert skip == "" and budget == 4.0  # 27 s left over 3 cells, capped by the cell budget
    budget, skip = worker.cell_budget(plan, 1, 24.0, _history({"numpy": 1e-5}, 2 * 128 * 128, cold=1.0))
    assert skip == "" and budget == 2.0  # 6 s left over 2 cells, less 1 s of cold start


def test_a_cell_that_cannot_fit_is_skipped_with_its_reason():
    plan = _plan(30)
    history = _history({"numpy": 1e-3, "predict": 0.5}, 2 * 128 * 128 * 1024)
    budget, skip = worker.cell_budget(plan, 2, 25.0, history)
    assert budget == 0.0
    assert skip.startswith("predicted to need at least") and "of the 30 s run budget left" in skip


def test_prediction_extrapolates_along_the_last_two_points_and_never_shrinks():
    assert worker._predict_call([(10, 1.0)], 100) == 10.0  # one point: proportional to work
    assert worker._predict_call([(10, 1.0), (20, 1.5)], 40) == 2.5  # slope 0.05 per FLOP
    assert worker._predict_call([(10, 2.0), (20, 1.5)], 40) == 1.5  # noise made it faster: not extrapolated down
