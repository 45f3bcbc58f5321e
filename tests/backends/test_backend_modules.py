"""The backend registry (:mod:`kbench.backends`): complete, open to one more entry, and each backend's hooks for
real, one short subprocess per installed backend (the parent never imports a backend)."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from kbench import backends
from kbench.core import errors
from kbench.backends import Backend, DeviceOps, Resident
from kbench.backends.base import PathContext
from kbench.measure.callpaths import PATHS, paths_for
from kbench.orchestrate.planning import parse_backends
from kbench.orchestrate.runner import worker_env

NAMES = ("tensorflow", "jax", "torch")


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the {module} backend; .ci/run installs it")
        pytest.skip(f"{module} is not installed")


def test_the_registry_is_complete():
    assert tuple(backends.BACKENDS) == NAMES == backends.MODULES
    for name, b in backends.BACKENDS.items():
        assert b.name == name and b.module and b.install.startswith("pip install")
        assert all(callable(f) for f in (b.env, b.configure, b.fingerprint, b.check_dtype))
        assert isinstance(dict(b.env_defaults), dict)
    for name in ("jax", "torch"):  # TensorFlow has no device-resident paths: its resident is None on purpose
        r = backends.get(name).resident
        assert callable(r.open) and all((r.place_runs, r.call_runs, r.sync_runs, r.to_host_runs))
    assert backends.get("tensorflow").resident is None
    with pytest.raises(errors.BackendError, match="unknown backend 'tf'"):
        backends.get("tf")


def test_importing_the_registry_imports_no_backend():
    code = ("import sys, kbench.backends, kbench.measure.callpaths, kbench.orchestrate.planning, kbench.orchestrate.runner, kbench.machine.fingerprint; "
            "print(sorted({'tensorflow', 'jax', 'torch', 'keras'} & set(sys.modules)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def _fake() -> Backend:
    """A backend whose 'device' is NumPy itself: enough to drive the generic device paths in this process."""
    ops = DeviceOps(device="fake:0", place=lambda arrays: [np.array(a) for a in arrays], sync=lambda y: y,
                    to_host=lambda y: np.array(y), inference=lambda call: call)  # fmt: skip
    return Backend(name="fake", module="numpy", install="pip install fake",
                   env=lambda device: {"FAKE_DEVICE": device}, env_defaults={"FAKE_LOG": "quiet"}, configure=lambda precision: (False, False),
                   fingerprint=lambda: {"fake": "1"}, check_dtype=lambda dtype, environ: None,
                   resident=Resident(lambda: ops, "fake.put(x)", "model(x)", "fake.wait(y)", "fake.get(y)"))  # fmt: skip


def test_one_registry_entry_adds_a_backend(monkeypatch, dense):
    from kbench.present.terminal import list_lines

    monkeypatch.setitem(backends.BACKENDS, "fake", _fake())
    assert parse_backends(["tensorflow,fake"]) == ("tensorflow", "fake")
    assert paths_for("fake", tuple(PATHS)) == ("numpy",)
    assert paths_for("fake", tuple(PATHS), resident=True) == ("numpy", "call@device", "h2d", "d2h")
    env = worker_env("fake", "cpu")
    assert (env["KERAS_BACKEND"], env["FAKE_DEVICE"], env["FAKE_LOG"]) == ("fake", "cpu", "quiet")
    assert "  call@device       timed: " in "\n".join(list_lines([]))
    assert any("fake       runs: model(x), then fake.wait(y)" in line for line in list_lines([]))
    assert backends.get("fake").setup_device("auto", "highest") == ("cpu", "float32")
    with pytest.raises(errors.DeviceError, match="no GPU is visible to the fake backend"):
        backends.get("fake").setup_device("gpu", "default")

    x = np.arange(6.0).reshape(2, 3)
    ctx = PathContext(dense, {}, {"batch": 2}, {}, "float64")
    run = {p: PATHS[p].prepare(ctx, lambda x, training: x * 2, "fake")({"x": x}) for p in ("call@device", "h2d", "d2h")}
    assert np.array_equal(run["call@device"](), x * 2) and np.array_equal(run["h2d"](), x)
    assert np.array_equal(run["d2h"](), x * 2) and run["d2h"]() is not run["d2h"]()


def test_each_backend_declares_its_own_paths_and_only_registry_paths():
    """A backend's Impls (``Backend.paths``) are what the registry serves for it; each names a registry path, and a
    path that serves every backend (numpy) or every resident backend (call@device, h2d, d2h) is no backend's own."""
    for name, b in backends.BACKENDS.items():
        assert set(b.paths) <= set(PATHS), name
        assert not set(b.paths) & {"numpy", "call@device", "h2d", "d2h"}
        for path, impl in b.paths.items():
            assert PATHS[path].impl(name) is impl
        assert callable(b.references)
    assert set(backends.get("tensorflow").paths) == {"predict", "predict_on_batch", "call", "compiled", "xla",
                                                     "onnxruntime", "litert", "openvino"}  # the serving runtimes too
    assert "compiled@device" in backends.get("jax").paths and "compiled@device" in backends.get("torch").paths


