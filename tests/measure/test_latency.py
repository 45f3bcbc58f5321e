"""Latency as a server sees it (kbench.measure.latency): single calls, idle gaps, threads, memory; no timing asserted."""

import json
import math

import pandas as pd
import pytest

from kbench import api
from kbench.core import errors
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


# -- statistics --------------------------------------------------------------------------------------------------


def test_percentiles_of_known_data():
    p = latency.percentiles(float(x) for x in range(100, 0, -1))  # 1..100, unsorted
    assert p.n == 100
    assert p.p50 == pytest.approx(50.5) and p.p90 == pytest.approx(90.1) and p.p99 == pytest.approx(99.01)
    assert p.max == 100.0
    empty = latency.percentiles([])
    assert empty.n == 0 and math.isnan(empty.p99)


def test_latency_columns_pool_every_process_and_keep_each_gap():
    a = (LatencySeries(0.0, (1.0, 2.0), (1e-6, 1e-6)), LatencySeries(0.02, (5.0,), (0.0201,)))
    b = (LatencySeries(0.0, (3.0, 4.0), (1e-6, 1e-6)), LatencySeries(0.02, (7.0,), (0.0203,)))
    row = latency.latency_columns([_result("call", a, mem_py_peak_b=100), _result("call", b)])
    assert row["lat_n"] == 4 and row["lat_p50_s"] == pytest.approx(2.5) and row["lat_max_s"] == 4.0
    assert sorted(row["lat_samples_s"]) == [1.0, 2.0, 3.0, 4.0]
    assert row["lat_gap_s"] == [0.0, 0.02] and row["lat_gap_n"] == [4.0, 2.0]
    assert row["lat_gap_p50_s"][1] == pytest.approx(6.0) and row["lat_gap_actual_s"][1] == pytest.approx(0.0202)
    assert row["mem_py_peak_b"] == 100 and row["mem_rss_growth_b"] is None  # only process 0 measures memory


def test_a_path_without_single_calls_keeps_its_note_and_empty_columns():
    row = latency.latency_columns([_result("numpy", (), latency_note=latency.TOO_SHORT)])
    assert row["lat_note"] == "too short for single-call timing" and "lat_p50_s" not in row


# -- single calls on a fake clock ----------------------------------------------------------------------------------


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


# -- input ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [("0", 0.0), ("500us", 500e-6), ("500µs", 500e-6), ("1ms", 1e-3),
                                           ("20ms", 0.02), ("0.5s", 0.5), (" 2 ms ", 2e-3), (0.01, 0.01)])  # fmt: skip
def test_gaps_parse(text, seconds):
    assert latency.parse_gap(text) == pytest.approx(seconds)


def test_gap_lists_are_sorted_without_duplicates():
    assert latency.parse_gaps("20ms,0,1ms,0.001s") == (0.0, 0.001, 0.02)
    assert latency.parse_gaps(None) == () and latency.parse_threads(None) == ()
    assert latency.parse_threads("2,1,2") == (1, 2)


@pytest.mark.parametrize("kwargs, words", [
    ({"gaps": "-1ms"}, "--gap -1ms is negative"),
    ({"gaps": "fast"}, "--gap 'fast' is not a duration"),
    ({"gaps": "1ms,"}, "--gap has an empty entry"),
    ({"gaps": "10s", "cell_budget": 4}, "--gap 10s: 30 single calls after it idle 300 s, more than the 4 s cell"),
    ({"threads": "0"}, "--threads 0 must be 1 or more"),
    ({"threads": "-2"}, "--threads -2 must be 1 or more"),
    ({"threads": "two"}, "--threads 'two' is not a whole number"),
])  # fmt: skip
def test_the_library_refuses_bad_gaps_and_threads_in_one_line(kwargs, words):
    with pytest.raises(errors.UsageError) as err:
        api.plan(["dense"], **kwargs)
    assert str(err.value).startswith(words) and "\n" not in str(err.value)


def test_a_good_plan_keeps_its_gaps_and_threads():
    plan = api.plan(["dense"], gaps="0,1ms,20ms", threads="1,2")
    assert plan.gaps == (0.0, 0.001, 0.02) and plan.threads == (1, 2) and plan.thread_settings == (1, 2)
    assert api.plan(["dense"]).thread_settings == (None,)


@pytest.mark.parametrize("flag, words", [("--gap=10s", "--gap 10s: 30 single calls"),
                                         ("--threads=0", "--threads 0 must be 1 or more")])  # fmt: skip
