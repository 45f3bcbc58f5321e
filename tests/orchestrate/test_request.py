"""The run request: a frozen record of what the user asked for, validated into a plan in one place."""

from __future__ import annotations

import dataclasses

import pytest

from kbench import api
from kbench.core.errors import BadOptionError, BadSizeError, UnknownModelError
from kbench.orchestrate.request import QUICK, RIGOROUS, RIGOROUS_PROCESSES, RunRequest, listify, make_plan


def test_a_request_is_frozen_and_keeps_lists_as_tuples():
    sizes = {"batch": "1,32"}
    request = RunRequest(["dense"], ["call"], sizes, backends=["tensorflow"], gaps=["0", "1ms"], threads=[1, 2])
    assert request.models == ("dense",) and request.paths == ("call",) and request.backends == ("tensorflow",)
    assert request.gaps == ("0", "1ms") and request.threads == (1, 2)
    sizes["batch"] = "64"  # the request keeps its own copy
    assert dict(request.sizes) == {"batch": "1,32"}
    with pytest.raises(TypeError):
        request.sizes["batch"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.seed = 3  # type: ignore[misc]


def test_strings_and_scalars_are_kept_as_given():
    request = RunRequest("dense,dot", threads=2, gaps=0.5, shard=(1, 2), rate="50/s")
    assert request.models == "dense,dot" and request.threads == 2 and request.gaps == 0.5 and request.shard == (1, 2)


def test_the_keyword_form_and_the_request_give_the_same_plan():
    request = RunRequest(["dense"], sizes={"batch": "1,32"}, processes=2, quick=True, gaps="0,1ms")
    assert api.plan(request) == make_plan(request)
    assert api.plan(["dense"], sizes={"batch": "1,32"}, processes=2, quick=True, gaps="0,1ms") == make_plan(request)
    assert api.plan(["dense"], None, {"batch": "1,32"}, processes=2, quick=True, gaps="0,1ms") == make_plan(request)
    assert make_plan(request).timer == dataclasses.replace(QUICK, shared_sample_s=0.0)  # QUICK under the time goal


def test_only_a_run_that_chose_no_time_of_its_own_gets_the_time_goal():
    assert make_plan(RunRequest("dense")).cell_goal_s == 15.0
    assert make_plan(RunRequest("dense", quick=True)).cell_goal_s == 15.0
    for chosen in ({"run_budget": "5m"}, {"cell_budget": 2.0}, {"mode": "parity"}):
        assert make_plan(RunRequest("dense", **chosen)).cell_goal_s is None, chosen


def test_only_a_run_with_a_time_of_its_own_samples_longer_on_a_shared_cpu():
    assert make_plan(RunRequest("dense")).timer.shared_sample_s == 0.0  # the time goal keeps 5 ms samples
    assert make_plan(RunRequest("dense", quick=True)).timer.shared_sample_s == 0.0
    assert make_plan(RunRequest("dense", cell_budget=2.0)).timer.shared_sample_s == 0.05
    assert make_plan(RunRequest("dense", rigorous=True)).timer.shared_sample_s == 0.05


def test_rigorous_runs_more_spawned_processes_on_a_longer_budget_with_no_time_goal():
    plan = make_plan(RunRequest("dense", rigorous=True))
    assert (plan.timer, plan.processes, plan.cell_goal_s, plan.fork) == (RIGOROUS, RIGOROUS_PROCESSES, None, False)
    assert make_plan(RunRequest("dense")).fork and make_plan(RunRequest("dense", rigorous=True, spawn=False)).fork
    assert plan.processes > make_plan(RunRequest("dense")).processes and plan.timer.budget_s > 4.0
    mine = make_plan(RunRequest("dense", rigorous=True, processes=6, cell_budget=8.0))  # the user's own still win
    assert (mine.processes, mine.timer.budget_s, mine.timer.min_samples) == (6, 8.0, RIGOROUS.min_samples)
    with pytest.raises(BadOptionError, match="--quick and --rigorous"):
        make_plan(RunRequest("dense", rigorous=True, quick=True))


def test_a_request_takes_no_extra_fields():
    with pytest.raises(TypeError):
        api.plan(RunRequest(["dense"]), processes=2)
    with pytest.raises(TypeError):
        api.plan(["dense"], procesess=2)


def test_the_first_problem_in_check_order_is_the_one_reported():
    with pytest.raises(UnknownModelError, match="no model given"):
        make_plan(RunRequest([" , "], sizes={"batch": "0"}))
    with pytest.raises(BadSizeError, match="--batch 0 must be positive"):
        make_plan(RunRequest(["dense"], sizes={"batch": "0"}, run_budget="0"))


def test_listify_keeps_a_bare_string_whole():
    assert listify("dense,dot") == ["dense,dot"] and listify(("a", "b")) == ["a", "b"] and listify(None) is None
