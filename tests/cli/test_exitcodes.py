"""Every command's exit code comes from one function."""

from __future__ import annotations

import pandas as pd
import pytest
import typer

from kbench.cli.exitcodes import exit_code
from kbench.core import errors
from kbench.orchestrate.session import RunResult


def _result(mode="run", parity=(True,), failures=(), interrupted="", skipped=()) -> RunResult:
    results = pd.DataFrame({"parity_ok": list(parity)})
    meta = {"mode": mode, "skipped": list(skipped)}
    return RunResult(None, results, pd.DataFrame(), meta, tuple(failures), bool(interrupted), interrupted)


@pytest.mark.parametrize("result, code", [
    (_result(), 0),
    (_result(parity=(True, False)), 1),
    (_result(failures=("tensorflow: crashed",)), 1),
    (_result(interrupted="Ctrl-C"), 130),
    (_result(interrupted="SIGTERM"), 143),
    (_result(mode="parity", interrupted="Ctrl-C"), 1),  # a parity check that was interrupted exits as a failed one
    (_result(parity=(), skipped=({"model": "dense"},)), 1),  # every cell skipped
    (_result(parity=()), 0),
])  # fmt: skip
def test_a_runs_exit_code(result, code):
    assert exit_code(result) == code


def test_errors_and_plain_outcomes():
    assert exit_code(errors.BadSizeError("x")) == 2
    assert exit_code(errors.WorkerError("x")) == errors.WorkerError("x").exit_code
    assert exit_code(KeyboardInterrupt()) == 130 and exit_code(typer.Abort()) == 130
    assert exit_code(None) == 0 and exit_code(1) == 1 and exit_code(0) == 0
