"""``kbench export``: the standalone NumPy module round trip, and the refusal of a module that fails parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kbench.model import autotwin, numpy_export
from kbench.model.twins.dense import ACTIVATIONS, Activation
from test_autotwin import MODELS, build_models
from test_twins_conv import MODELS as CONV_MODELS
from test_twins_recurrent import MODELS as RNN_MODELS

FORBIDDEN = ("keras", "tensorflow", "jax", "torch")


# real small models: an MLP, an embedding, a CNN, a text CNN (Embedding, Conv1D, GlobalMaxPooling1D), a GRU
# classifier and stacked LSTMs
SOURCES = {**{k: MODELS[k] for k in ("sequential_mlp", "embedding")},
           **{k: CONV_MODELS[k] for k in ("small_cnn", "text_cnn")},
           **{k: RNN_MODELS[k] for k in ("gru_classifier", "lstm_stack")}}  # fmt: skip


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    build_models(folder, list(SOURCES), SOURCES)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SOURCES))
def test_export_round_trip_imports_numpy_only(mlp, tmp_path, name):
    out = tmp_path / f"{name}_numpy.py"
    done = numpy_export.export(str(mlp / f"{name}.keras"), out)
    assert done.check.ok and done.check.max_rel_err <= done.check.tol
    assert out.exists() and out.with_suffix(".npz").exists()
    script = textwrap.dedent(f"""\
        import json, sys
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        import {out.stem} as m
        data = np.load({str(mlp / f"{name}.npz")!r})
        y = m.predict(data["x0"])
        print(json.dumps({{"err": float(np.max(np.abs(y - data["y"]))), "scale": float(np.max(np.abs(data["y"]))),
                          "dtype": str(y.dtype), "loaded": sorted(k for k in sys.modules if k.split(".")[0] in {FORBIDDEN!r})}}))
    """)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["loaded"] == [] and r["dtype"] == "float32"
    assert r["err"] <= 1e-5 * max(r["scale"], 1.0), r


@pytest.mark.slow
def test_export_refuses_a_twin_that_fails_parity(mlp, tmp_path, monkeypatch):
    """A planted bug in the generated code (|z| for relu): the check fails, exit 1, and nothing is written."""
    monkeypatch.setitem(ACTIVATIONS, "relu", Activation("np.abs({})"))
    out = tmp_path / "broken_numpy.py"
    with pytest.raises(numpy_export.ExportParityError) as info:
        numpy_export.export(str(mlp / "sequential_mlp.keras"), out)
    assert info.value.exit_code == 1 and "nothing was written" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_module_source_is_standalone():
    """The module's text names no backend, and its weights load without pickle."""
    from kbench.model import keras_file

    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 3], "name": "in"}},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "gelu"}}]}}
    twin = autotwin.build(keras_file.graph_from_config(config, "m.keras"))
    source = numpy_export.module_source(twin, "m_numpy.npz", "m.keras")
    compile(source, "m_numpy.py", "exec")
    assert "allow_pickle=False" in source and "def predict(x)" in source
    assert not any(f"import {b}" in source for b in FORBIDDEN)
