"""The budget policy of a worker: how much steady-state sampling each cell gets, and which cells no longer fit.

Without a run budget or time goal every cell gets the timer's ``budget_s``. With a run budget (``--budget``, this
process's share of it), the time left is shared equally by the cells left, less the time the last cell spent outside
sampling; a cell whose *minimum* cost no longer fits is skipped with the reason. A time goal (the default run's, see
:mod:`kbench.orchestrate.request`) shares its time the same way but never skips: a cell that does not fit is
sampled for :data:`FLOOR_S`, and each path still takes its minimum samples. Pure functions: the worker keeps the
:class:`CostModel` and passes it back in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from kbench.measure.protocol import CellDone, Job


@dataclass(frozen=True)
class CostModel:
    """What the next cell's cost is predicted from: per path, the (FLOPs, median) points of this model so far,
    and the time the last cell spent outside sampling (cold start, parity, warm-up, retrace)."""

    model: str = ""
    points: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    cold_s: float = 0.0


def after_cell(previous: CostModel | None, model: str, done: CellDone, wall_s: float, flops: int) -> CostModel:
    """The cost model after cell ``done`` of ``model``: its paths' medians added (a new model starts afresh)."""
    points = dict(previous.points) if previous and previous.model == model else {}
    for r in done.paths:
        if r.samples:
            points[r.path] = (*points.get(r.path, ()), (max(flops, 1), median(r.samples)))
    sampling = sum(sum(r.samples) * r.loops for r in done.paths)
    return CostModel(model, points, max(wall_s - sampling, 0.0))


# A throughput below what any machine kbench runs on reaches in float32 GEMM (one core of a laptop does ~50): the
# extra work of a bigger cell costs at most this much per FLOP when only one earlier cell is known.
SLOW_FLOPS_PER_S = 1e9


def predict_call(points: tuple[tuple[int, float], ...] | list, flops: int) -> float:
    """Per-call time at ``flops``: extrapolated along the last two measured points (time grows with work, never
    shrinks). From a single point, the lesser of two upper bounds: in proportion to the FLOPs (right when a call is
    all computation), or that point's time plus the extra FLOPs at :data:`SLOW_FLOPS_PER_S` (right when it is all
    per-call overhead: a 1.6 ms ``predict`` at n = 16 is not 0.8 s at n = 128)."""
    f1, t1 = points[-1]
    if len(points) >= 2 and points[-2][0] < f1:
        f0, t0 = points[-2]
        return t1 + max(0.0, (t1 - t0) / (f1 - f0)) * max(0, flops - f1)
    extra = max(0, flops - f1)
    return min(t1 * max(1.0, flops / f1), t1 + extra / SLOW_FLOPS_PER_S)


FLOOR_S = 0.05  # the least sampling budget a cell gets under a run budget or time goal


def cell_budget(job: Job, index: int, elapsed_s: float, costs: CostModel | None, flops: int) -> tuple[float, str]:
    """(steady-state budget for cell ``index``, skip reason); ``flops`` is that cell's work.

    Under a time goal: the time left over the cells left, less the last cell's time outside sampling (for the
    first cell, what a cell took outside sampling in the processes before, ``job.cell_overhead_s``), between
    :data:`FLOOR_S` and the timer's budget. Under a run budget, a cell's *minimum* cost is ``min_samples`` samples of every path plus warm-up, first call and retrace (four
    calls), each path's per-call time extrapolated from the model's earlier cells (:func:`predict_call`), plus
    the last cell's time outside sampling."""
    cfg = job.timer
    if job.mode != "run":
        return cfg.budget_s, ""
    if job.run_budget_s is None:
        if job.time_goal_s is None:
            return cfg.budget_s, ""
        left = job.time_goal_s - elapsed_s
        cold = costs.cold_s if costs is not None else job.cell_overhead_s or 0.0
        return max(FLOOR_S, min(cfg.budget_s, left / (len(job.cells) - index) - cold)), ""
    left = job.run_budget_s - elapsed_s
    cells_left = len(job.cells) - index
    if costs is None or costs.model != job.cells[index].model or not costs.points:  # nothing to go on
        if left <= 0:
            return 0.0, f"the run budget was spent ({job.run_budget_s:.3g} s, of which the backend import took part)"
        return max(FLOOR_S, min(cfg.budget_s, left / cells_left)), ""
    per_call = [predict_call(pts, flops) for pts in costs.points.values()]
    minimum = sum(cfg.min_samples * max(cfg.min_sample_s, t) + 4 * t for t in per_call) + costs.cold_s
    if minimum > left:
        return 0.0, (f"predicted to need at least {minimum:.1f} s ({cfg.min_samples} samples of every path plus cold "
                     f"start), {max(left, 0):.1f} s of the {job.run_budget_s:.3g} s run budget left")  # fmt: skip
    return max(FLOOR_S, min(cfg.budget_s, left / cells_left - costs.cold_s)), ""
