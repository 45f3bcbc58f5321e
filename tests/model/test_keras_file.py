"""Reading a user's .keras file without Keras, and every bad input through the real CLI (exit 2, one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kbench.core.errors import UsageError
from kbench.model import factory, keras_file, keras_spec

POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}


def _input(name="x", shape=(None, 4), **extra):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": list(shape), "dtype": "float32", "name": name, **extra}}


def _dense(name="d", units=3, module="keras.layers", cls="Dense"):
    return {"module": module, "class_name": cls, "registered_name": None if module.startswith("keras") else f"x>{cls}",
            "config": {"name": name, "units": units, "activation": "relu", "use_bias": True, "dtype": POLICY}}


def sequential(*layers) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": list(layers)}}


def write_keras(path: Path, config: dict | None, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if config is not None:
            z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def kbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KBENCH_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "kbench", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)  # fmt: skip


# -- parsing -------------------------------------------------------------------------------------------------------


def test_sequential_graph_and_spec(tmp_path):
    path = write_keras(tmp_path / "m.keras", sequential(_input(shape=(None, 4)), _dense("d1", 5), _dense("d2", 2)))
    graph = keras_file.read_graph(path)
    assert [i.shape for i in graph.inputs] == [(4,)] and graph.output == "d2" and graph.dtype == "float32"
    assert [(n.name, n.inputs) for n in graph.nodes] == [("d1", ("x",)), ("d2", ("d1",))]
    spec = keras_spec.load_spec(path)
    assert spec.name == "m.keras" and spec.no_twin == "" and spec.dtypes == ("float32",)
    assert spec.output_shape({"batch": 7}) == (7, 2)
    assert spec.flops({"batch": 2}) == 2 * (2 * 4 * 5 + 5 + 5 + 2 * 5 * 2 + 2 + 2)  # matmul, bias, relu per layer
    assert spec.reduction({"batch": 1}) == 4 + 5
    assert [t.name for t in spec.weights] == ["d1/kernel", "d1/bias", "d2/kernel", "d2/bias"]


def test_factory_names_are_not_paths():
    assert factory.is_factory("my_pkg.models:make_mlp")
    for name in ("dense", "models/x.py:f", "C:\\x.keras", "a.py:f", "mod:", ":f", "a b:f"):
        assert not factory.is_factory(name), name


@pytest.mark.parametrize("config,expected", [
    (sequential(_input(ragged=True), _dense()), "input 'x' is ragged"),
    (sequential(_input(sparse=True), _dense()), "input 'x' is sparse"),
    (sequential({**_input(), "config": {**_input()["config"], "dtype": "string"}}, _dense()), "dtype 'string'"),
    (sequential(_input(shape=(None, None, 4)), _dense()), "every dimension but the batch fixed"),
    (sequential(_input(shape=(8, 4)), _dense()), "fixes its batch size to 8"),
    (sequential(_input(), _dense(module="my_layers", cls="MyDense")), "custom class 'MyDense' from module 'my_layers'"),
    (sequential(_input(), {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "lam"}}), "Lambda"),
    ({"module": "my_models", "class_name": "MyModel", "config": {}}, "'MyModel' ('my_models'), a subclassed model"),
    (sequential(_input(), {**_dense(), "config": {**_dense()["config"],
                                                   "dtype": {**POLICY, "config": {"name": "mixed_float16"}}}}),
     "mixed precision is not supported"),
])  # fmt: skip
def test_bad_configs_are_refused_in_one_line(tmp_path, config, expected):
    path = write_keras(tmp_path / "bad.keras", config)
    with pytest.raises(UsageError) as info:
        keras_spec.load_spec(path)
    message = str(info.value)
    assert expected in message and "\n" not in message


# -- bad input through the real CLI: exit 2, one line, nothing written ---------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.keras"
    text.write_text("this is not a model")
    return {
        "not a zip": (text, "not a zip archive"),
        "no config.json": (write_keras(tmp_path / "empty.keras", None, {"model.weights.h5": b""}), "without config.json"),
        "custom layer": (write_keras(tmp_path / "custom.keras", sequential(_input(), _dense(module="acme.layers", cls="Fancy"))),
                         "custom objects are not supported"),
        "ragged input": (write_keras(tmp_path / "ragged.keras", sequential(_input(ragged=True), _dense())), "ragged"),
        "string input": (write_keras(tmp_path / "text.keras", sequential(
            {**_input(), "config": {**_input()["config"], "dtype": "string"}}, _dense())), "numeric arrays only"),
        "missing file": (tmp_path / "nowhere.keras", "does not exist"),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["not a zip", "no config.json", "custom layer", "ragged input", "string input",
                                  "missing file"])  # fmt: skip
def test_bad_model_file_exits_2_with_one_line(tmp_path, case):
    path, expected = _bad_files(tmp_path)[case]
    out = tmp_path / "reports"
    proc = kbench("run", "--model", str(path), "--quick", "--processes", "1", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbench: error: ") and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_wrong_dtype_and_bad_factory_exit_2(tmp_path):
    path = write_keras(tmp_path / "m.keras", sequential(_input(), _dense()))
    proc = kbench("parity", "--model", str(path), "--dtype", "float64")
    assert proc.returncode == 2 and "computes in float32" in proc.stderr and "--dtype float32" in proc.stderr
    proc = kbench("run", "--model", "no_such_module_here:make", "--quick", "--processes", "1", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "cannot import no_such_module_here:make" in lines[0]


def test_export_refuses_bad_paths_and_models(tmp_path):
    path = write_keras(tmp_path / "m.keras", sequential(_input(), _dense()))
    for out, expected in ((tmp_path / "missing" / "m_numpy.py", "does not exist"), (tmp_path / "m.txt", "must name a "
                          "Python module"), (Path("/proc/m_numpy.py"), "cannot be written"), (tmp_path, "is a folder")):  # fmt: skip
        proc = kbench("export", str(path), "--out", str(out))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (out, proc.stderr)
    conv = {"module": "keras.layers", "class_name": "Conv1DTranspose",
            "config": {"name": "conv", "dtype": POLICY, "filters": 2, "kernel_size": [3]}}  # fmt: skip
    no_twin = write_keras(tmp_path / "conv.keras", sequential(_input(shape=(None, 8, 2)), conv))
    proc = kbench("export", str(no_twin), "--out", str(tmp_path / "conv_numpy.py"), "--no-timing")
    assert proc.returncode == 2 and "no NumPy twin (layer 'conv'" in proc.stderr
    assert not (tmp_path / "conv_numpy.py").exists()
    # a layer that has a twin, with a broken config (no kernel_size): refused in one line, before any worker
    broken = {"module": "keras.layers", "class_name": "Conv1D", "config": {"name": "conv", "dtype": POLICY}}
    path = write_keras(tmp_path / "broken.keras", sequential(_input(shape=(None, 8, 2)), broken))
    for args in (("export", str(path), "--out", str(tmp_path / "broken_numpy.py")), ("run", "--model", str(path))):
        proc = kbench(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "layer 'conv' (Conv1D) has a broken config: kernel_size=None: expected 1 integer(s) from 1 to 2147483647" in lines[0]


def test_a_file_keras_refuses_in_the_worker_exits_2_with_one_line(tmp_path):
    """A config the parent accepts with weights Keras cannot read: the worker's refusal is the file's (exit 2, one
    line), not a worker failure (exit 1)."""
    path = write_keras(tmp_path / "m.keras", sequential(_input(), _dense()), {"model.weights.h5": b"not hdf5"})
    proc = kbench("parity", "--model", str(path), "--batch", "1", "--path", "call")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert lines[0].startswith("kbench: error: m.keras: Keras cannot load it (") and "worker failure" not in proc.stdout
