"""``kbench new-model NAME [--dir DIR] [--force]``: scaffold a model file (see :mod:`kbench.model.scaffold`).

Exit codes: 0 written; 2 refused (a bad name, a built-in's name, an existing file, a folder that cannot be
written), one line on stderr naming the problem and the fix.
"""

from __future__ import annotations

from pathlib import Path

import typer

from kbench.model import scaffold


def new_model(
    name: str = typer.Argument(..., help="The model's name: a Python identifier; the file is DIR/NAME.py."),
    folder: Path = typer.Option(scaffold.DEFAULT_DIR, "--dir", help="Folder of the new file, created if missing; "
                             "then pass it as --models-dir."),  # fmt: skip
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file, or shadow a built-in model."),
) -> int:
    """Write a model file that passes parity as written (one Dense layer), with every part to edit marked."""
    made = scaffold.new_model(name, folder, force)
    verb = "overwrote" if made.overwrote else "created"
    typer.echo(f"{verb} {made.path}: edit its EDIT parts (arrays, build_keras, forward, flops, reduction), then")
    typer.echo(f"  kbench parity --model {name} --models-dir {folder}")
    typer.echo(f"  kbench run --model {name} --models-dir {folder}")
    return 0


def register(app: typer.Typer) -> None:
    app.command("new-model")(new_model)