def test_the_worker_reaches_a_backend_only_through_its_hooks(monkeypatch):
    """Threads, references and the device-peak counters are the Backend's own hooks; a backend without them gets
    nothing (no thread settings of its own, no decomposition, no device peak)."""
    from kbench.backends import threads
    from kbench.backends.threads import apply_threads
    from kbench.measure import latency
    from kbench.measure.decompose import reference_fns

    fake = _fake()
    monkeypatch.setitem(backends.BACKENDS, "fake", fake)
    monkeypatch.setattr(threads, "blas_threads", lambda read_pools, n: [n])  # this process's BLAS pools left alone
    assert apply_threads("fake", 2, lambda: []) == {"threads": 2, "blas_threads": [2]}
    assert reference_fns("fake", None, list, [], None, False) == {}
    latency.reset_device_peak("fake", "device")
    assert latency.device_peak_bytes("fake", "device") is None

    calls = []
    resident = replace(fake.resident, reset_peak=lambda: calls.append("reset"), peak_bytes=lambda: 42)
    hooked = replace(fake, resident=resident, set_threads=lambda n: {"fake_threads": n},
                     references=lambda ctx, build, xs, y, with_xla: {"kernel": lambda: (ctx, with_xla)})  # fmt: skip
    monkeypatch.setitem(backends.BACKENDS, "fake", hooked)
    assert apply_threads("fake", 3, lambda: [])["fake_threads"] == 3
    assert reference_fns("fake", "ctx", list, [], None, True)["kernel"]() == ("ctx", True)
    latency.reset_device_peak("fake", "host")
    assert latency.device_peak_bytes("fake", "host") is None and calls == []  # a host path: never the device's peak
    latency.reset_device_peak("fake", "device")
    assert latency.device_peak_bytes("fake", "device") == 42 and calls == ["reset"]


def test_a_path_context_gives_the_inputs_in_the_specs_order(dense, dot):
    arrays = {t.name: np.full(2, i) for i, t in enumerate(reversed(dot.inputs))}
    ctx = PathContext(dot, {}, {"batch": 2}, {}, "float32")
    assert [a[0] for a in ctx.input_list(arrays)] == [1, 0] and [a[0] for a in ctx.keras_x(arrays)] == [1, 0]
    x = np.zeros(3)
    assert PathContext(dense, {}, {"batch": 2}, {}, "float32").keras_x({dense.inputs[0].name: x}) is x


