"""Finding a model by name and loading it into a :class:`kbench.model.spec.ModelSpec`.

A name is a model file's stem in a model folder (``--models-dir`` folders first, then the built-in ``models/``), a
``PATH.keras`` file, or a ``module:function`` factory (both read by :mod:`kbench.model.keras_spec`). A model file is
Python: loading it runs its code, then :func:`kbench.model.spec.validate_spec` checks its ``MODEL``.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path

from kbench.core.errors import ModelLoadError, ModelsDirError, UnknownModelError, one_line
from kbench.model import keras_spec
from kbench.model.factory import is_factory
from kbench.model.keras_file import is_keras_path
from kbench.model.spec import ModelSpec, validate_spec


def builtin_models_dir() -> Path:
    """The built-in models: ``kbench/_models`` inside an installed wheel, ``models/`` in a checkout."""
    package = Path(__file__).resolve().parents[1]  # src/kbench (or site-packages/kbench)
    packaged = package / "_models"
    if packaged.is_dir():
        return packaged
    return package.parents[1] / "models"


def model_dirs(extra: tuple[str | Path, ...] = ()) -> tuple[Path, ...]:
    """User folders first (so a user model can shadow a built-in one), then the built-in folder."""
    dirs = []
    for d in extra:
        p = Path(d).expanduser()
        if not p.is_dir():
            raise ModelsDirError(f"--models-dir {d} does not exist or is not a folder; pass an existing folder of model files")
        dirs.append(p.resolve())
    dirs.append(builtin_models_dir())
    return tuple(dirs)


def available_models(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """Model name -> file, without importing anything. Earlier folders win."""
    found: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.py")):
            if not f.name.startswith("_"):
                found.setdefault(f.stem, f)
    return found


def find_model(name: str, dirs: tuple[Path, ...]) -> Path:
    models = available_models(dirs)
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}; {hint}known models: {', '.join(sorted(models)) or 'none'} (see `kbench list`)"
    )


def load_model_file(path: str | Path) -> ModelSpec:
    """Import a model file and return its validated ``MODEL``. Model files are Python: this runs their code.
    A saved ``.keras`` file is read as data instead (:func:`kbench.model.keras_spec.load_spec`)."""
    if is_keras_path(str(path)):
        return keras_spec.load_spec(path)
    path = Path(path).resolve()
    module_name = f"kbench_user_model_{abs(hash(str(path)))}"
    try:
        spec_obj = importlib.util.spec_from_file_location(module_name, path)
        if spec_obj is None or spec_obj.loader is None:
            raise ModelLoadError(f"model file {path} cannot be imported as Python")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[module_name] = module
        try:
            spec_obj.loader.exec_module(module)
        finally:
            sys.modules.pop(module_name, None)
    except ModelLoadError:
        raise
    except BaseException as exc:  # a user's file may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModelLoadError(f"model file {path} failed to import: {type(exc).__name__}: {one_line(exc)}") from None
    if not hasattr(module, "MODEL"):
        raise ModelLoadError(f"model file {path} defines no MODEL; add MODEL = ModelSpec(...)")
    spec = validate_spec(module.MODEL, path)
    if not spec.source:
        object.__setattr__(spec, "source", str(path))
    return spec


def load_model(name: str, extra_dirs: tuple[str | Path, ...] = ()) -> ModelSpec:
    """A built-in or ``--models-dir`` model by name; a ``PATH.keras`` file or a ``module:function`` factory."""
    if is_keras_path(name) or is_factory(name):
        return keras_spec.load_spec(name)
    return load_model_file(find_model(name, model_dirs(extra_dirs)))

