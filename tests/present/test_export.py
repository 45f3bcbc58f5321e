"""`kbench results RUN --format table|markdown|json|pyperf`: every format on a synthetic run whose model option is
hostile (a pipe, rich markup, HTML, a newline), and pyperf's own loader and CLI on the pyperf export."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kbench.present import formats
from kbench.cli.app import app
from kbench.store.schema import SCHEMA_VERSION
from kbench.store.results import load_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))  # test_history's run builder, run alone too
from test_history import GOLDEN, make_run  # noqa: E402

runner = CliRunner()
HOSTILE = "a|b [bold]x[/bold] <script>alert(1)</script>\nnext `code` *em* $x$"


@pytest.fixture
def hostile(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    make_run(reports, "20270101-120000-dense", "2027-01-01T12:00:00", {"compiled": 1e-4, "call": 2e-4},
             option=HOSTILE, processes=2)  # fmt: skip
    return reports


def _results(reports, *args):
    return runner.invoke(app, ["results", "latest", "--reports", str(reports), *args])


def test_table_shows_hostile_text_literally(hostile):
    result = _results(hostile, "--format", "table")
    assert result.exit_code == 0, result.output
    assert "a|b [bold]x[/bold] <script>alert(1)</script>\\x0anext" in result.stdout  # markup not parsed
    assert "\x1b" not in result.stdout and "compiled" in result.stdout


def test_markdown_escapes_everything_from_the_run(hostile):
    result = _results(hostile, "--format", "markdown")
    assert result.exit_code == 0, result.output
    command_block = re.search(r"```sh\n(.*?)\n```\n", result.stdout, re.S)
    assert command_block and command_block.group(1).startswith("kbench run --model dense -o activation=a|b")
    text = result.stdout.replace(command_block.group(0), "")  # a code block shows its text verbatim, not as HTML
    assert "<script" not in text and "&lt;script&gt;" in text
    assert "a\\|b \\[bold\\]x\\[/bold\\] &lt;script&gt;" in text and "\\`code\\` \\*em\\* \\$x\\$" in text
    assert not any(line.startswith("next") for line in text.splitlines())  # the newline did not end a line
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 * 4  # per cell: the header and numpy, call, compiled
    assert all(len(re.split(r"(?<!\\)\|", row)) == 8 for row in rows)  # 6 columns: no pipe leaked into a cell
    assert "| compiled |" in text and "✓" in text


def test_json_round_trips_rows_and_meta(hostile, tmp_path):
    out = tmp_path / "run.json.out"
    result = _results(hostile, "--format", "json", "--out", str(out))
    assert result.exit_code == 0, result.output

    def no_constants(name):
        raise AssertionError(f"not strict JSON: {name}")

    doc = json.loads(out.read_text(encoding="utf-8"), parse_constant=no_constants)
    assert (doc["format"], doc["schema_version"]) == ("kbench-results", SCHEMA_VERSION)
    assert doc["meta"]["run_id"] == "20270101-120000-dense" and doc["meta"]["backends"] == ["tensorflow"]
    assert len(doc["rows"]) == 6 and all(r["options"] == {"activation": HOSTILE} for r in doc["rows"])
    row = next(r for r in doc["rows"] if r["path"] == "compiled" and r["size_batch"] == 32)
    assert isinstance(row["process_medians_s"], list) and len(row["process_medians_s"]) == 2
    assert row["flags"] == [] and row["n_processes"] == 2 and row["build_s"] == 0.01


def test_every_format_reads_the_v1_golden_run(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(GOLDEN, reports / GOLDEN.name)
    run = load_run("latest", reports)
    for fmt in formats.FORMATS:
        assert "dense" in formats.render(run, fmt)
    doc = formats.pyperf_document(run)
    assert all(len(b["runs"]) == 1 for b in doc["benchmarks"])  # v1: one worker process


def test_bad_format_and_unwritable_out_are_one_line_exit_2(hostile, tmp_path):
    for args, text in ((["--format", "csv"], "unknown format 'csv'; use --format table|markdown|json|pyperf"),
                       (["--format", "json", "--out", str(tmp_path)], "is a folder"),
                       (["--format", "json", "--out", str(tmp_path / "no" / "x.json")], "cannot write")):  # fmt: skip
        result = _results(hostile, *args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert text in result.stderr


pyperf = pytest.importorskip("pyperf")


def _export(reports, run_id, path):
    result = runner.invoke(app, ["results", run_id, "--reports", str(reports), "--format", "pyperf", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_pyperf_export_round_trips_through_pyperfs_loader(hostile, tmp_path):
    path = _export(hostile, "latest", tmp_path / "a.json")
    suite = pyperf.BenchmarkSuite.load(str(path))
    run = load_run("latest", hostile)
    timed = run.results
    assert sorted(suite.get_benchmark_names()) == sorted(formats.benchmark_name(r) for _, r in timed.iterrows())
    assert len(set(suite.get_benchmark_names())) == len(timed) == 6
    assert all("\n" not in name for name in suite.get_benchmark_names())
    for _, row in timed.iterrows():
        bench = suite.get_benchmark(formats.benchmark_name(row))
        assert bench.get_nrun() == 2 and bench.get_unit() == "second"
        s = run.samples[(run.samples["path"] == row["path"]) & (run.samples["sizes"] == row["sizes"])]
        for process, pyperf_run in enumerate(bench.get_runs()):
            mine = s[s["process"] == process].sort_values("sample")
            assert list(pyperf_run.values) == pytest.approx(list(mine["seconds"]), rel=1e-15)
            assert pyperf_run.get_loops() == 100 and pyperf_run.get_metadata()["kbench_process"] == process
        assert bench.median() == pytest.approx(row["median_s"], rel=0.02)
    meta = suite.get_metadata()
    assert meta["kbench_run_id"] == "20270101-120000-dense" and meta["cpu_count"] == 2
    assert meta["keras_version"] == "3.15.1" and meta["tensorflow_version"] == "2.21.0"


def test_pyperf_cli_reads_two_exports(hostile, tmp_path):
    make_run(hostile, "20270102-120000-dense", "2027-01-02T12:00:00", {"compiled": 1.5e-4, "call": 2e-4},
             option=HOSTILE, processes=2, seed=1)  # fmt: skip
    a = _export(hostile, "20270101-120000-dense", tmp_path / "a.json")
    b = _export(hostile, "20270102-120000-dense", tmp_path / "b.json")
    for args in (["stats", str(a)], ["hist", str(b)], ["compare_to", str(a), str(b), "--table"]):
        proc = subprocess.run([sys.executable, "-m", "pyperf", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "dense/tensorflow/compiled/batch=32 features=128 units=128/float32" in proc.stdout
    assert "1.50x slower" in proc.stdout  # compare_to: compiled at batch 32, 100 µs -> 150 µs


def test_pyperf_refuses_a_run_without_samples(tmp_path):
    reports = tmp_path / "reports"
    run_dir = make_run(reports, "r1", "2027-01-01T12:00:00", {"compiled": 1e-4})
    (run_dir / "samples.csv").write_text("run_id,model,backend,path,sizes,dtype,process,sample,loops,seconds\n")
    result = runner.invoke(app, ["results", "r1", "--reports", str(reports), "--format", "pyperf"])
    assert result.exit_code == 2 and "has no timed samples" in result.stderr
