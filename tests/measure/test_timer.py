"""Unit tests for the timing protocol (kbench.measure.timer), run on a fake clock.

Nothing here asserts on real wall-clock speed. The callables under test advance a :class:`FakeClock` by a programmed
duration per call. Durations are mostly dyadic (k * 2**-n seconds) so every fake time is exactly representable and
sums and differences of fake times are exact; that lets the tests compare per-call times with ``==``.
"""

from __future__ import annotations

import gc
import itertools
import math
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbench.measure import sampling
from kbench.core.stats import median_ci, quantile
from kbench.measure.sampling import Overhead
from kbench.measure.timer import UNSTABLE_IQR, Measurement, Timer, TimerConfig, time_once

US = 2**-20  # ~0.95 µs, exact in binary
NS60 = 2**-24  # ~60 ns, exact in binary
MS2 = 2**-9  # ~1.95 ms, exact in binary


# -- fakes -------------------------------------------------------------------------------------------------------
class FakeClock:
    """A callable clock that only moves when told to; each read may itself cost ``read_cost`` seconds."""

    def __init__(self, start: float = 0.0, read_cost: float = 0.0) -> None:
        self.now = start
        self.read_cost = read_cost
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.read_cost
        return self.now

    def advance(self, dt: float) -> None:
        assert dt >= 0
        self.now += dt


class Work:
    """A zero-argument callable that advances the fake clock by a duration per call (constant or a cycled script).

    It records how often it ran, ``gc.isenabled()`` at every call, and (optionally) its name into a shared log.
    """

    def __init__(self, clock: FakeClock, durations, name: str = "", log: list | None = None, raise_at: int | None = None):
        self.clock = clock
        self.durations = list(durations) if isinstance(durations, (list, tuple)) else [durations]
        self._cycle = itertools.cycle(self.durations)
        self.name = name
        self.log = log
        self.raise_at = raise_at
        self.calls = 0
        self.gc_states: list[bool] = []

    def __call__(self):
        self.calls += 1
        self.gc_states.append(gc.isenabled())
        if self.log is not None:
            self.log.append(self.name)
        if self.raise_at is not None and self.calls >= self.raise_at:
            raise RuntimeError(f"boom in {self.name or 'fn'} at call {self.calls}")
        self.clock.advance(next(self._cycle))
        return self.name


def cfg(**kw) -> TimerConfig:
    """A config that keeps the fake protocol short; override what a test is about."""
    base = dict(budget_s=1.0, min_samples=10, max_samples=2000, target_ci=0.02, min_sample_s=1e-3, warmup_s=0.0,
                min_warmup_calls=2, seed=0, samples_per_visit=1, switch_warmup_calls=3, switch_warmup_max_frac=0.5)  # fmt: skip
    base.update(kw)
    return TimerConfig(**base)


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


# -- config ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [dict(budget_s=0.0), dict(budget_s=-1.0), dict(min_samples=0), dict(min_samples=5, max_samples=4)])
def test_config_rejects_invalid_values(bad):
    with pytest.raises(ValueError):
        TimerConfig(**bad)


# -- median_ci ---------------------------------------------------------------------------------------------------
def _ranks(n: int) -> tuple[int, int]:
    """The 1-based ranks median_ci picks, read back from samples 1..n."""
    lo, hi = median_ci(tuple(float(i) for i in range(1, n + 1)))
    return int(lo), int(hi)


def test_median_ci_empty_is_nan():
    lo, hi = median_ci(())
    assert math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize("n", range(1, 11))
def test_median_ci_small_n_gives_whole_range(n):
    assert _ranks(n) == (1, n)


def test_median_ci_first_n_that_narrows():
    # n=11: floor(5.5 - 3.25) = 2, ceil(1 + 5.5 + 3.25) = 10
    assert _ranks(11) == (2, 10)


def test_median_ci_n100_ranks_40_and_61():
    assert _ranks(100) == (40, 61)
    s = tuple(sorted(np.random.default_rng(3).random(100)))
    assert median_ci(s) == (s[39], s[60])


def test_median_ci_custom_z_widens_and_narrows():
    assert _ranks(100) == (40, 61)
    lo, hi = median_ci(tuple(float(i) for i in range(1, 101)), z=2.576)  # 99%
    assert (lo, hi) == (37, 64)
    lo, hi = median_ci(tuple(float(i) for i in range(1, 101)), z=0.0)
    assert (lo, hi) == (50, 51)


@given(st.integers(min_value=1, max_value=3000))
@settings(max_examples=200, deadline=None)
def test_median_ci_ranks_symmetric_and_bracket_the_median(n):
    lo, hi = _ranks(n)
    assert 1 <= lo <= hi <= n
    assert lo + hi == n + 1 or (lo, hi) == (1, n)  # symmetric order statistics
    assert lo <= (n + 1) / 2 <= hi


# -- _quantile ---------------------------------------------------------------------------------------------------
def test_quantile_empty_is_nan():
    assert math.isnan(quantile((), 0.5))


