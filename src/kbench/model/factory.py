"""A ``module:function`` factory (``--model my_pkg.models:make_mlp``), resolved to a saved ``.keras`` file.

It is resolved in a child process: it imports the module, calls the function with Keras on the first backend and
saves the model to a ``.keras`` file in kbench's cache folder (``$KBENCH_CACHE_DIR/factories``), keyed on the
module's source; from there on it is a ``.keras`` file (:mod:`kbench.model.keras_file`). So its module must be
importable from the current folder or ``PYTHONPATH``, and its layers must be Keras' own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kbench.core.errors import ModelLoadError


def is_factory(name: str) -> bool:
    """``package.module:function``: a dotted module, a colon, a name (never a path: no slash, no .py)."""
    module, sep, fn = name.partition(":")
    ok = sep and module and fn and "/" not in name and "\\" not in name and not module.endswith(".py")
    return bool(ok) and all(p.isidentifier() for p in (*module.split("."), fn))


_FACTORY_CHILD = """
import importlib, json, sys
module, function, out = sys.argv[1:4]
def fail(message):
    print(json.dumps({"error": " ".join(str(message).split())}))
    sys.exit(0)
try:
    fn = getattr(importlib.import_module(module), function)
except Exception as exc:
    fail(f"cannot import {module}:{function} ({type(exc).__name__}: {exc}); make its module importable from the "
         "current folder or PYTHONPATH")
import keras
try:
    model = fn()
except Exception as exc:
    fail(f"{module}:{function}() raised {type(exc).__name__}: {exc}")
if not isinstance(model, keras.Model):
    fail(f"{module}:{function}() returned a {type(model).__name__}, not a keras.Model; return a built model")
try:
    model.save(out)
except Exception as exc:
    fail(f"the model of {module}:{function}() cannot be saved ({type(exc).__name__}: {exc}); kbench needs a model "
         "of Keras' own layers (custom objects are not supported)")
print(json.dumps({"path": out}))
"""


def factory_dir() -> Path:
    root = os.environ.get("KBENCH_CACHE_DIR") or Path.home() / ".cache" / "kbench"
    return Path(root) / "factories"


def resolve_factory(name: str, backend: str | None = None) -> Path:
    """Call ``module:function`` in a child process (the parent never imports Keras) and save its model as a
    ``.keras`` file under :func:`factory_dir`; every worker then loads that file, so they share its weights."""
    module, _, function = name.partition(":")
    folder = factory_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{module}.{function}.keras"
    tmp = folder / f".{module}.{function}.{os.getpid()}.keras"
    env = {**os.environ, "KERAS_BACKEND": backend or os.environ.get("KERAS_BACKEND", "tensorflow"),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", _FACTORY_CHILD, module, function, str(tmp)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {"error": f"the factory's process failed: {_tail(proc.stderr)}"}
    if "error" in answer:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(f"--model {name}: {answer['error']}")
    os.replace(tmp, out)
    return out


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
