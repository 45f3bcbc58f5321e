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


# -- TensorFlow's dispatch reference ----------------------------------------------------------------------------------


def _tf_cell(model: str, sizes: tuple, options: tuple = ()):
    from kbench.measure.cellinputs import prepare
    from kbench.measure.protocol import Cell
    from kbench.model.loader import load_model

    inputs = prepare(Cell(model, "", sizes, options, "float32"), load_model(model), 0, "float32")
    return inputs, inputs.ctx.input_list(inputs.inputs)


@pytest.mark.parametrize("model, sizes, options, empty", [
    ("dense", (("batch", 3), ("features", 8), ("units", 5)), (("activation", "relu"),), (0, 5)),
    ("matmul", (("n", 4),), (), (0, 4)),  # a @ b: only the first input's batch can be cut
])  # fmt: skip
def test_tensorflows_dispatch_is_the_floors_own_function_on_an_empty_batch(model, sizes, options, empty):
    """The dispatch reference runs the model's own function (its output's shape, not the input's) on no rows."""
    from kbench.backends import tensorflow as tfb
    from kbench.backends.base import DISPATCH, KERNEL

    inputs, xs = _tf_cell(model, sizes, options)
    refs = tfb.references(inputs.ctx, inputs.build_keras, xs, inputs.ref, with_xla=False)
    assert tuple(refs[DISPATCH]().shape) == empty
    assert refs[KERNEL]().shape == inputs.ref.shape


def test_a_model_that_refuses_an_empty_batch_gets_an_identity_for_dispatch():
    from kbench.backends import tensorflow as tfb

    inputs, xs = _tf_cell("dense", (("batch", 3), ("features", 8), ("units", 5)), (("activation", "linear"),))
    tried = []

    def refuses(*args):
        tried.append(tuple(a.shape[0] for a in args))
        raise ValueError("no empty batch here")

    dispatch = tfb.dispatch_of(refuses, inputs.ctx, False, xs, lambda y: y)
    assert tried == [(0,)]  # one input: cut once, not twice
    assert (dispatch().numpy() == xs[0]).all()  # the identity on the inputs


def test_each_profiler_session_starts_once_the_threads_left_spinning_are_idle(monkeypatch):
    """A NumPy GEMM's OpenBLAS threads spin ~0.1 s after the steady state's last visit: every profiler session waits
    for quiet first, so the profiled kernels are not slowed by them, then warms the floor up unprofiled."""
    from dataclasses import replace

    from kbench import backends
    from kbench.measure import decompose, timer

    events = []
    monkeypatch.setattr(timer, "wait_quiet", lambda max_s, *a, **k: events.append(("quiet", max_s)) or 0.0)

    def profile(fn, calls):
        events.append(("profile", calls))
        return 1e-5

    fake = replace(backends.get("tensorflow"), name="fake", profile=profile)
    monkeypatch.setitem(backends.BACKENDS, "fake", fake)
    refs = {"kernel": lambda: events.append(("call", None)), "dispatch": lambda: None}
    out = decompose.profiled("fake", refs, {"kernel": 1e-3, "dispatch": 1e-3})
    assert [r.name for r in out] == ["profiled_kernel"] and out[0].samples == (1e-5,) * decompose.PROFILE_SESSIONS
    quiet, warm = ("quiet", decompose.PROFILE_QUIESCE_MAX_S), [("call", None)] * 30
    assert events == [quiet, *warm, ("profile", 30)] * decompose.PROFILE_SESSIONS
