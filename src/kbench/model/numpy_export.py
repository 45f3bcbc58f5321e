"""``kbench export``: write a user's Keras model as a standalone NumPy module, once it has passed parity.

The module is the twin's generated source (:mod:`kbench.model.autotwin`, the very code the ``numpy`` path of
``kbench run --model PATH.keras`` runs) plus ``predict(x)``; its weights go in an ``.npz`` beside it (same stem),
read with ``allow_pickle=False``. It imports NumPy only (SciPy's ``erfc`` for GELU when SciPy is installed, else the
standard library's). Before anything is written, the module and its weights are staged in a temporary folder and
imported in a Keras worker (a child process; this process never imports Keras), whose ``predict`` is checked
against the model's Keras call at several batch sizes with kbench's parity rule (:mod:`kbench.measure.parity`). A module
that fails is refused (:class:`ExportParityError`, exit 1) and nothing is written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kbench.core.errors import KbenchError, UsageError
from kbench.core.files import unwritable
from kbench.model import autotwin, keras_file, keras_spec

CHECK_BATCHES = (1, 7, 64)  # parity of the exported module against Keras at these batch sizes
TIMING_BATCHES = "1,8,64,512"


class ExportParityError(KbenchError):
    """The exported module does not compute what the Keras model computes: nothing is written (exit 1)."""


class ExportPathError(UsageError):
    """The export cannot be written where it was asked to go."""


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    max_rel_err: float  # the largest scaled error over every checked batch, against the float64 reference
    tol: float
    batches: tuple[int, ...]
    message: str = ""


@dataclass(frozen=True)
class Exported:
    module: Path
    weights: Path
    check: ExportCheck


def check_out_path(out: str | Path) -> tuple[Path, Path]:
    """(module path, weights path) for ``--out``; :class:`ExportPathError` in one line when it cannot be written."""
    p = Path(out)
    if p.is_dir():
        raise ExportPathError(f"--out {out} is a folder; name the module file, e.g. {p / 'model_numpy.py'}")
    if p.suffix != ".py" or not p.stem.isidentifier():
        raise ExportPathError(f"--out {out} must name a Python module file such as model_numpy.py (an identifier, "
                              "then .py)")  # fmt: skip
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ExportPathError(f"--out {out}: the folder {folder} does not exist; create it or pick another path")
    reason = unwritable(folder / p.name)
    if reason:
        raise ExportPathError(f"--out {out} cannot be written ({reason}); pick a writable folder")
    return p, p.with_suffix(".npz")


def module_source(twin: autotwin.Twin, weights_file: str, model_label: str) -> str:
    """The standalone module: the twin's source, its weights' names, the loader and ``predict``."""
    names = tuple(k for k, _ in twin.weights)
    inputs = tuple(i.name for i in twin.graph.inputs)
    dtypes = tuple("int64" if i.name in twin.index_inputs else twin.graph.dtype for i in twin.graph.inputs)
    head = ('"""A Keras model as plain NumPy, written by `kbench export` after a parity check against Keras.\n\n'
            "predict(x) returns what the model's call returns. x: one array for a one-input model; a list in INPUTS\n"
            "order or a dict by input name otherwise. Needs NumPy only; the weights are the .npz file beside this one.\n"
            '"""\n\n')  # fmt: skip
    tail = f'''

import os as _os

MODEL = {model_label!r}
INPUTS = {inputs!r}
INPUT_DTYPES = {dtypes!r}
WEIGHT_NAMES = {names!r}

with np.load(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), {weights_file!r}), allow_pickle=False) as _f:
    W = {{name: _f[f"w{{i}}"] for i, name in enumerate(WEIGHT_NAMES)}}


def predict(x):
    """The model's output for x (NumPy arrays in, a NumPy array out)."""
    if isinstance(x, dict):
        xs = [x[name] for name in INPUTS]
    else:
        xs = [x] if len(INPUTS) == 1 else list(x)
    return forward(W, {{name: np.asarray(v, dtype=d) for name, v, d in zip(INPUTS, xs, INPUT_DTYPES)}})
'''
    return head + twin.source + tail


