"""The ``kbench`` command: the typer app, with each group of commands registered on it in the order ``kbench --help``
lists them. Each group is a thin layer over :mod:`kbench.api`; options shared by several commands are in
:mod:`kbench.cli.options`, exit codes come from :mod:`kbench.cli.exitcodes`.
"""

from __future__ import annotations

import typer

from kbench.cli import compare, export, history, info, measure, merge, newmodel, report
from kbench.cli.exitcodes import OneLineErrors

app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Measure what each Keras call path costs next to a hand-written NumPy twin.",
)

measure.register(app)  # run, parity
report.register(app)  # report
info.register(app)  # peak, list, env
compare.register(app)  # compare
history.register(app)  # history, results
merge.register(app)  # merge
newmodel.register(app)  # new-model
export.register(app)  # export


def main() -> None:
    app()


if __name__ == "__main__":
    main()
