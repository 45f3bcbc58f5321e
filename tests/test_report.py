"""The HTML report: content, escaping, self-containment, atomic writes, and the `kbench report` command."""

import json
import re
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from kbench import report
from kbench.cli import app
from kbench.errors import ReportWriteError
from kbench.paths import PATHS as ALL_PATHS
from kbench.paths import paths_for

PATHS = paths_for("tensorflow", tuple(ALL_PATHS))  # what a default run measures
from kbench.results import load_run

runner = CliRunner()
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def run_copy(quick_run, tmp_path):
    """A private copy of the shared real run, so tests may modify it."""
    result, _, _ = quick_run
    dst = tmp_path / "reports" / result.run_dir.name
    shutil.copytree(result.run_dir, dst)
    return dst


def test_verdict_names_fastest_and_slowest_keras_path_against_numpy(quick_run):
    result, _, _ = quick_run
    vs = report.verdicts(result.results)
    assert [v.sizes for v in vs] == ["batch=1 features=128 units=128", "batch=2 features=128 units=128"]
    for v in vs:
        cell = result.results[(result.results["sizes"] == v.sizes) & (result.results["path"] != "numpy")]
        fastest = cell.sort_values("median_s").iloc[0]
        assert v.best_path == fastest["path"] and v.best_path in v.fastest and v.best_path in v.recommend
        assert cell.sort_values("median_s").iloc[-1]["path"] in v.slowest
        assert "NumPy" in v.fastest


def test_verdict_says_keras_wins_when_it_does():
    df = pd.DataFrame([
        {"model": "m", "sizes": "n=9", "path": "numpy", "median_s": 2e-3, "ratio_to_numpy": 1.0, "parity_ok": True},
        {"model": "m", "sizes": "n=9", "path": "xla", "median_s": 1e-3, "ratio_to_numpy": 0.5, "parity_ok": True},
        {"model": "m", "sizes": "n=9", "path": "call", "median_s": 3e-3, "ratio_to_numpy": 1.5, "parity_ok": True},
        {"model": "m", "sizes": "n=9", "path": "compiled", "median_s": 1e-4, "ratio_to_numpy": 0.05, "parity_ok": False},
    ])  # fmt: skip
    (v,) = report.verdicts(df)
    assert v.recommend == "Keras wins: use xla, 2× faster than the NumPy twin."
    assert "compiled" in v.excluded  # failed parity: never recommended, however fast


def test_parity_rows_put_failures_first(quick_run):
    result, _, _ = quick_run
    df = result.results.copy()
    df.loc[df["path"] == "call", ["parity_ok", "parity_message"]] = [False, "error 1e-1 exceeds tolerance"]
    rows = report.parity_rows(df)
    assert len(rows) == len(PATHS)
    assert rows[0]["path"] == "call" and not rows[0]["ok"] and rows[0]["failed"].startswith("2/2")
    assert all(r["ok"] for r in rows[1:])


def test_html_is_self_contained_and_complete(run_copy):
    html = report.build_html(load_run(run_copy))
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html), "no external resources"
    assert html.count('src="data:image/png;base64,') == 6  # latency, ratio line, heatmap, cold, noise, roofline
    for section in ('id="verdict"', 'id="parity"', 'id="warnings"', 'id="reproduce"', 'id="environment"'):
        assert section in html
    assert "kbench run --model dense --batch 1,2" in html
    assert html.index('id="verdict"') < html.index('id="parity"') < html.index("Latency")


def test_strings_from_models_options_and_env_are_escaped(run_copy):
    data = load_run(run_copy)
    data.results["model"] = EVIL
    data.results["path"] = data.results["path"].where(data.results["path"] != "call", "<img src=x onerror=alert(2)>")
    data.samples["model"] = EVIL
    data.meta["command"] = f"kbench run --model '{EVIL}'"
    data.meta["env"]["host"]["env"]["TF_EVIL"] = EVIL
    html = report.build_html(data)
    assert EVIL not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_write_report_default_location_and_permissions(run_copy):
    path = report.write_report(load_run(run_copy))
    assert path == run_copy / "report.html"
    assert path.stat().st_mode & 0o044  # readable by others like any report file
    assert not list(run_copy.glob(".*.tmp"))
    assert path.stat().st_size < 2 * 2**20


def test_unwritable_output_is_one_line_and_overwrites_nothing(run_copy, tmp_path):
    existing = run_copy / "report.html"
    existing.write_text("previous report")
    with pytest.raises(ReportWriteError) as err:
        report.write_report(load_run(run_copy), tmp_path / "no" / "such" / "dir" / "r.html")
    assert "\n" not in str(err.value) and "writable" in str(err.value)
    assert existing.read_text() == "previous report"
    with pytest.raises(ReportWriteError, match="is a folder"):
        report.write_report(load_run(run_copy), tmp_path)


def test_cli_report_regenerates_latest(run_copy, monkeypatch):
    monkeypatch.chdir(run_copy.parent.parent)
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"report: reports/{run_copy.name}/report.html")
    assert (run_copy / "report.html").stat().st_size > 10_000


@pytest.mark.parametrize("case", ["missing", "not a run", "newer schema", "unwritable out"])
def test_cli_report_bad_input(case, run_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(run_copy.parent.parent)
    (run_copy / "report.html").write_text("previous report")
    args = ["report", run_copy.name]
    if case == "missing":
        args = ["report", "no-such-run"]
    elif case == "not a run":
        (tmp_path / "plain").mkdir()
        args = ["report", str(tmp_path / "plain")]
    elif case == "newer schema":
        meta = json.loads((run_copy / "run.json").read_text())
        (run_copy / "run.json").write_text(json.dumps({**meta, "schema_version": 99}))
    else:
        args += ["--out", "/proc/kbench-report.html"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbench: error: ") and "Traceback" not in result.output
    assert (run_copy / "report.html").read_text() == "previous report"