@pytest.mark.parametrize("backend", NAMES)
@pytest.mark.parametrize("device", ["cpu", "gpu", "auto"])
def test_worker_env_per_device(monkeypatch, backend, device):
    for var in ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(var, raising=False)
    env = worker_env(backend, device)
    assert env["KERAS_BACKEND"] == backend and env["PATH"] == os.environ["PATH"]
    assert env.get("CUDA_VISIBLE_DEVICES") == ("" if device == "cpu" else None)
    assert env.get("JAX_PLATFORMS") == ("cpu" if device == "cpu" and backend == "jax" else None)
    assert env.get("TF_CPP_MIN_LOG_LEVEL") == ("2" if backend == "tensorflow" else None)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own setting wins over a default
    assert worker_env(backend, device)["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_float64_on_jax_needs_x64_and_nothing_else_does():
    message = "float64 on the jax backend needs 64-bit mode; set JAX_ENABLE_X64=1 or use float32"
    for environ in ({}, {"JAX_ENABLE_X64": "0"}):
        with pytest.raises(errors.DtypeError) as err:
            backends.check_plan(("tensorflow", "jax"), "float64", environ)
        assert str(err.value) == message
    for environ in ({"JAX_ENABLE_X64": "1"}, {"JAX_ENABLE_X64": "True"}):
        backends.check_plan(("jax",), "float64", environ)
    backends.check_plan(NAMES, "float32", {})
    backends.check_plan(("tensorflow", "torch"), "float64", {})


PROBE = """
import json, numpy as np, keras
from kbench.backends import get
from kbench.machine.fingerprint import backend_fingerprint
from kbench.core.errors import DeviceError
b = get(keras.backend.backend())
out = {"fp": backend_fingerprint(), "auto": b.setup_device("auto", "default")}
try:
    b.setup_device("gpu", "default")
except DeviceError as exc:
    out["gpu_error"] = str(exc)
if b.resident:
    ops = b.resident.open()
    y = ops.sync(ops.inference(lambda xs: xs[0] * 2)(ops.place([np.arange(3.0)])))
    first, second = ops.to_host(y), ops.to_host(y)
    out["to_host"] = [first.tolist(), type(first).__name__, first is not second]
print(json.dumps(out, default=str))
"""

EXPECTED = {
    "tensorflow": ("tensorflow", "intra_op_threads", "inter_op_threads", "onednn_env", "onednn_built"),
    "jax": ("jax", "jaxlib", "x64", "xla_flags"),
    "torch": ("torch", "num_threads", "interop_threads", "mkldnn", "mkl"),
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", NAMES)
def test_each_backend_for_real(monkeypatch, backend):
    """In the worker's environment for --device cpu (GPUs hidden, so this holds on any machine): the fingerprint,
    --device gpu refused in one line, the device hooks' round trip."""
    need(backend)
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=worker_env(backend, "cpu"), capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    fp = out["fp"]
    assert fp["backend"] == backend and "fingerprint_error" not in fp and fp["devices"] and fp["blas"]
    assert all(k in fp for k in EXPECTED[backend])
    assert out["auto"] == ["cpu", "float32"]
    assert out["gpu_error"] == f"--device gpu, but no GPU is visible to the {backend} backend; use --device cpu or auto"
    if backend == "jax":
        assert fp["x64"] is False and fp["devices"][0].lower().startswith(("tfrt_cpu", "cpu"))
    if backend == "torch":
        assert fp["devices"] == ["cpu"] and fp["num_threads"] >= 1
    if backend != "tensorflow":
        assert out["to_host"] == [[0.0, 2.0, 4.0], "ndarray", True]


def _xplane(tmp_path, events: list[tuple[str, int, int]]) -> str:
    """An XPlane file with one line of ``(name, offset_ps, duration_ps)`` events."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add()
    line = plane.lines.add()
    for i, (name, offset, duration) in enumerate(events, start=1):
        plane.event_metadata[i].name = name
        ev = line.events.add()
        ev.metadata_id, ev.offset_ps, ev.duration_ps = i, offset, duration
    path = tmp_path / "t.xplane.pb"
    path.write_bytes(space.SerializeToString())
    return str(path)


def test_a_profile_that_missed_some_calls_kernels_gives_no_figure(tmp_path):
    need("tensorflow")
    from kbench.backends.tensorflow import _kernel_seconds

    calls = [("FunctionRun", i * 10**7, 10**6) for i in range(4)]
    ops = [("model/dense/matmul:_MklMatMul", i * 10**7 + 10**5, 5 * 10**5) for i in range(4)]
    read = [("model/dense/ReadVariableOp:ReadVariableOp", i * 10**7, 10**4) for i in range(4)]
    assert _kernel_seconds(_xplane(tmp_path, calls + ops + read), 4) == pytest.approx(5e-7)
    assert math.isnan(_kernel_seconds(_xplane(tmp_path, calls + ops[:3] + read), 4))  # one call's kernel unseen
    assert math.isnan(_kernel_seconds(_xplane(tmp_path, calls + read), 4))


def test_the_profilers_kernel_intervals_count_once_where_they_overlap():
    from kbench.backends.tensorflow import union_ps  # the module imports TensorFlow only inside its functions

    assert union_ps([]) == 0
    assert union_ps([(0, 10), (5, 20), (30, 40)]) == 30  # [0, 20) and [30, 40)
    assert union_ps([(30, 40), (0, 10), (2, 3)]) == 20  # any order; one inside another counts once
