"""`kbench history`: the run list (with damaged, foreign, newer-schema and v1 folders mixed in), one cell's trend
with a planted significant change marked, filters that match nothing, and the figure. Synthetic run folders only
(:func:`make_run` writes them through RunWriter, rows built by kbench.orchestrate.rows as a real run builds them)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kbench.analysis import history as h
from kbench.analysis import trend as tr
from kbench.cli.app import app
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import Cell
from kbench.measure.protocol import CellDone, PathResult
from kbench.store.results import RunWriter
from kbench.orchestrate.rows import CellFacts, cell_rows

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1-20261126-081219-dense-dot"
runner = CliRunner()


def _path_result(path: str, median: float, rng, n: int = 12) -> PathResult:
    parity = ParityResult(path, True, 2e-5, 1e-7, 1e-8, 0.0)
    samples = tuple(float(x) for x in median * np.exp(rng.normal(0.0, 0.01, n)))
    return PathResult(path, 0, None if path == "numpy" else 0.01, 0.02, parity, "cpu", "host", "float32",
                      samples, 100, "ci", 2e-8, 1e-7, 3, 0.5, 2)  # fmt: skip


def make_run(reports: Path, run_id: str, started: str, medians: dict, *, processes: int = 3, seed: int = 0,
             option: str = "relu", versions=("3.15.1", "2.21.0"), batches=(1, 32)) -> Path:
    """A complete v2 run folder: model dense at each batch, paths numpy and those in ``medians`` (path -> seconds
    per call at batch 32; other batches scale with the batch), ``processes`` worker processes per cell."""
    rng = np.random.default_rng(seed)
    meta = {"run_id": run_id, "command": f"kbench run --model dense -o activation={option}", "started": started,
            "backends": ["tensorflow"], "processes": processes, "plan": {"processes": processes, "cells": []},
            "env": {"host": {"cpu": "Test CPU", "logical_cores": 2, "usable_cores": 2, "os": "Linux-test",
                             "python": "3.11.7", "packages": {"numpy": "2.4.6", "keras": versions[0]}},
                    "backends": {"tensorflow": {"keras": versions[0], "tensorflow": versions[1]}}}}  # fmt: skip
    writer = RunWriter(reports / run_id, meta)
    for batch in batches:
        cell = Cell("dense", "models/dense.py", (("batch", batch), ("features", 128), ("units", 128)),
                    (("activation", option),), "float32")  # fmt: skip
        scale = batch / 32
        done = {p: CellDone(0, tuple(_path_result(path, m * scale * (1 + 0.005 * p), rng)
                                     for path, m in {"numpy": 1e-6, **medians}.items()), ("numpy",))
                for p in range(processes)}  # fmt: skip
        facts = CellFacts(run_id, "tensorflow", cell, 1000, 100, {"numpy": 0.05, "backend": 3.0})
        writer.add(*cell_rows(facts, done))
    writer.finish("complete", finished=started)
    return reports / run_id


@pytest.fixture
def reports(tmp_path):
    """Five runs of dense (compiled 100 µs, then 100, 101, 150 (planted: +50%), 149), a damaged folder, a foreign
    folder, a run of a newer schema, and the golden v1 run."""
    r = tmp_path / "reports"
    r.mkdir()
    for i, m in enumerate((100e-6, 100e-6, 101e-6, 150e-6, 149e-6)):
        make_run(r, f"2027010{i}-120000-dense", f"2027-01-0{i + 1}T12:00:00", {"compiled": m, "call": 2e-4}, seed=i)
    shutil.copytree(GOLDEN, r / GOLDEN.name)
    (r / "damaged").mkdir()
    (r / "damaged" / "run.json").write_text("{not json", encoding="utf-8")
    (r / "photos").mkdir()
    (r / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    newer = make_run(r, "20270110-120000-future", "2027-01-10T12:00:00", {"compiled": 1e-4})
    doc = json.loads((newer / "run.json").read_text())
    (newer / "run.json").write_text(json.dumps({**doc, "schema_version": 99}))
    (r / "README.md").write_text("not a folder: ignored")
    return r


def test_list_shows_every_readable_run_and_one_line_per_skipped_folder(reports):
    hist = h.scan(reports)
    ids = [r.summary.run_id for r in hist.runs]
    assert ids == ["20261126-081219-dense-dot"] + [f"2027010{i}-120000-dense" for i in range(5)]  # oldest first
    v1 = hist.runs[0].summary
    assert v1.source_version == 1 and v1.models == ("dense", "dot") and v1.processes == 1
    assert v1.versions == (("keras", "3.15.1"), ("tensorflow", "2.21.0")) and v1.n_rows > 0
    latest = hist.runs[-1].summary
    assert (latest.processes, latest.n_rows, latest.status) == (3, 6, "complete")
    reasons = {s.folder.name: s.reason for s in hist.skipped}
    assert set(reasons) == {"damaged", "photos", "20270110-120000-future"}
    assert reasons["photos"] == "not a kbench run (no run.json)"
    assert "cannot be read" in reasons["damaged"] and "newer than this kbench reads" in reasons["20270110-120000-future"]

    result = runner.invoke(app, ["history", "--reports", str(reports)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert all(run_id in result.stdout for run_id in ids)
    skipped_lines = [line for line in result.stderr.splitlines() if line.startswith("kbench: skipped ")]
    assert len(skipped_lines) == 3
    assert f"kbench: skipped {reports / 'photos'}: not a kbench run (no run.json)" in skipped_lines


def test_trend_marks_the_planted_change_and_only_it(reports):
    filt = tr.CellFilter(model="dense", path="compiled", sizes=(("batch", 32),), options=(("activation", "relu"),))
    t = tr.trend(h.scan(reports), filt)
    assert [p.run_id for p in t.points] == [f"2027010{i}-120000-dense" for i in range(5)]
    assert [p.significant for p in t.points] == [False, False, False, True, False]
    assert t.points[3].change == pytest.approx(0.5, rel=0.02)
    assert t.points[0].change is None and t.points[3].ratio == pytest.approx(150, rel=0.03)
    assert all(p.ci_low_s < p.median_s < p.ci_high_s and p.n_processes == 3 for p in t.points)


def test_trend_command_prints_the_table_and_writes_the_figure(reports):
    result = runner.invoke(app, ["history", "--reports", str(reports), "--model", "dense", "--path", "compiled",
                                 "--batch", "32", "-o", "activation=relu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "▲ +" in result.stdout and "1 significant change " in result.stdout
    png = reports / "history-dense-compiled.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure: {png}" in result.stdout


def test_a_v1_run_is_trended_with_the_v2_runs(tmp_path):
    r = tmp_path / "reports"
    shutil.copytree(GOLDEN, r / GOLDEN.name)
    make_run(r, "20270101-120000-dense", "2027-01-01T12:00:00", {"predict": 0.04}, option="linear")
    t = tr.trend(h.scan(r), tr.CellFilter("dense", "predict", sizes=(("batch", 32),), options=(("activation", "linear"),)))
    assert [p.n_processes for p in t.points] == [1, 3]
    assert t.points[0].run_id == "20261126-081219-dense-dot"
    assert all(math.isfinite(p.median_s) for p in t.points)


def test_significance_is_the_quadrature_of_the_two_cis():
    def point(m, half):
        return tr.TrendPoint("r", "", m, m * math.exp(-half), m * math.exp(half), None, None, None, 3, (), ())

    a = point(1.0, 0.10)
    assert not tr.significant_change(a, point(math.exp(0.14), 0.10))  # 0.14 < sqrt(2) * 0.10 = 0.1414
    assert tr.significant_change(a, point(math.exp(0.145), 0.10))
    assert tr.significant_change(a, point(math.exp(-0.145), 0.10))
    assert not tr.significant_change(a, tr.TrendPoint("r", "", 2.0, None, None, None, None, None, 1, (), ()))


@pytest.mark.parametrize("args, expected", [
    (["--model", "dense", "--path", "compiled", "--batch", "7"],
     "no row of the 6 runs under {r} matches --model dense --path compiled --size batch=7"),
    (["--model", "dens"], "models there: dense,dot"),
    (["--model", "dense", "--path", "nope", "--backend", "jax"], "dense has paths call,compiled,"),
])  # fmt: skip
def test_filters_that_match_nothing_are_one_line_exit_2(reports, args, expected):
    result = runner.invoke(app, ["history", "--reports", str(reports), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbench: error: ")
    assert expected.format(r=reports) in lines[0]
    assert f"see every run with `kbench history --reports {reports}`" in lines[0]


def test_filters_that_match_several_cells_name_the_flags_that_tell_them_apart(reports):
    result = runner.invoke(app, ["history", "--reports", str(reports), "--model", "dense", "--path", "compiled"])
    assert result.exit_code == 2
    assert "match 4 different cells" in result.stderr
    assert "--size batch=1,32 or -o activation=linear,relu (one value each)" in result.stderr


def test_bad_flags_and_a_missing_folder_are_one_line_exit_2(tmp_path):
    for args, text in ((["--reports", str(tmp_path / "none")], "no folder"),
                       (["--reports", str(tmp_path), "--batch", "x"], "--batch 'x' is not one whole number"),
                       (["--reports", str(tmp_path), "-o", "relu"], "is not NAME=VALUE"),
                       (["--reports", str(tmp_path), "-m", "dense", "--plot", str(tmp_path / "no" / "x.png")],
                        "cannot write the figure")):  # fmt: skip
        result = runner.invoke(app, ["history", *args])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert text in result.stderr


def test_hostile_run_ids_and_options_are_shown_literally(tmp_path):
    r = tmp_path / "reports"
    r.mkdir()
    make_run(r, "[bold]x<script>", "2027-01-01T12:00:00", {"compiled": 1e-4}, option="[red]a|b\nc")
    result = runner.invoke(app, ["history", "--reports", str(r), "--model", "dense", "--path", "compiled",
                                 "--batch", "32", "-o", "activation=[red]a|b\nc", "--no-plot"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[bold]x<script>" in result.stdout and "activation=[red]a|b\\x0ac" in result.stdout
    assert not list(r.glob("*.png"))
