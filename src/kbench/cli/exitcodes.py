"""The exit codes of every command, from one function (:func:`exit_code`), and the command group that applies it:
a command returns its outcome (a run's result, its own code, or nothing), an error is caught, and each becomes one
exit code; bad input prints exactly one line on stderr and no traceback.

Exit codes: 0 all good; 1 a measurement failed (parity mismatch, worker failure, every cell skipped); 2 bad input;
130 interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM (finished cells are kept either way). Commands with
codes of their own (``kbench compare``'s gate) return them.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from kbench.core import errors
from kbench.orchestrate.session import RunResult

OK, FAILED, USAGE, SIGINT, SIGTERM = 0, 1, 2, 130, 143


def exit_code(outcome: RunResult | BaseException | int | None) -> int:
    """The exit code of a command's outcome: a run's result, an error it raised, its own code, or None (0)."""
    if isinstance(outcome, BaseException):
        return _error_code(outcome)
    if isinstance(outcome, RunResult):
        return _run_code(outcome)
    return OK if outcome is None else int(outcome)


def _run_code(result: RunResult) -> int:
    """A timed run that was interrupted exits 130 (Ctrl-C) or 143 (SIGTERM); a parity check that was interrupted
    exits 1, as a failed one does. A run whose every cell was skipped exits 1."""
    if result.interrupted and result.meta.get("mode") == "run":
        return SIGTERM if result.signal == "SIGTERM" else SIGINT
    if result.results.empty and result.meta.get("skipped"):
        return FAILED
    return OK if result.ok else FAILED


def _error_code(exc: BaseException) -> int:
    if isinstance(exc, errors.KbenchError):
        return exc.exit_code
    if isinstance(exc, (typer.Abort, KeyboardInterrupt)):
        return SIGINT
    return getattr(exc, "exit_code", USAGE)  # typer's (vendored click's) usage errors: bad flag, bad value


class OneLineErrors(TyperGroup):
    """Turn click's usage errors and kbench's typed errors into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            rv = super().main(args=args, prog_name=prog_name or "kbench", complete_var=complete_var,
                              standalone_mode=False, **extra)  # fmt: skip
        except typer.TyperException as exc:
            ctx = getattr(exc, "ctx", None)
            cmd = ctx.command_path if ctx is not None else "kbench"
            _fail(f"{errors.one_line(exc.format_message())} (see `{cmd} --help`)", exit_code(exc))
        except errors.KbenchError as exc:
            _fail(errors.one_line(exc), exit_code(exc))
        except (typer.Abort, KeyboardInterrupt) as exc:
            _fail("interrupted; finished cells are kept in the run folder", exit_code(exc))
        code = exit_code(rv if isinstance(rv, (RunResult, int)) else None)
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, code: int) -> None:
    typer.echo(f"kbench: error: {message}" if code == USAGE else f"kbench: {message}", err=True)
    sys.exit(code)
