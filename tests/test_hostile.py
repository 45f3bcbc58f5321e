"""Hostile text from a model file is shown literally everywhere: rich markup, HTML, an ANSI escape and a very long
string in a model's summary, option names and option values, and markup in the folders a run reads and writes.

One real run and one real parity check (a worker each), in folders named like markup; the rest reads their output.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import WORKER_MODELS, run_cli
from kbench.present import presentation, terminal, report
from kbench.cli.app import app
from kbench.store.results import RunData
from kbench.model.loader import load_model_file

SPEC = load_model_file(WORKER_MODELS / "hostile.py")
OPTIONS = {k: v[0] for k, v in SPEC.options.items()}
MARKUP, SCRIPT, ANSI, LONG = OPTIONS["markup"], OPTIONS["html"], OPTIONS["ansi"], OPTIONS["long"]
ANSI_SHOWN = "\\x1b[31mred\\x1b[0m"  # what an ANSI escape looks like once spelled out
FAST = ("--quick", "--batch", "1", "--cell-budget", "0.2", "--processes", "1")


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    """The hostile model in a folder whose name is markup."""
    d = tmp_path_factory.mktemp("models") / "[bold]x [red]<i>"
    d.mkdir()
    shutil.copy(WORKER_MODELS / "hostile.py", d / "hostile.py")
    return d


@pytest.fixture(scope="module")
def hostile_run(hostile_dir, tmp_path_factory):
    """`kbench run` on the hostile model, its run folder under a folder whose name is markup."""
    cwd = tmp_path_factory.mktemp("cwd")
    proc = run_cli("run", "--model", "hostile", "--models-dir", str(hostile_dir), *FAST, "--out", "[/red]out", cwd=cwd)
    runs = list((cwd / "[/red]out").glob("*/run.json"))
    return proc, runs[0].parent if runs else None


def assert_literal_in_terminal(out: str) -> None:
    assert "\x1b" not in out, "an escape sequence from a model file reached the terminal"
    for text in (MARKUP, SCRIPT, ANSI_SHOWN, "[red]key<b>=v"):
        assert text in out, text
    assert "L" * 80 in out and LONG not in out  # the long value is clipped, and says so
    assert "(+2920 characters)" in out


def assert_escaped_in_html(html: str) -> None:
    assert "<script" not in html.lower() and "<img src=x" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(&#39;kbench&#39;)&lt;/script&gt;" in html
    assert "[/bold]&lt;img src=x onerror=alert(1)&gt;" in html
    assert ANSI_SHOWN in html and LONG in html  # the report shows the whole value


def test_run_exits_0_and_shows_every_hostile_string_literally(hostile_run):
    proc, run_dir = hostile_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr
    assert_literal_in_terminal(proc.stdout)
    assert "results: [/red]out/" in proc.stdout and "report:  [/red]out/" in proc.stdout
    assert_escaped_in_html((run_dir / "report.html").read_text())


def test_report_command_shows_the_summary_and_options_escaped(hostile_run, tmp_path):
    """`kbench report` on the hostile run, with the models the run recorded (``meta["models"]``)."""
    _, run_dir = hostile_run
    copy = tmp_path / "[b]copy"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta.setdefault("models", {"hostile": {"summary": SPEC.summary, "file": SPEC.source}})
    (copy / "run.json").write_text(json.dumps(meta))
    proc = run_cli("report", str(copy), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"report: {copy}/report.html")
    html = (copy / "report.html").read_text()
    assert_escaped_in_html(html)
    assert "[red]summary[/red] [/] &lt;script&gt;" in html  # the summary, escaped, in the models table
    assert "[red]key&lt;b&gt;=v" in html  # an option name made of markup


def test_parity_shows_hostile_options_literally(hostile_dir, tmp_path):
    proc = run_cli("parity", "--model", "hostile", "--models-dir", str(hostile_dir), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert_literal_in_terminal(proc.stdout)
    assert proc.stdout.count("✓") >= 2


def test_list_shows_the_hostile_summary_and_folder_literally(hostile_dir):
    result = CliRunner().invoke(app, ["list", "--models-dir", str(hostile_dir)])
    assert result.exit_code == 0, result.output
    assert_literal_in_terminal(result.output)
    assert "[red]summary[/red] [/] " + SCRIPT in result.output
    assert "[bold]x [red]<i>/hostile.py" in result.output


def test_terminal_renderables_never_parse_markup_from_results():
    """In process, every kind of result string: model, sizes (a size name), path, warnings, machine lines."""
    bad = "[/bold][red]<b>\x1b[2J"
    row = {"model": bad, "backend": "tensorflow", "path": "call", "sizes": f"batch=1 {bad}=3", "dtype": "float32",
           "options": {bad: bad}, "parity_ok": False, "parity_tol": 1e-5, "parity_max_abs_err": 1.0,
           "parity_max_rel_err": 1.0, "parity_twin_max_abs_err": 1.0, "parity_message": bad, "median_s": 1e-3,
           "iqr_s": 5e-4, "ratio_to_numpy": 2.0, "flags": ["parity_fail", "unstable", bad], "warnings": [bad]}  # fmt: skip
    df = pd.DataFrame([row, {**row, "path": "numpy", "parity_ok": True, "flags": [], "warnings": []}])
    console = Console(width=100, record=True, highlight=False, force_terminal=False)
    meta = {"machine": [bad], "skipped": [{"model": bad, "sizes": bad, "reason": bad}]}
    for item in [*terminal.run_view(df, meta), *terminal.parity_view(df, meta)]:
        console.print(item, soft_wrap=True)
    out = console.export_text()
    assert "\x1b" not in out and "[/bold][red]<b>\\x1b[2J" in out
    assert out.count("warning:") <= 5
    html = report.build_html(RunData(Path("."), {**meta, "run_id": bad}, df.head(0), pd.DataFrame()))
    assert "[/bold][red]&lt;b&gt;\\x1b[2J" in html and "<b>" not in html
    assert presentation.parity_failure_lines(presentation.prepare(df).results)[0].startswith("parity FAILED: call at [/bold]")
