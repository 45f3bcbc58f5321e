"""The ``kbench`` command: the typer app, with each group of commands registered on it in the order ``kbench --help``
lists them. Each group is a thin layer over :mod:`kbench.api`; options shared by several commands are in
:mod:`kbench.cli.options`, exit codes come from :mod:`kbench.cli.exitcodes`.
"""

from __future__ import annotations

import os
import sys

import typer

from kbench.cli import compare, export, history, info, measure, merge, newmodel, report
from kbench.cli.exitcodes import OneLineErrors
from kbench.core.version import __version__


class PanelledGroup(OneLineErrors):
    """``kbench --help`` with its commands listed under the panels of :data:`PANELS` (plain text: no rich markup)."""

    def format_commands(self, ctx, formatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                panel = getattr(command, "rich_help_panel", None) or "Commands"
                rows.setdefault(panel, []).append((name, command.get_short_help_str(formatter.width - 20)))
        for panel, entries in rows.items():
            with formatter.section(panel):
                formatter.write_dl(entries)


app = typer.Typer(
    cls=PanelledGroup,
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

PANELS = {  # the panels of `kbench --help`, in order; a command not named here lands in typer's default panel
    "Measure": ("run", "parity", "peak", "env"),
    "Saved runs": ("report", "results", "compare", "history", "merge"),
    "Models": ("list", "new-model", "export"),
}
for command in app.registered_commands:
    name = command.name or command.callback.__name__.replace("_", "-")
    command.rich_help_panel = next((panel for panel, names in PANELS.items() if name in names), None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kbench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print kbench's version and exit."),
) -> None:
    """Measure what each Keras call path costs next to a hand-written NumPy twin."""


def main() -> None:
    """The console script: the app, then an exit that skips the interpreter's teardown. Tearing down the modules a
    report imports (pandas, matplotlib, SciPy) took 0.5 s of a 2 s command, after every file was written and
    closed; the streams are flushed first, and nothing kbench needs runs at exit."""
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":
    main()