@pytest.mark.parametrize("seed", range(8))
def test_quantile_matches_numpy_percentile_linear(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    data = rng.lognormal(size=n) * 1e-6
    s = tuple(sorted(float(x) for x in data))
    for q in (0.0, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 0.99, 1.0):
        assert quantile(s, q) == pytest.approx(float(np.percentile(data, 100 * q)), rel=1e-12, abs=0.0)


@given(st.lists(st.floats(min_value=1e-9, max_value=1e3), min_size=1, max_size=50), st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=200, deadline=None)
def test_quantile_matches_numpy_percentile_property(xs, q):
    s = tuple(sorted(xs))
    assert quantile(s, q) == pytest.approx(float(np.percentile(np.array(xs), 100 * q)), rel=1e-9)


# -- Measurement -------------------------------------------------------------------------------------------------
def test_measurement_statistics():
    m = Measurement((5.0, 1.0, 4.0, 2.0, 3.0), loops=7, stop_reason="ci")
    assert m.n == 5 and m.loops == 7
    assert m.sorted == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert m.samples == (5.0, 1.0, 4.0, 2.0, 3.0)  # kept in sampling order
    assert (m.median, m.q1, m.q3, m.iqr) == (3.0, 2.0, 4.0, 2.0)
    assert (m.min, m.max) == (1.0, 5.0)
    assert m.mean == 3.0
    assert m.stdev == pytest.approx(math.sqrt(2.5))
    assert m.ci == (1.0, 5.0)  # n=5: whole range
    assert m.ci_rel_halfwidth == pytest.approx(2 / 3)


def test_measurement_even_n_interpolates():
    m = Measurement((4.0, 1.0, 3.0, 2.0), loops=1)
    assert m.median == 2.5
    assert m.q1 == 1.75 and m.q3 == 3.25


def test_measurement_matches_numpy_on_random_samples():
    data = np.random.default_rng(11).normal(1e-5, 1e-6, size=137)
    m = Measurement(tuple(float(x) for x in data), loops=3)
    assert m.median == pytest.approx(float(np.median(data)), rel=1e-12)
    assert m.q1 == pytest.approx(float(np.percentile(data, 25)), rel=1e-12)
    assert m.q3 == pytest.approx(float(np.percentile(data, 75)), rel=1e-12)
    assert m.mean == pytest.approx(float(np.mean(data)), rel=1e-12)
    assert m.stdev == pytest.approx(float(np.std(data, ddof=1)), rel=1e-9)
    s = sorted(data)
    lo, hi = _ranks(137)
    assert m.ci == (s[lo - 1], s[hi - 1])


def test_measurement_empty_and_single():
    e = Measurement((), loops=1)
    assert e.n == 0
    assert all(math.isnan(v) for v in (e.median, e.q1, e.q3, e.min, e.max, e.mean, e.stdev, *e.ci))
    one = Measurement((2e-6,), loops=1)
    assert one.median == one.min == one.max == one.mean == 2e-6
    assert math.isnan(one.stdev)
    assert one.ci == (2e-6, 2e-6)


@pytest.mark.parametrize(
    ("spread", "unstable"),
    [(0.0, False), (0.099, False), (0.101, True), (0.5, True)],
)
def test_measurement_unstable_flag_at_iqr_over_ten_percent_of_median(spread, unstable):
    # three samples: median 100, q1 = 100 - 50*spread, q3 = 100 + 50*spread -> IQR = 100*spread
    m = Measurement((100.0 - 100 * spread, 100.0, 100.0 + 100 * spread), loops=1)
    assert m.iqr == pytest.approx(100 * spread)
    assert m.unstable is unstable
    assert UNSTABLE_IQR == 0.10


def test_loop_overhead_pct():
    m = Measurement((2e-6,) * 5, loops=1000, per_loop_overhead_s=3e-8, fixed_overhead_s=1e-7)
    assert m.loop_overhead_pct == pytest.approx(1.5)
    assert math.isnan(Measurement((0.0,), loops=1, per_loop_overhead_s=3e-8).loop_overhead_pct)


def test_warnings_text():
    calm = Measurement((1.0, 1.0, 1.0), loops=1, stop_reason="ci")
    assert calm.warnings() == []
    noisy = Measurement((1.0, 2.0, 3.0), loops=1, stop_reason="ci")
    (w,) = noisy.warnings()
    assert "unstable" in w and "IQR is 50.0% of the median" in w  # IQR 1.0, median 2.0
    assert "threshold 10%" in w
    budget = Measurement((1.0, 1.0, 1.0, 1.02), loops=1, stop_reason="budget")
    (w,) = budget.warnings()
    assert "budget" in w and "±2.0%" in w  # CI (1.0, 1.02) around median 1.0: its upper end is 2% away
    both = Measurement((1.0, 2.0, 3.0), loops=1, stop_reason="budget")
    assert len(both.warnings()) == 2


@given(st.lists(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=200))
@settings(max_examples=300, deadline=None)
def test_measurement_properties(xs):
    m = Measurement(tuple(xs), loops=1)
    assert m.min <= m.median <= m.max
    lo, hi = m.ci
    assert m.min <= lo <= m.median <= hi <= m.max
    assert m.q1 <= m.median <= m.q3
    assert m.iqr >= 0
    assert m.min <= m.mean * (1 + 1e-12) and m.mean <= m.max * (1 + 1e-12)


# -- sample and overhead -----------------------------------------------------------------------------------------
def test_sample_returns_total_time_of_the_loops():
    clock = FakeClock(start=123.0)
    fn = Work(clock, 3 * US)
    t = Timer(cfg(), clock=clock).sample(fn, 7)
    assert t == 21 * US and fn.calls == 7
    assert Timer(cfg(), clock=clock).sample(fn, 0) == 0.0 and fn.calls == 7


def test_overhead_zero_on_a_free_fake_clock():
    assert Timer(cfg(), clock=FakeClock()).overhead() == Overhead(0.0, 0.0)


def test_overhead_measures_clock_read_cost_and_loop_cost_and_is_cached(monkeypatch):
    clock = FakeClock(read_cost=NS60)
    monkeypatch.setattr(sampling, "_noop", lambda: clock.advance(US / 64))  # the per-iteration cost of the loop
    timer = Timer(cfg(), clock=clock)
    ov = timer.overhead()
    assert ov == Overhead(fixed_s=NS60, per_loop_s=US / 64)
    reads = clock.reads
    assert timer.overhead() is ov and clock.reads == reads  # measured once per Timer


def test_measurement_carries_the_overheads(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(sampling, "_noop", lambda: clock.advance(US / 32))
    m = Timer(cfg(), clock=clock).measure(Work(clock, MS2))
    assert m.per_loop_overhead_s == US / 32 and m.fixed_overhead_s == 0.0
    assert m.loop_overhead_pct == pytest.approx(100 * (US / 32) / MS2)


# -- warmup ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("warmup_s", "dur", "min_calls"), [(0.05, 7 * US, 2), (0.01, US, 2), (1e-3, MS2, 2), (0.0, US, 3), (1e-3, MS2, 5)])
def test_warmup_runs_min_calls_and_for_warmup_s(warmup_s, dur, min_calls):
    clock = FakeClock(start=10.0)
    fn = Work(clock, dur)
    t0 = clock.now
    calls = Timer(cfg(warmup_s=warmup_s, min_warmup_calls=min_calls), clock=clock).warmup(fn)
    elapsed = clock.now - t0
    assert calls == fn.calls
    assert calls >= min_calls
    assert elapsed >= warmup_s
    # and not much more: the loop stops at the first check past warmup_s
    assert calls == max(min_calls, math.ceil(warmup_s / dur))


# -- calibrate ---------------------------------------------------------------------------------------------------
def _calibration_bound(target: float, dur: float, fixed: float = 0.0) -> tuple[int, int]:
    """(needed, upper): the smallest loop count whose sample reaches target, and the most calibrate may return.

    calibrate returns at the first ``loops`` with ``loops*dur + fixed >= target``. The step before, ``prev < needed``
    loops, gives next = max(prev + 1, ceil(prev * min(10, 1.2*target/(prev*dur + fixed)))) <= max(needed,
    ceil(1.2*target/dur)): it aims 20% past the target, so it overshoots by at most ~20% (+1 for the ceiling).
    The factor 1e-9 absorbs float rounding of 1.2*target/t when that quotient is (nearly) an integer.
    """
    needed = max(1, math.ceil((target - fixed) / dur))
    return needed, max(needed, math.ceil(1.2 * target / dur * (1 + 1e-9)))


@pytest.mark.parametrize("dur", [US, 3 * US, 5 * US / 7, 1000 * US, 3e-6, 1e-6, MS2, 10 * MS2])
def test_calibrate_picks_a_sufficient_and_not_absurd_loop_count(dur):
    clock = FakeClock()
    config = cfg(min_sample_s=0.005)
    timer = Timer(config, clock=clock)
    loops = timer.calibrate(Work(clock, dur))
    needed, upper = _calibration_bound(0.005, dur)
    assert loops * dur >= 0.005 * (1 - 1e-12)
    assert needed <= loops <= upper
    assert loops < 2 * needed + 1
    # a fresh sample at that loop count really lasts min_sample_s
    assert timer.sample(Work(clock, dur), loops) >= 0.005 * (1 - 1e-12)


@given(k=st.integers(min_value=1, max_value=2**14), target_k=st.integers(min_value=1, max_value=2**14))
@settings(max_examples=60, deadline=None)
def test_calibrate_bound_property(k, target_k):
    clock = FakeClock()
    dur = k * 2**-24
    target = target_k * 2**-16
    loops = Timer(cfg(min_sample_s=target), clock=clock).calibrate(Work(clock, dur))
    needed, upper = _calibration_bound(target, dur)
    assert loops * dur >= target  # exact: everything is dyadic
    assert needed <= loops <= upper


def test_calibrate_amortises_a_nonzero_fixed_overhead():
    # every clock read costs ~60 ns, so one sample carries ~60 ns of fixed cost; min_sample_s alone would need 17 loops
    read = NS60
    clock = FakeClock(read_cost=read)
    config = cfg(min_sample_s=1e-6, max_overhead=0.01)
    timer = Timer(config, clock=clock)
    assert timer.overhead().fixed_s == read
    dur = NS60
    loops = timer.calibrate(Work(clock, dur))
    target = read / 0.01  # fixed / max_overhead, far above min_sample_s
    assert target > config.min_sample_s
    t = timer.sample(Work(clock, dur), loops)
    assert t == loops * dur + read
    assert t >= target
    assert timer.overhead().fixed_s <= config.max_overhead * t  # fixed overhead below 1% of a sample
    assert loops > math.ceil(config.min_sample_s / dur)  # more loops than min_sample_s alone asks for
    needed, upper = _calibration_bound(target, dur, fixed=read)
    assert needed <= loops <= upper


def test_calibrate_grows_at_most_tenfold_per_step():
    clock = FakeClock()
    timer = Timer(cfg(min_sample_s=0.5), clock=clock)
    timer.overhead()  # measured first, so the spy sees calibration samples only
    tried = []
    real_sample = timer.sample

    def spy(fn, loops):
        tried.append(loops)
        return real_sample(fn, loops)

    timer.sample = spy
    loops = timer.calibrate(Work(clock, US))
    assert tried[0] == 1 and tried[-1] == loops
    assert all(b > a and b <= 10 * a for a, b in zip(tried, tried[1:]))
    assert tried[:6] == [1, 10, 100, 1000, 10_000, 100_000]  # far from the target: 10x steps


def test_calibrate_with_zero_time_samples_grows_tenfold_and_caps():
    timer = Timer(cfg(min_sample_s=1e-3), clock=FakeClock())
    timer.overhead()
    tried = []
    timer.sample = lambda fn, loops: tried.append(loops) or 0.0  # a clock too coarse to see anything
    assert timer.calibrate(lambda: None) == 10**9
    assert tried == [10**i for i in range(10)]


# -- run: stopping rule ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dur", [US, 3 * US, MS2])
def test_run_constant_duration_stops_on_ci_after_min_samples_with_exact_time(dur):
    clock = FakeClock(start=5.0)
    config = cfg(min_samples=12, min_sample_s=0.002)
    m = Timer(config, clock=clock).measure(Work(clock, dur))
    assert m.stop_reason == "ci"
    assert m.n == 12
    assert all(s == dur for s in m.samples)
    assert m.median == dur and m.min == dur and m.max == dur and m.iqr == 0.0
    assert not m.unstable and m.warnings() == []
    assert m.loops * dur >= 0.002


def test_run_constant_duration_approximately_exact_for_non_dyadic_duration():
    clock = FakeClock()
    m = Timer(cfg(min_sample_s=0.005), clock=clock).measure(Work(clock, 1e-6))
    assert m.stop_reason == "ci" and m.n == 10
    assert m.median == pytest.approx(1e-6, rel=1e-9)


def test_run_returns_empty_for_no_callables():
    assert Timer(cfg(), clock=FakeClock()).run({}) == {}


NOISY = [1 * MS2, 3 * MS2, 2 * MS2, 5 * MS2, 4 * MS2]  # per call (and, with loops=1, per sample): never converges


@pytest.mark.parametrize("n_fns", [1, 2, 3])
def test_run_noisy_stops_on_budget_once_its_share_is_spent(n_fns):
    clock = FakeClock()
    budget = 0.3
    config = cfg(budget_s=budget, min_samples=10, min_sample_s=1e-3)
    fns = {f"f{i}": Work(clock, NOISY[i:] + NOISY[:i]) for i in range(n_fns)}
    out = Timer(config, clock=clock).run(fns)
    share = budget / n_fns
    for name, m in out.items():
        assert m.loops == 1
        assert m.stop_reason == "budget", name
        assert set(m.samples) <= set(NOISY)
        assert m.n >= config.min_samples
        assert sum(m.samples) >= share  # spent its share ...
        assert sum(m.samples[:-1]) < share  # ... and stopped at the first sample that did
        assert "budget" in " ".join(m.warnings())


def test_run_budget_never_stops_before_min_samples():
    clock = FakeClock()
    config = cfg(budget_s=1e-9, min_samples=17, min_sample_s=1e-3)
    m = Timer(config, clock=clock).measure(Work(clock, NOISY))
    assert m.stop_reason == "budget"
    assert m.n == 17


def test_run_stops_at_max_samples():
    clock = FakeClock()
    config = cfg(budget_s=1e9, min_samples=10, max_samples=25, min_sample_s=1e-3)
    m = Timer(config, clock=clock).measure(Work(clock, NOISY))
    assert m.stop_reason == "max_samples"
    assert m.n == 25


def test_run_max_samples_equal_min_samples_reports_ci_when_converged():
    clock = FakeClock()
    m = Timer(cfg(min_samples=5, max_samples=5), clock=clock).measure(Work(clock, MS2))
    assert m.n == 5 and m.stop_reason == "ci"  # a converged CI is named even when the cap is reached too


def test_lopsided_ci_does_not_stop_on_its_half_width():
    # CI (1.0, 1.04) around median 1.0: half-width 2% but the upper end is 4% away, so not converged at ±2%
    m = Measurement(tuple([1.0] * 6 + [1.04] * 5), loops=1)
    assert m.ci == (1.0, 1.04) and m.median == 1.0
    assert m.ci_rel_halfwidth == pytest.approx(0.04)
    timer = Timer(cfg(min_samples=11, target_ci=0.02))
    assert timer._stop_reason(list(m.samples), spent=0.0, share=1.0) == ""


def test_run_stops_on_ci_once_noise_dies_down():
    # first 10 samples noisy, then constant: the CI reaches ±2% only when the order statistics it uses are equal
    clock = FakeClock()
    script = NOISY * 2 + [2 * MS2] * 1000
    config = cfg(budget_s=1e9, min_samples=10, min_sample_s=1e-3, min_warmup_calls=1)
    fn = Work(clock, 0.0)
    fn._cycle = iter([2 * MS2] * 2 + script)  # warmup (1 call) and calibration (1 call) first
    m = Timer(config, clock=clock).measure(fn)
    assert m.stop_reason == "ci" and m.loops == 1
    assert list(m.samples) == script[: m.n]
    # it stopped at the first n >= min_samples where the rule holds
    def ok(k):
        s = tuple(sorted(script[:k]))
        lo, hi = median_ci(s)
        return (hi - lo) / 2 <= 0.02 * quantile(s, 0.5)

    assert ok(m.n) and not any(ok(k) for k in range(10, m.n))
    assert m.n > 10


# -- run: gc -----------------------------------------------------------------------------------------------------
def test_run_disables_gc_inside_and_reenables_after():
    clock = FakeClock()
    fns = {"a": Work(clock, US), "b": Work(clock, MS2)}
    assert gc.isenabled()
    Timer(cfg(warmup_s=1e-3), clock=clock).run(fns)
    assert gc.isenabled()
    for fn in fns.values():
        assert fn.calls > 10 and not any(fn.gc_states)  # warm-up, calibration and every sample


def test_run_leaves_gc_disabled_if_it_was_disabled():
    clock = FakeClock()
    gc.disable()
    fn = Work(clock, MS2)
    Timer(cfg(), clock=clock).measure(fn)
    assert not gc.isenabled()
    assert not any(fn.gc_states)


@pytest.mark.parametrize("raise_at", [1, 3, 4, 9])  # warm-up, calibration, first sample, a later sample
def test_run_exception_propagates_and_gc_is_reenabled(raise_at):
    clock = FakeClock()
    fns = {"a": Work(clock, MS2), "b": Work(clock, MS2, name="b", raise_at=raise_at)}
    with pytest.raises(RuntimeError, match="boom in b"):
        Timer(cfg(), clock=clock).run(fns)
    assert gc.isenabled()


def test_run_exception_keeps_gc_disabled_if_it_was_disabled():
    clock = FakeClock()
    gc.disable()
    with pytest.raises(RuntimeError):
        Timer(cfg(), clock=clock).measure(Work(clock, MS2, raise_at=5))
    assert not gc.isenabled()


# -- run: interleaving -------------------------------------------------------------------------------------------
def _sampling_rounds(config: TimerConfig, fns_spec: dict) -> tuple[list[tuple[str, ...]], dict[str, Measurement]]:
    """Run with loops=1 for every callable (durations >= min_sample_s) and split the sampling calls into rounds."""
    clock = FakeClock()
    log: list[str] = []
    fns = {name: Work(clock, d, name=name, log=log) for name, d in fns_spec.items()}
    out = Timer(config, clock=clock).run(fns)
    assert all(m.loops == 1 for m in out.values())
    total = sum(m.n for m in out.values())
    sampling = log[len(log) - total :]  # warm-up and calibration of every callable come first
    rounds, i = [], 0
    for r in range(max(m.n for m in out.values())):
        members = {name for name, m in out.items() if m.n > r}  # active in round r
        chunk = tuple(sampling[i : i + len(members)])
        i += len(members)
        assert sorted(chunk) == sorted(members), f"round {r}: {chunk} != {members}"
        rounds.append(chunk)
    assert i == total
    return rounds, out


@pytest.mark.parametrize("n_fns", [2, 3])
def test_run_interleaves_each_active_callable_once_per_round_shuffled(n_fns):
    spec = {name: (k + 1) * MS2 for k, name in enumerate("abc"[:n_fns])}
    rounds, out = _sampling_rounds(cfg(min_samples=20, min_sample_s=1e-3), spec)
    assert all(m.stop_reason == "ci" and m.n == 20 for m in out.values())
    assert len(rounds) == 20 and all(len(r) == n_fns for r in rounds)
    assert len(set(rounds)) > 1  # the order changes between rounds


def test_run_interleaving_with_callables_that_stop_at_different_times():
    spec = {"const": MS2, "noisy": NOISY, "also": 3 * MS2}
    rounds, out = _sampling_rounds(cfg(budget_s=0.6, min_samples=10, min_sample_s=1e-3), spec)
    assert out["const"].stop_reason == "ci" and out["const"].n == 10
    assert out["also"].stop_reason == "ci" and out["also"].n == 10
    assert out["noisy"].stop_reason == "budget" and out["noisy"].n > 10
    assert all(r == ("noisy",) for r in rounds[10:])


def test_run_order_is_reproducible_for_a_seed_and_varies_with_it():
    spec = {"a": MS2, "b": 2 * MS2, "c": 3 * MS2}
    first, _ = _sampling_rounds(cfg(min_samples=10, seed=7), spec)
    again, _ = _sampling_rounds(cfg(min_samples=10, seed=7), spec)
    assert first == again
    others = [_sampling_rounds(cfg(min_samples=10, seed=s), spec)[0] for s in range(5)]
    assert len({tuple(r) for r in others + [first]}) > 1


def test_run_order_does_not_depend_on_mapping_order():
    a, _ = _sampling_rounds(cfg(min_samples=10, seed=3), {"a": MS2, "b": 2 * MS2, "c": 3 * MS2})
    b, _ = _sampling_rounds(cfg(min_samples=10, seed=3), {"c": 3 * MS2, "a": MS2, "b": 2 * MS2})
    assert a == b


def test_run_returns_one_measurement_per_name():
    clock = FakeClock()
    out = Timer(cfg(), clock=clock).run({"z": Work(clock, MS2), "a": Work(clock, 2 * MS2)})
    assert set(out) == {"a", "z"}
    assert out["a"].median == 2 * MS2 and out["z"].median == MS2


# -- time_once ---------------------------------------------------------------------------------------------------
def test_time_once_returns_elapsed_and_result_with_gc_off_inside():
    clock = FakeClock(start=1.5)
    seen = []

    def fn():
        seen.append(gc.isenabled())
        clock.advance(0.25)
        return {"value": 42}

    elapsed, result = time_once(fn, clock=clock)
    assert elapsed == 0.25 and result == {"value": 42}
    assert seen == [False]
    assert gc.isenabled()


def test_time_once_keeps_gc_disabled_if_it_was_disabled():
    gc.disable()
    elapsed, result = time_once(lambda: "x", clock=FakeClock())
    assert (elapsed, result) == (0.0, "x")
    assert not gc.isenabled()


def test_time_once_exception_propagates_and_gc_is_reenabled():
    def fn():
        raise KeyError("cold")

    with pytest.raises(KeyError):
        time_once(fn, clock=FakeClock())
    assert gc.isenabled()


# -- switch warm-up ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("calls", "frac", "loops", "expected"),
                         [(3, 0.5, 1, 0), (3, 0.5, 2, 1), (3, 0.5, 5, 2), (3, 0.5, 6, 3), (3, 0.5, 5000, 3),
                          (0, 0.5, 100, 0), (2, 1.0, 1, 1), (5, 0.0, 100, 0)])  # fmt: skip
def test_switch_calls_is_the_count_capped_by_a_share_of_the_loops(calls, frac, loops, expected):
    assert TimerConfig(switch_warmup_calls=calls, switch_warmup_max_frac=frac).switch_calls(loops) == expected


@pytest.mark.parametrize("bad", [dict(switch_warmup_calls=-1), dict(switch_warmup_max_frac=-0.1)])
def test_config_rejects_a_negative_switch_warmup(bad):
    with pytest.raises(ValueError, match="switch warm-up"):
        TimerConfig(**bad)


class Disturber:
    """Callable A: costs ``dur`` and disturbs shared state (sets ``state['dirty']``)."""

    def __init__(self, clock: FakeClock, dur: float, state: dict) -> None:
        self.clock, self.dur, self.state = clock, dur, state

    def __call__(self):
        self.state["dirty"] = True
        self.clock.advance(self.dur)


class Victim:
    """Callable B: costs ``dur``, plus ``extra`` on its first call after A ran (a cold cache)."""

    def __init__(self, clock: FakeClock, dur: float, extra: float, state: dict) -> None:
        self.clock, self.dur, self.extra, self.state = clock, dur, extra, state
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.clock.advance(self.dur + (self.extra if self.state.pop("dirty", False) else 0.0))


def _interference(switch_calls: int, clock: FakeClock | None = None) -> tuple[Measurement, Measurement]:
    """(B interleaved with A, B alone) on a fake clock: B costs 8 µs, 2 ms more on its first call after A."""
    clock = clock or FakeClock()
    state: dict = {}
    config = cfg(min_samples=30, max_samples=30, min_sample_s=1e-3, switch_warmup_calls=switch_calls)
    b = Victim(clock, 8 * US, MS2, state)
    inter = Timer(config, clock=clock).run({"a": Disturber(clock, 3 * MS2, state), "b": b})["b"]
    alone = Timer(config, clock=clock).measure(Victim(clock, 8 * US, MS2, state))
    return inter, alone


def test_switch_warmup_removes_the_interference_bias_exactly_on_a_fake_clock():
    inter, alone = _interference(switch_calls=3)
    assert alone.median == 8 * US
    assert inter.median == alone.median  # the first call after A is never inside a sample
    assert inter.switch_warmup_calls == 3 and inter.loops > 6


def test_without_switch_warmup_the_interference_biases_the_median():
    inter, alone = _interference(switch_calls=0)
    assert inter.switch_warmup_calls == 0
    assert inter.median == pytest.approx(alone.median + MS2 / inter.loops, rel=1e-9)  # most samples follow A and carry its 2 ms
    assert inter.median > 1.5 * alone.median


def test_switch_warmup_runs_only_after_a_switch_and_its_calls_are_untimed():
    clock = FakeClock()
    log: list = []
    fns = {"a": Work(clock, MS2, name="a", log=log), "b": Work(clock, 2 * MS2, name="b", log=log)}
    config = cfg(min_samples=12, max_samples=12, min_sample_s=1e-3, switch_warmup_calls=2, switch_warmup_max_frac=2.0)
    timer = Timer(config, clock=clock)
    real_sample = timer.sample

    def spy(fn, loops):
        log.append(("start", getattr(fn, "name", "")))
        t = real_sample(fn, loops)
        log.append(("end", getattr(fn, "name", "")))
        return t

    timer.sample = spy
    out = timer.run(fns)
    assert out["a"].median == MS2 and out["b"].median == 2 * MS2  # untimed: never inside a sample
    assert all(m.loops == 1 and m.switch_warmup_calls == 2 for m in out.values())
    log = [e for e in log if e not in (("start", ""), ("end", ""))]  # the overhead's no-op samples
    starts = [i for i, e in enumerate(log) if e[0] == "start"][2:]  # after the two calibration samples
    assert len(starts) == 24
    for i in starts:
        prev_end = max(j for j in range(i) if log[j][0] == "end")
        before = log[prev_end + 1 : i]
        name = log[i][1]
        assert before == ([name, name] if log[prev_end][1] != name else [])
        assert log[i + 1 : i + 3] == [name, ("end", name)]  # one loop inside the sample


def test_a_callable_alone_gets_no_switch_warmup():
    clock = FakeClock()
    fn = Work(clock, MS2)
    m = Timer(cfg(min_samples=10, max_samples=10, switch_warmup_max_frac=2.0), clock=clock).measure(fn)
    assert m.loops == 1 and m.switch_warmup_calls == 2  # the setting, recorded ...
    assert fn.calls == 2 + 1 + 10  # ... but no switch: warm-up, calibration and samples only


def _busy(seconds: float):
    """A callable that spins until perf_counter_ns has advanced by ``seconds``."""
    ns = round(seconds * 1e9)
    clock = time.perf_counter_ns

    def fn():
        end = clock() + ns
        while clock() < end:
            pass

    return fn


def test_switch_warmup_on_a_real_clock_interleaved_median_matches_isolated():
    """B spins 20 µs, plus 0.5 ms on its first call after A ran: +40% in a ~1.2 ms sample without the warm-up.

    Samples are kept short (1 ms): on a loaded 2-core VM the scheduler preempts spins longer than ~3 ms in most
    samples. C (the same spin, never disturbed) in the same run is the paired control, B alone the isolated one."""
    state: dict = {}
    spin, extra = _busy(20e-6), _busy(5e-4)

    def a():
        state["dirty"] = True
        spin()

    def c():  # the control: the same spin, never disturbed; it dirties b too, so b follows a switch after a or c
        state["dirty"] = True
        spin()

    def b():
        if state.pop("dirty", False):
            extra()
        spin()

    def ratios(**kw) -> tuple[float, float]:
        config = TimerConfig(budget_s=0.45, warmup_s=0.005, min_samples=30, min_sample_s=1e-3, **kw)
        out = Timer(config).run({"a": a, "b": b, "c": c})
        alone = Timer(replace(config, budget_s=0.15)).measure(spin)
        return out["b"].median / alone.median, out["b"].median / out["c"].median

    # The bias is +40%; the bounds sit halfway so a shared machine's noise cannot decide (±5% failed twice
    # on the 2-core VM): a warm-up that did nothing reads ~1.4 and fails.
    assert ratios() == pytest.approx((1.0, 1.0), abs=0.15)  # the defaults: visits of 3 samples, warm-up first
    assert ratios(switch_warmup_calls=3, samples_per_visit=1) == pytest.approx((1.0, 1.0), abs=0.15)
    biased = ratios(switch_warmup_calls=0, samples_per_visit=1)  # every sample follows a switch
    assert min(biased) > 1.15


def _spin_turn_s(turns: int = 20000) -> float:
    """One turn of :func:`_busy`'s loop (a clock read and a compare), measured here: a spin overshoots its deadline
    by up to about one turn, plus the call around it."""
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(turns):
        clock() < 0  # noqa: B015  (the compare is the point)
    return (clock() - start) / turns * 1e-9


# -- the real clock: tests that fail on a wrong clock or a wrong divide --------------------------------------------
# Samples of at most ~1 ms: on the shared 2-core VM under load the scheduler preempted 3 ms spins in most samples
# (median 2.3x), while 1 ms ones mostly ran through. A spin can never take less than its duration on the right
# clock, so the lower bounds are tight. The upper bounds leave room for the spin's own overshoot (two turns of its
# loop, measured: ~0.1-0.3 us on a VM, 1-3% of a 10 us spin) and for preemption; with ~10 loops per sample, one
# loop too many or too few in the divide is a 10% error, which they still catch.
@pytest.mark.parametrize(("seconds", "min_sample_s"), [(10e-6, 1e-4), (1e-3, 5e-4)])
def test_real_clock_busy_wait_median_is_its_duration(seconds, min_sample_s):
    config = TimerConfig(budget_s=0.3, warmup_s=0.005, min_samples=30, min_sample_s=min_sample_s)
    m = Timer(config).measure(_busy(seconds))
    overshoot = 2 * _spin_turn_s()
    assert m.loops <= max(1.0, 1.5 * min_sample_s / seconds)  # few loops: a wrong divide shows as >= 1 / loops
    assert seconds * (1 - 1e-6) <= m.min <= seconds * 1.035 + overshoot
    assert seconds * (1 - 1e-6) <= m.median <= seconds * 1.06 + overshoot


def test_real_clock_counts_wall_time_when_sleeping():
    """A sleep takes wall time but almost no CPU time: process_time would read a few µs."""
    m = Timer(TimerConfig(budget_s=0.3, warmup_s=0.005, min_samples=10)).measure(lambda: time.sleep(1e-3))
    assert 1e-3 * (1 - 1e-6) <= m.median <= 3e-3


def test_real_clock_timings_grow_with_the_work():
    small, large = (np.ones((n, n), dtype=np.float32) for n in (16, 256))
    config = TimerConfig(budget_s=0.4, warmup_s=0.01, min_samples=10, min_sample_s=1e-3)
    out = Timer(config).run({"n16": lambda: small @ small, "n256": lambda: large @ large})
    assert out["n256"].median / out["n16"].median > 50  # 4096x the flops


def test_a_visit_is_a_warm_up_then_samples_back_to_back_and_a_stopped_callable_leaves_mid_visit():
    clock = FakeClock()
    log: list = []
    fns = {"a": Work(clock, MS2, name="a", log=log), "b": Work(clock, 2 * MS2, name="b", log=log)}
    config = cfg(min_samples=10, max_samples=10, samples_per_visit=3, switch_warmup_calls=20, switch_warmup_max_frac=1.0)
    timer = Timer(config, clock=clock)
    real_sample = timer.sample

    def spy(fn, loops):
        log.append(("sample", getattr(fn, "name", "")))
        return real_sample(fn, loops)

    timer.sample = spy
    out = timer.run(fns)
    assert all(m.n == 10 and m.loops == 1 and m.switch_warmup_calls == 1 for m in out.values())
    assert out["a"].median == MS2 and out["b"].median == 2 * MS2  # the warm-up call is never inside a sample
    log = [e for e in log if e != ("sample", "")]  # the overhead's no-op samples
    assert log[:8] == ["a", "a", ("sample", "a"), "a", "b", "b", ("sample", "b"), "b"]  # warm-up, calibration
    log = log[8:]
    names, warmups, prev = [], 0, "b"  # calibration ran "b" last
    for k, e in enumerate(log):
        if isinstance(e, tuple):
            assert log[k + 1] == e[1]  # a sample is one call
            names.append(e[1])
        elif k == 0 or log[k - 1] != ("sample", e):  # a call outside a sample: the warm-up ...
            assert log[k + 1] == ("sample", e) and e != prev  # ... right before a visit that follows another
            warmups += 1
        prev = names[-1] if names else prev
    runs = [(n, len(list(g))) for n, g in itertools.groupby(names)]
    assert warmups == sum(1 for k, (n, _) in enumerate(runs) if n != (runs[k - 1][0] if k else "b"))
    last_run = {n: k for k, (n, _) in enumerate(runs)}
    assert all(length % 3 == 0 for k, (n, length) in enumerate(runs) if k != last_run[n])  # whole visits
    assert sum(length for n, length in runs if n == "a") == 10  # 3 + 3 + 3 + 1: it stops mid-visit


# -- quiesce: threads left spinning by the previous visit --------------------------------------------------------
class Spinners:
    """Helper threads that keep burning CPU for ``steps`` of the timer's sleeps (a fake CPU clock and sleep)."""

    def __init__(self, clock: FakeClock, steps: int, threads: float = 1.0) -> None:
        self.clock, self.steps, self.threads, self.cpu = clock, steps, threads, 0.0

    def sleep(self, dt: float) -> None:
        self.clock.advance(dt)
        if self.steps > 0:
            self.cpu += self.threads * dt
            self.steps -= 1


def test_quiesce_waits_for_spinning_threads_only_after_a_visit_that_kept_them_busy():
    clock = FakeClock()
    spin = Spinners(clock, steps=3)
    timer = Timer(cfg(quiesce_max_s=0.5), clock=clock, cpu_clock=lambda: spin.cpu, sleep=spin.sleep)
    assert timer.quiesce(busy=1.0) == 0.0 and spin.steps == 3  # one thread ran: nothing to wait for
    assert timer.quiesce(busy=2.0) == pytest.approx(5 * 0.005)  # three busy steps, then 10 ms of quiet
    spin.steps = 10**9
    assert timer.quiesce(busy=2.0) == pytest.approx(0.5, abs=0.0051)  # never quiet: capped at quiesce_max_s
    off = Timer(cfg(quiesce_max_s=0.0), clock=clock, cpu_clock=lambda: spin.cpu, sleep=spin.sleep)
    assert off.quiesce(busy=2.0) == 0.0


def test_a_run_quiesces_after_a_multithreaded_visit_before_the_next_callable():
    clock = FakeClock()
    cpu = {"t": 0.0}
    sleeps: list[float] = []

    def threaded():  # 2 ms of wall, 4 ms of CPU: a helper thread worked alongside
        clock.advance(MS2)
        cpu["t"] += 2 * MS2

    def single():
        clock.advance(MS2)
        cpu["t"] += MS2

    def sleep(dt):
        sleeps.append(dt)
        clock.advance(dt)

    config = cfg(min_samples=8, max_samples=8, samples_per_visit=4, quiesce_max_s=0.5)
    out = Timer(config, clock=clock, cpu_clock=lambda: cpu["t"], sleep=sleep).run({"a": threaded, "b": single})
    assert out["a"].median == MS2 and out["b"].median == MS2  # the waits are never inside a sample
    assert sleeps and all(dt == 0.005 for dt in sleeps)
    # two quiet steps before the first visit (what calibration left is unknown) and after each visit of "a" (two
    # visits of 4 samples) that another callable follows; none after "b", which ran alone
    assert len(sleeps) in (4, 6)


def test_others_share_is_their_cpu_seconds_per_cpu_over_the_rounds_wall_time_and_unknown_when_short():
    clock = FakeClock()
    others = {"t": 0.0}

    def work():  # 2 ms, during which other processes spent 0.6 ms per CPU: 30% of the CPUs
        clock.advance(MS2)
        others["t"] += 0.3 * MS2

    long = cfg(budget_s=10.0, min_samples=300, max_samples=300, switch_warmup_calls=0)  # 600 samples of 2 ms: 1.2 s
    out = Timer(long, clock=clock, others=lambda: others["t"]).run({"a": work, "b": work})
    assert out["a"].others_cpu == pytest.approx(0.3) and out["b"].others_cpu == out["a"].others_cpu
    short = cfg(min_samples=8, max_samples=8)  # 32 ms: /proc/stat's 10 ms steps say nothing over that
    assert math.isnan(Timer(short, clock=clock, others=lambda: others["t"]).run({"a": work})["a"].others_cpu)
    assert math.isnan(Timer(long, clock=clock).run({"a": work})["a"].others_cpu)  # no clock for it: unknown


def test_a_cpu_shared_before_calibration_lengthens_the_samples_to_shared_sample_s():
    clock = FakeClock(read_cost=1e-6)  # the probe spins on the clock: each read moves it
    work = Work(clock, MS2)
    half_taken = Timer(cfg(min_samples=4, max_samples=4), clock=clock, wait_clock=lambda: 0.5 * clock.now)
    out = half_taken.run({"a": work})["a"]
    assert out.shared and out.loops * MS2 >= 0.05  # 26 calls of 2 ms, not one
    quiet = Timer(cfg(min_samples=4, max_samples=4), clock=clock, wait_clock=lambda: 0.0).run({"a": work})["a"]
    assert not quiet.shared and quiet.loops == 1  # min_sample_s is 1 ms here
    off = Timer(cfg(min_samples=4, max_samples=4, shared_sample_s=0.0), clock=clock,
                wait_clock=lambda: 0.5 * clock.now).run({"a": work})["a"]  # fmt: skip
    assert not off.shared and off.loops == 1
    assert not Timer(cfg(min_samples=4, max_samples=4), clock=clock).run({"a": work})["a"].shared  # no wait clock
