"""The sampler on its own (kbench.measure.sampling): it reads only the four settings of its protocol, so any object
with them drives it, and it picks what the timer picks. The timed region, overhead, warm-up and calibration are
tested in depth through the timer (tests/measure/test_timer.py)."""

import math
from types import SimpleNamespace

from kbench.measure.sampling import Overhead, Sampler
from kbench.measure.timer import Timer, TimerConfig

US = 2**-20  # ~0.95 µs, exact in binary


class Clock:
    """A fake clock that moves only when a call advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_sampler_runs_on_just_its_four_settings_and_agrees_with_the_timer():
    settings = SimpleNamespace(min_sample_s=0.005, max_overhead=0.01, warmup_s=1e-3, min_warmup_calls=2)
    config = TimerConfig(min_sample_s=0.005, max_overhead=0.01, warmup_s=1e-3, min_warmup_calls=2)
    picked = []
    for make in (lambda clock: Sampler(settings, clock), lambda clock: Timer(config, clock=clock)):
        clock = Clock()

        def work(clock=clock) -> None:
            clock.now += 3 * US

        sampler = make(clock)
        assert sampler.overhead() == Overhead(0.0, 0.0)  # a free clock: nothing to amortise
        picked.append((sampler.warmup(work), sampler.calibrate(work), sampler.sample(work, 10)))
    assert picked[0] == picked[1]
    calls, loops, ten = picked[0]
    assert calls == max(2, math.ceil(1e-3 / (3 * US))) and loops * 3 * US >= 0.005 and ten == 30 * US
