"""Latency as a server sees it (kbench.measure.latency): single calls, idle gaps, open loop, memory; no timing asserted."""

import json

import pytest

from kbench.analysis.latency import latency_columns
from kbench.measure import latency, protocol
from kbench.measure.latency import LatencySeries
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import CellDone, PathResult

from conftest import run_cli

PARITY = ParityResult("call", True, 2.2e-5, 1e-7, 3e-8, 2e-7, "")


class FakeClock:
    """A clock that moves only when told: sleeping and calling advance it by known amounts."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1e-7  # every clock read costs 0.1 µs
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + 50e-6  # time.sleep overshoots


def _result(path: str, series: tuple[LatencySeries, ...], **kw) -> PathResult:
    return PathResult(path, 0, 0.01, 0.02, PARITY, "cpu", "host", "float32", (1e-3,), 1, "ci", latency=series, **kw)


# -- single calls on a fake clock -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gap", [0.0, 1e-3, 0.02])
def test_the_actual_gap_is_recorded_and_close_to_the_asked_one(gap):
    clock = FakeClock()

    def call():
        clock.now += 300e-6  # one call: 300 µs

    s = latency.single_calls(call, 20, gap, clock=clock, sleep=clock.sleep)
    assert s.gap_s == gap and len(s.calls_s) == len(s.idle_s) == 20
    assert all(c == pytest.approx(300e-6, abs=1e-6) for c in s.calls_s)  # one call between two clock reads
    for observed in s.idle_s:
        assert gap <= observed <= gap + 60e-6 or (gap == 0 and observed < 1e-6)  # sleep+spin lands on the deadline


def test_paths_too_short_for_single_call_timing_are_left_out():
    fns = {"numpy": lambda: None, "call": lambda: None, "predict": lambda: None}
    calls = {"numpy": 3e-6, "call": 500e-6, "predict": 0.04}
    out = latency.measure_paths(fns, calls, (0.001,), processes=3, order=["numpy", "call", "predict"])
    assert set(out) == {"call", "predict"}
    assert [s.gap_s for s in out["call"]] == [0.0, 0.001]
    assert len(out["predict"][0].calls_s) == 1  # a slow path: its share of 3 calls over 3 processes
    assert len(out["call"][0].calls_s) >= latency.MIN_CALLS // 3
    # a loaded machine can push a short path's median over 20 µs: its fastest sample decides
    loaded = latency.measure_paths({"numpy": lambda: None}, {"numpy": 25e-6}, (), 3, ["numpy"],
                                   fastest_s={"numpy": 12e-6})  # fmt: skip
    assert loaded == {}


def test_a_path_result_with_single_calls_survives_the_protocol():
    r = _result("call", (LatencySeries(0.0, (1e-3, 2e-3), (1e-6, 2e-6)),), mem_rss_growth_b=4096)
    back = protocol.decode(protocol.encode(CellDone(0, (r,), ("call",))))
    assert back.paths[0].latency == r.latency and back.paths[0].mem_rss_growth_b == 4096


# -- real runs ------------------------------------------------------------------------------------------------------


def test_a_default_run_carries_the_latency_columns(quick_run):
    result, _, _ = quick_run
    df = result.results.set_index(["sizes", "path"])
    keras = df.drop(index="numpy", level="path")
    assert keras["lat_n"].ge(latency.MIN_CALLS_SLOW).all()
    assert (keras["lat_p50_s"] <= keras["lat_p90_s"]).all() and (keras["lat_p90_s"] <= keras["lat_p99_s"]).all()
    assert (keras["lat_p99_s"] <= keras["lat_max_s"]).all()
    assert keras["lat_samples_s"].map(len).eq(keras["lat_n"]).all()
    assert df["threads"].isna().all()  # no --threads
    assert not df["lat_gap_s"].map(lambda v: isinstance(v, list) and len(v) > 0).any()  # no --gap
    assert keras["mem_py_peak_b"].gt(0).all()
    numpy = df.xs("numpy", level="path")
    assert numpy["lat_p50_s"].isna().all() and (numpy["lat_note"] == latency.TOO_SHORT).all()


def test_threads_1_reaches_the_worker_and_gaps_are_recorded(tmp_path):
    done = run_cli("run", "--model", "dense", "--batch", "1", "--path", "call", "--quick", "--cell-budget", "0.3",
                   "--processes", "1", "--threads", "1", "--gap", "1ms", "--no-report", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "reports").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    setting = meta["env"]["backends"]["tensorflow"]["threads_setting"]
    assert setting["tf_intra_op_threads"] == 1 and setting["tf_inter_op_threads"] == 1
    assert setting["blas_threads"] == [1]
    assert meta["plan"]["threads"] == [1] and meta["plan"]["gaps"] == [0.001]
    rows = {r["path"]: r for r in json.loads((run_dir / "results.json").read_text())["rows"]}
    assert all(r["threads"] == 1 for r in rows.values())
    call = rows["call"]
    assert call["lat_gap_s"] == [0.0, 0.001] and call["lat_gap_n"][1] >= latency.GAP_CALLS
    assert call["lat_gap_actual_s"][1] >= 0.001  # the idle gap observed before each call, at least the asked one
    assert "single calls" in done.stdout and "After a 1 ms idle gap" in done.stdout


def test_history_tells_thread_settings_apart():
    from kbench.analysis.trend import CellFilter, cell_key

    row = {"model": "dense", "backend": "tensorflow", "path": "call", "sizes": "batch=1", "dtype": "float32",
           "options": {}}  # fmt: skip
    one, two, default = {**row, "threads": 1}, {**row, "threads": 2}, {**row, "threads": None}
    assert len({cell_key(one), cell_key(two), cell_key(default)}) == 3
    filt = CellFilter(model="dense", threads=2)
    assert filt.matches(two) and not filt.matches(one) and not filt.matches(default)
    assert filt.flags() == "--model dense --threads 2"


# -- open-loop arrivals (--rate) ------------------------------------------------------------------------------------


class FixedGaps:
    """An rng whose every inter-arrival time is the same (``expovariate`` ignores the rate)."""

    def __init__(self, gap: float) -> None:
        self.gap = gap

    def expovariate(self, rate: float) -> float:
        return self.gap


def test_open_loop_latency_includes_the_wait_behind_earlier_requests():
    clock = FakeClock()

    def call():
        clock.now += 0.015  # 15 ms of service, arrivals every 10 ms: the queue grows by 5 ms a request

    s = latency.open_loop(call, 100.0, 4, FixedGaps(0.010), clock=clock, sleep=clock.sleep)
    assert s.gap_s == pytest.approx(0.01)
    assert [round(w * 1e3, 2) for w in s.idle_s] == pytest.approx([0.0, 5.0, 10.0, 15.0], abs=0.07)  # waits
    assert [round(x * 1e3, 2) for x in s.calls_s] == pytest.approx([15.0, 20.0, 25.0, 30.0], abs=0.07)


def test_open_loop_below_capacity_has_no_queue():
    clock = FakeClock()

    def call():
        clock.now += 0.001

    s = latency.open_loop(call, 50.0, 5, FixedGaps(0.020), clock=clock, sleep=clock.sleep)
    assert all(w < 60e-6 for w in s.idle_s) and all(x == pytest.approx(1e-3, abs=70e-6) for x in s.calls_s)
    row = latency_columns([_result("call", (LatencySeries(0.0, (1e-3,), (0.0,)),), arrivals=(s,))])
    assert row["lat_rate_per_s"] == pytest.approx(50.0) and row["lat_rate_n"] == 5
