"""The CLI through typer's CliRunner (in process) and through a real child process (what a user types)."""

import json

import pytest
from typer.testing import CliRunner

from conftest import WORKER_MODELS, run_cli
from kbench.cli.app import app
from kbench.measure.callpaths import DEFAULT_PATHS
from kbench.measure.callpaths import paths_for

PATHS = paths_for("tensorflow", DEFAULT_PATHS)  # what a default run measures
from kbench.store.results import COLUMNS

runner = CliRunner()
GOLDEN = WORKER_MODELS.parent / "golden" / "v1-20261126-081219-dense-dot"

BAD_INPUTS = [
    (["run", "--model", "dens"], "did you mean 'dense'"),
    (["run", "--model", "dense", "--path", "cal"], "unknown path 'cal'"),
    (["run", "--model", "dense", "--batch", "0"], "--batch 0 must be positive"),
    (["run", "--model", "dense", "--batch", "-3"], "--batch -3 must be positive"),
    (["run", "--model", "dense", "--batch", "1.5"], "'1.5' is not an integer"),
    (["run", "--model", "dense", "--units", "x"], "'x' is not an integer"),
    (["run", "--model", "dense", "--batch", "100000000"], "GiB"),
    (["run", "--model", "dense", "--batch", "1099511627777"], "absurdly large"),
    (["run", "--model", "dense", "--dtype", "int8"], "unsupported dtype 'int8'"),
    (["run", "--model", "dense", "--models-dir", "/no/such/dir"], "--models-dir /no/such/dir does not exist"),
    (["run", "--model", "dense", "--n", "5"], "no selected model has size 'n'"),
    (["run", "--model", "dense", "--size", "depth=3"], "no selected model has size 'depth'"),
    (["run", "--model", "dense", "--size", "batch"], "is not KEY=VALUE"),
    (["run", "--model", "dense", "-o", "activation=tanh"], "use one of linear, relu"),
    (["run", "--model", "dense", "-o", "foo=1"], "no selected model has option 'foo'"),
    (["run", "--model", "dense", "--budget", "0"], "--budget 0 must be more than 0"),
    (["run", "--model", "dense", "--budget", "5 minutes"], "is not a duration"),
    (["run", "--model", "dense", "--cell-budget", "0"], "--cell-budget 0.0 must be more than 0"),
    (["run", "--model", "dense", "--batch", "64..8"], "is reversed"),
    (["run", "--model", "dense", "--batch", "8.."], "empty range"),
    (["run", "--model", "dense", "--batch", "1..300"], "make 300 cells, over --max-cells 200"),
    (["run", "--model", "dense", "--batch", "1..30", "--max-cells", "10"], "make 30 cells, over --max-cells 10"),
    (["run", "--model", "matmul", "--sweep", "--batch", "1..8"], "no selected model has size 'batch'"),
    (["run", "--model", "dense", "--target-ci", "2"], "--target-ci 2.0 must be a fraction"),
    (["run", "--model", "dense", "--min-samples", "0"], "--min-samples 0 must be at least 1"),
    (["run", "--model", "dense", "--seed", "x"], "Invalid value for '--seed'"),
    (["run", "--model", "dense", "--bogus"], "No such option: --bogus"),
    (["run"], "Missing option '--model'"),
    (["parity", "--model", "matmul", "--batch", "2"], "no selected model has size 'batch'"),
    (["frobnicate"], "No such command"),
    (["run", "--model", "dense", "--sweep", "--batch", "32"], "--sweep conflicts with --batch 32"),
    (["run", "--model", "dense", "--cell-timeout", "0"], "--cell-timeout 0.0 must be more than 0"),
    (["run", "--model", "dense", "--out", "/proc/kbench-out"], "cannot be written"),
    (["run", "--model", "dense", "--out", "reports/existing/run.json"], "is a file"),
    (["run", "--model", "syntaxerror", "--models-dir", str(WORKER_MODELS)], "syntaxerror.py failed to import: SyntaxError"),
    (["run", "--model", "missingfields", "--models-dir", str(WORKER_MODELS)], "missing 3 required positional arguments"),
    (["parity", "--model", "dense", "--dtype", "float16"], "unsupported dtype 'float16'"),
    (["parity", "--model", "nosuch"], "unknown model 'nosuch'"),
    (["parity", "--model", "dense", "--seed", "-1"], "--seed -1 must be 0 or more"),
    (["list", "--models-dir", "/no/such/dir"], "--models-dir /no/such/dir does not exist"),
    (["list", "--models-dir", str(WORKER_MODELS)], "failed to import"),
    (["report", "no-such-run"], "no run 'no-such-run'"),
    (["report", "reports/existing", "--out", "/proc/r.html"], "cannot write the report"),
    (["report", "reports/newer"], "schema version 99"),
    (["report", "reports/damaged"], "lacks the columns"),
    (["env", "--bogus"], "No such option: --bogus"),
    (["run", "--model", "dense", "--backend", "jx"], "unknown backend 'jx'"),
    (["run", "--model", "dense", "--device", "tpu"], "unknown --device 'tpu'"),
    (["parity", "--model", "dense", "--precision", "low"], "unknown --precision 'low'"),
    (["peak", "--bogus"], "No such option: --bogus"),
]