def test_the_cli_refuses_bad_gaps_and_threads_with_exit_2(flag, words, tmp_path):
    done = run_cli("run", "--model", "dense", flag, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not (tmp_path / "reports").exists()


def test_thread_env_sets_every_pool_and_xla_for_one_thread():
    env = latency.thread_env(1, {"XLA_FLAGS": "--xla_dump_to=x"})
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS"):  # fmt: skip
        assert env[k] == "1"
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=x ") and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "XLA_FLAGS" not in latency.thread_env(2, {}) and latency.thread_env(None, {}) == {}


# -- presentation and identity -------------------------------------------------------------------------------------


def _rows() -> pd.DataFrame:
    base = {"model": "dense", "sizes": "batch=1", "dtype": "float32", "options_label": "", "lat_note": "",
            "lat_gap_s": [0.0, 0.02]}  # fmt: skip
    return pd.DataFrame([
        {**base, "path": "numpy", "median_s": 3e-6, "lat_p50_s": None, "lat_p99_s": None, "lat_note": latency.TOO_SHORT,
         "lat_gap_s": []},
        {**base, "path": "compiled", "median_s": 2.7e-4, "lat_p50_s": 2.7e-4, "lat_p99_s": 4e-4,
         "lat_gap_p50_s": [2.7e-4, 4e-4], "lat_gap_p99_s": [4e-4, 5.7e-4]},
        {**base, "path": "xla", "median_s": 2e-4, "lat_p50_s": 2e-4, "lat_p99_s": 2.5e-4,
         "lat_gap_p50_s": [2e-4, 3e-4], "lat_gap_p99_s": [2.5e-4, 4.1e-4]},
    ])  # fmt: skip


def test_the_verdict_names_the_gap_the_worst_tail_and_the_fastest_path_at_low_load():
    (t,) = latency.latency_tables(_rows(), ["model", "sizes", "dtype", "options_label"])
    assert t.gaps == ("20ms",) and [r.path for r in t.rows] == ["compiled", "xla"]
    assert t.sentence == ("After a 20 ms idle gap (≈ 50 requests/s), compiled's p99 is 2.11× its back-to-back "
                          "median; the fastest path at low load is xla (p99 410 µs, 2.05× its back-to-back median).")
    assert t.short.startswith("too short for single-call timing") and t.short.endswith(": numpy")


def test_rows_of_two_thread_settings_never_share_a_key():
    from kbench.analysis.compare import _keys

    row = {"model": "dense", "backend": "tensorflow", "path": "call", "sizes": "batch=1", "dtype": "float32",
           "options": {}}  # fmt: skip
    keys = _keys(pd.DataFrame([{**row, "threads": 1}, {**row, "threads": 2}, {**row, "threads": None}]))
    assert len(keys) == 3 and {k.threads for k in keys} == {"1", "2", ""}
    labelled = latency.by_threads(pd.DataFrame([{**row, "threads": 1}, {**row, "threads": None}]))
    assert list(labelled["model"]) == ["dense · threads=1", "dense · threads=default"]


# -- real runs -----------------------------------------------------------------------------------------------------


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
    from kbench.analysis.history import CellFilter, cell_key

    row = {"model": "dense", "backend": "tensorflow", "path": "call", "sizes": "batch=1", "dtype": "float32",
           "options": {}}  # fmt: skip
    one, two, default = {**row, "threads": 1}, {**row, "threads": 2}, {**row, "threads": None}
    assert len({cell_key(one), cell_key(two), cell_key(default)}) == 3
    filt = CellFilter(model="dense", threads=2)
    assert filt.matches(two) and not filt.matches(one) and not filt.matches(default)
    assert filt.flags() == "--model dense --threads 2"


# -- open-loop arrivals (--rate) -----------------------------------------------------------------------------------


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
    row = latency.latency_columns([_result("call", (LatencySeries(0.0, (1e-3,), (0.0,)),), arrivals=(s,))])
    assert row["lat_rate_per_s"] == pytest.approx(50.0) and row["lat_rate_n"] == 5


@pytest.mark.parametrize("text, rate", [("50/s", 50.0), ("50", 50.0), ("600/min", 10.0), (" 2.5 / s", 2.5)])
def test_rates_parse(text, rate):
    assert latency.parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("kwargs, words", [
    ({"rate": "0/s"}, "--rate 0/s must be more than 0"),
    ({"rate": "fast"}, "--rate 'fast' is not a request rate"),
    ({"rate": "1/s", "cell_budget": 4}, "--rate 1/s: 30 requests arrive over about 30 s"),
])  # fmt: skip
def test_the_library_refuses_bad_rates_in_one_line(kwargs, words):
    with pytest.raises(errors.UsageError) as err:
        api.plan(["dense"], **kwargs)
    assert str(err.value).startswith(words) and "\n" not in str(err.value)


def test_a_path_slower_than_the_arrivals_is_named_as_overloaded():
    rows = [{"path": "predict", "lat_p50_s": 0.045}, {"path": "xla", "lat_p50_s": 2.6e-4}]
    assert latency.overload_sentence(rows, 50.0).startswith("At 50 requests/s, predict cannot keep up")
    assert latency.overload_sentence(rows[1:], 50.0).startswith("At 50 requests/s every path keeps up")
    assert latency.overload_sentence(rows, None) == ""
