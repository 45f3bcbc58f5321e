"""The options shared by several commands (``--model``, the sizes, ``--backend``, ...) and the helpers that read
them: ``KEY=VALUE`` pairs, the sizes of a run, and the command line that reproduces it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from kbench.core import errors

ModelOpt = typer.Option(..., "--model", "-m", help="Model name(s), repeatable or comma-separated (see `kbench list`).")
PathOpt = typer.Option(None, "--path", "-p", help="Call path(s), repeatable or comma-separated; numpy is always added.")
RuntimeOpt = typer.Option(None, "--runtime", help="Serving runtime(s) to time too, from the file Keras exports: onnxruntime, litert, openvino, or all; repeatable or comma-separated [default: none].")
BatchOpt = typer.Option(None, "--batch", help="Batch sizes, e.g. 1,32,1024.")
FeaturesOpt = typer.Option(None, "--features", help="Input features, e.g. 128.")
UnitsOpt = typer.Option(None, "--units", help="Dense units, e.g. 128.")
NOpt = typer.Option(None, "--n", help="Matrix size for matmul, e.g. 100.")
SizeOpt = typer.Option(None, "--size", help="Any model size as NAME=LIST, e.g. --size batch=1,8.")
OptionOpt = typer.Option(None, "--option", "-o", help="Model option KEY=VALUE, e.g. -o activation=relu.")
DtypeOpt = typer.Option("float32", "--dtype", help="float32 or float64.")
SeedOpt = typer.Option(0, "--seed", help="Seed of the shared weights and inputs.")
DirsOpt = typer.Option(None, "--models-dir", help="Extra folder of model files (they are Python and run as code).")
BackendOpt = typer.Option(None, "--backend", "-b", help="Keras backend(s): tensorflow, jax, torch; repeatable or comma-separated [default: tensorflow].")
DeviceOpt = typer.Option("cpu", "--device", help="cpu, gpu (an error when none is visible) or auto.")
PrecisionOpt = typer.Option("default", "--precision", help="default, or highest: full float32 matmuls (no TF32 on GPUs).")
ResidentOpt = typer.Option(None, "--resident/--host-only", help="Also time device-resident paths and the transfers apart [default: on a GPU only].")
QuickOpt = typer.Option(False, "--quick", help="A fast, rougher run: smaller budget, fewer samples, looser CI.")
RigorousOpt = typer.Option(False, "--rigorous", help="A slower, tighter run to report or gate on: 10 spawned worker "
                           "processes, 15 s per cell, no time goal (a few minutes for the default grid).")


def pairs(items: Optional[List[str]], flag: str) -> dict[str, str]:
    """``["activation=relu"]`` -> ``{"activation": "relu"}``; an item without ``=`` is refused, naming ``flag``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise errors.BadOptionError(f"{flag} {item!r} is not KEY=VALUE; write e.g. {flag} activation=relu")
        out[key.strip()] = value.strip()
    return out


def sizes(batch: str | None, features: str | None, units: str | None, n: str | None,
          size: Optional[List[str]]) -> dict[str, Any]:  # fmt: skip
    """The sizes given: ``--batch``, ``--features``, ``--units``, ``--n``, then each ``--size NAME=LIST``."""
    out = {k: v for k, v in (("batch", batch), ("features", features), ("units", units), ("n", n)) if v is not None}
    out.update(pairs(size, "--size"))
    return out


def argv() -> list[str]:
    """The command line's arguments, when kbench was started as ``kbench`` or ``python -m kbench``."""
    return sys.argv[1:] if sys.argv and Path(sys.argv[0]).name in ("kbench", "__main__.py") else []