def _existing_results(root):
    """Earlier runs a bad command must leave alone: one current, one written by a newer kbench."""
    for name, version in (("existing", 1), ("newer", 99), ("damaged", 1)):
        d = root / "reports" / name
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"schema_version": version, "run_id": name, "status": "complete"}))
        (d / "results.csv").write_text("model,path\ndense,call\n" if name == "damaged" else ",".join(COLUMNS) + "\n")
        (d / "report.html").write_text("<p>an earlier report</p>")
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _existing_results(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("kbench: error: ")
    assert words in lines[0]
    assert "Traceback" not in result.output
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after == before


def test_the_bad_input_catalogue_covers_every_command():
    assert len(BAD_INPUTS) >= 20
    assert {a[0] for a, _ in BAD_INPUTS} >= {"run", "parity", "list", "report", "env", "peak"}


def test_model_file_that_fails_to_import_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    models = tmp_path / "m"
    models.mkdir()
    (models / "broken.py").write_text("def oops(:\n")
    result = runner.invoke(app, ["run", "--model", "broken", "--models-dir", str(models)])
    assert result.exit_code == 2
    assert "broken.py failed to import: SyntaxError" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_list_shows_models_sizes_options_and_paths():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for word in ("dense", "dot", "matmul", "batch=1,32,1024", "activation=linear|relu", "normalize=False|True", "n=100"):
        assert word in result.output
    for path in PATHS:
        assert path in result.output


def test_help_exits_0():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0 and "--batch" in result.output


def test_parity_command_reports_failures_and_exits_1():
    result = runner.invoke(app, ["parity", "--model", "nobias", "--models-dir", str(WORKER_MODELS)], terminal_width=200)
    assert result.exit_code == 1
    # every path fails, the twin's row too: the Keras paths agree with one another, so the twin (or the build
    # every path shares) is the likely culprit, and the message says so
    assert result.output.count("✗") == len(PATHS)
    assert "exceeds tolerance" in result.output and "likely culprit: the NumPy twin" in result.output


def test_shape_mismatch_through_the_cli_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--model", "kerasshape", "--models-dir", str(WORKER_MODELS), "--quick"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "returns shape" in result.output
    assert not (tmp_path / "reports").exists()


def test_env_prints_json_with_backend_versions():
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    env = json.loads(result.output)
    assert env["backend"]["backend"] == "tensorflow" and env["host"]["python"]


def test_real_subprocess_quick_run_end_to_end(tmp_path):
    proc = run_cli("run", "--model", "dense", "--quick", "--batch", "1,32", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    for path in PATHS:
        assert f" {path} " in out
    assert out.count("✓") == 2 * len(PATHS) and "✗" not in out
    assert "import (tensorflow worker)" not in out and "precision: medians ±" in out  # cold start: --details
    runs = list((tmp_path / "reports").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.csv").is_file()
    assert f"results: reports/{runs[0].name}" in out
    assert f"report:  reports/{runs[0].name}/report.html" in out
    assert (runs[0] / "report.html").stat().st_size > 10_000
    meta = json.loads((runs[0] / "run.json").read_text())
    assert meta["status"] == "complete"
    assert meta["command"] == "kbench run --model dense --quick --batch 1,32"


def test_no_report_skips_the_html(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--model", "dot", "--batch", "2", "--quick", "--cell-budget", "0.2", "--no-report"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "reports").iterdir()
    assert (run / "results.csv").is_file() and not (run / "report.html").exists()
    assert "report:" not in result.output


@pytest.mark.parametrize("details", [False, True])
def test_run_prints_one_screen_and_every_table_with_details(details, tmp_path, monkeypatch):
    """``kbench run`` on a saved run (the golden one, handed back by a stand-in for api.run): by default one screen
    at 80 columns, the cold start and the per-cell tables only with --details."""
    from kbench import api
    from kbench.orchestrate.session import RunResult
    from kbench.store.results import load_run

    saved = load_run(GOLDEN)
    monkeypatch.setattr(api, "run", lambda plan, out, on_event=None: RunResult(None, saved.results, saved.samples, saved.meta))
    args = ["run", "--model", "dense", "--batch", "1,32", "--no-report", "--out", str(tmp_path)]
    result = runner.invoke(app, args + (["--details"] if details else []), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert ("1st call" in result.output) == ("import (tensorflow worker)" in result.output) == details
    assert ("note: " in result.output) == details and "precision: medians ±" in result.output
    if not details:
        assert len(lines) <= 40 and max(len(line.rstrip()) for line in lines if not line.startswith(("dense:", "dot:"))) <= 80


def test_real_subprocess_bad_input_has_no_traceback(tmp_path):
    proc = run_cli("run", "--model", "dense", "--batch", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == "kbench: error: --batch 0 must be positive; give sizes of 1 or more"