def stage(twin: autotwin.Twin, folder: Path, stem: str, model_label: str) -> tuple[Path, Path]:
    """Write the module into ``folder`` (a staging folder): (module, where its weights go). The weights are written
    by the checking child process, which reads them with Keras."""
    module, npz = folder / f"{stem}.py", folder / f"{stem}.npz"
    module.write_text(module_source(twin, npz.name, model_label), encoding="utf-8")
    return module, npz


# -- the check, in a Keras child process -----------------------------------------------------------------------------

_CHILD = """
import importlib.util, json, sys
import numpy as np
import keras
from kbench.model import keras_spec
from kbench.measure import parity
from kbench.model.weights import make_inputs

model_path, module_path, npz_path, names = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
batches, seed = json.loads(sys.argv[5]), int(sys.argv[6])
spec = keras_spec.load_spec(model_path)
weights = {k: np.asarray(v) for k, v in spec.own_weights(keras, spec.dtypes[0]).items()}
np.savez(npz_path, **{f"w{i}": weights[name] for i, name in enumerate(names)})
loaded = importlib.util.spec_from_file_location("kbench_exported", module_path)
module = importlib.util.module_from_spec(loaded)
loaded.loader.exec_module(module)
model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
report = {"ok": True, "max_rel_err": 0.0, "tol": 0.0, "message": ""}
for batch in batches:
    inputs = make_inputs(spec, {"batch": batch}, spec.dtypes[0], seed)
    xs = [inputs[t.name] for t in spec.inputs]
    keras_out = keras.ops.convert_to_numpy(model(xs if len(xs) > 1 else xs[0], training=False))
    exported = np.asarray(module.predict(xs if len(xs) > 1 else xs[0]))
    ref = parity.reference(spec, weights, inputs, {})
    mags = parity.magnitude(spec, weights, inputs, {})
    tol = parity.tolerance(spec.dtypes[0], spec.reduction({"batch": batch}))
    r = parity.check("export", exported, ref, keras_out, tol, mags)
    report["tol"] = tol
    report["max_rel_err"] = max(report["max_rel_err"], r.max_rel_err) if r.max_rel_err == r.max_rel_err else float("inf")
    if not r.ok and report["ok"]:
        report.update(ok=False, message=f"at batch {batch}: {r.message}")
print(json.dumps(report))
"""


def check(model_path: Path, module: Path, npz: Path, names: tuple[str, ...], backend: str = "tensorflow",
          seed: int = 0, batches: tuple[int, ...] = CHECK_BATCHES) -> ExportCheck:  # fmt: skip
    """In a Keras child process: write the saved weights (``names``, in order) to ``npz``, import the staged
    ``module`` and compare its ``predict`` with the model's call and the float64 reference at ``batches``, with
    kbench's parity tolerance and error scale."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    args = [str(model_path), str(module), str(npz), json.dumps(list(names)), json.dumps(list(batches)), str(seed)]
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["no output"]
        return ExportCheck(False, float("nan"), float("nan"), batches, f"the check failed to run: {tail[0]}")
    r = json.loads(lines[-1])
    return ExportCheck(bool(r["ok"]), float(r["max_rel_err"]), float(r["tol"]), batches, r["message"])


def export(model: str, out: str | Path, backend: str = "tensorflow", seed: int = 0) -> Exported:
    """Check, then write ``out`` (the module) and its ``.npz``; raise :class:`ExportParityError` (nothing written)
    when the module does not match Keras, a :class:`UsageError` on bad input."""
    module_path, npz_path = check_out_path(out)
    spec = keras_spec.load_spec(model)
    if spec.forward is None:
        raise UsageError(f"cannot export {spec.name}: {spec.no_twin}; `kbench run --model {model}` still times its "
                         "Keras paths")  # fmt: skip
    twin = autotwin.build(keras_file.read_graph(spec.source))
    with tempfile.TemporaryDirectory(prefix="kbench-export-") as tmp:
        staged, staged_npz = stage(twin, Path(tmp), module_path.stem, spec.name)
        result = check(Path(spec.source), staged, staged_npz, tuple(k for k, _ in twin.weights), backend, seed)
        if not result.ok:
            raise ExportParityError(f"the NumPy module does not match Keras ({result.message}); nothing was written")
        shutil.copyfile(staged_npz, npz_path)
        shutil.copyfile(staged, module_path)
    return Exported(module_path, npz_path, result)
