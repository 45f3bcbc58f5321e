"""Where the time goes, the worker side (kbench.measure.decompose): the timer's budget weights for the reference
callables on a fake clock, and torch's kernel floor."""

import itertools
import json
import os
import subprocess
import sys

import pytest

from kbench.measure.timer import Timer, TimerConfig

# -- the timer's budget weights -------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_callable_with_half_the_weight_gets_half_the_budget_of_the_others():
    clock = _Clock()

    def work(durations):
        cycle = itertools.cycle(durations)

        def fn():
            clock.now += next(cycle)

        return fn

    fns = {"path": work([1e-3, 3e-3]), "ref:kernel": work([1e-3, 3e-3])}  # too noisy to stop on the CI
    config = TimerConfig(budget_s=0.6, min_samples=5, target_ci=0.0001, min_sample_s=1e-3, warmup_s=0.0)
    measured = Timer(config, clock=clock).run(fns, {"path": 1.0, "ref:kernel": 0.5})
    spent = {n: sum(m.samples) * m.loops for n, m in measured.items()}
    assert {m.stop_reason for m in measured.values()} == {"budget"}
    assert spent["path"] == pytest.approx(0.4, rel=0.1)
    assert spent["ref:kernel"] == pytest.approx(0.2, rel=0.2)


# -- torch's floor --------------------------------------------------------------------------------------------------


TORCH_FLOOR = """
import json, numpy as np, torch, keras
from kbench.backends.torch import kernel_floor
x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
inp = keras.Input(shape=(16,))
model = keras.Model(inp, keras.layers.Dense(4, activation="relu")(inp))
name, call = kernel_floor(None, model, [torch.from_numpy(x)])
y = call([torch.from_numpy(x)])
with torch.no_grad():
    expected = model(torch.from_numpy(x), training=False).numpy()
print(json.dumps({"name": name, "close": bool(np.allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)),
                  "requires_grad": y.requires_grad, "grad_enabled": torch.is_grad_enabled()}))
"""


def test_torchs_floor_is_the_frozen_traced_model_computing_the_models_output_without_grad():
    pytest.importorskip("torch")
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", TORCH_FLOOR], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the floor, not the torch.compile fallback; the model's own output; no autograd graph, grad mode left alone
    assert got == {"name": "kernel", "close": True, "requires_grad": False, "grad_enabled": True}
