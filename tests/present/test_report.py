"""The HTML report: content, escaping, self-containment, atomic writes, and the `kbench report` command."""

import json
import re
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from kbench.present import presentation, report, run_context, run_warnings
from kbench.cli.app import app
from kbench.core.errors import ReportWriteError
from kbench.measure.callpaths import DEFAULT_PATHS
from kbench.measure.callpaths import paths_for

PATHS = paths_for("tensorflow", DEFAULT_PATHS)  # what a default run measures
from kbench.store.results import load_run

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
    vs = presentation.verdicts(presentation.prepare(result.results).results)
    assert [v.sizes for v in vs] == ["batch=1 features=128 units=128", "batch=2 features=128 units=128"]
    for v in vs:
        cell = result.results[(result.results["sizes"] == v.sizes) & (result.results["path"] != "numpy")]
        fastest = cell.sort_values("median_s").iloc[0]
        assert v.keras_path == fastest["path"] and v.keras_path in v.fastest and v.keras_path in v.recommend
        assert cell.sort_values("median_s").iloc[-1]["path"] in v.slowest
        assert "NumPy" in v.fastest


def test_verdict_says_keras_wins_when_it_does():
    df = pd.DataFrame([
        {"model": "m", "sizes": "n=9", "path": "numpy", "median_s": 2e-3, "ratio_to_numpy": 1.0, "parity_ok": True},
        {"model": "m", "sizes": "n=9", "path": "xla", "median_s": 1e-3, "ratio_to_numpy": 0.5, "parity_ok": True},
        {"model": "m", "sizes": "n=9", "path": "call", "median_s": 3e-3, "ratio_to_numpy": 1.5, "parity_ok": True},
        {"model": "m", "sizes": "n=9", "path": "compiled", "median_s": 1e-4, "ratio_to_numpy": 0.05, "parity_ok": False},
    ])  # fmt: skip
    (v,) = presentation.verdicts(presentation.prepare(df).results)
    assert v.recommend == "Keras wins: use xla, 2× faster than the NumPy twin."
    assert "compiled" in v.excluded  # failed parity: never recommended, however fast


def test_parity_rows_put_failures_first(quick_run):
    result, _, _ = quick_run
    df = result.results.copy()
    df.loc[df["path"] == "call", ["parity_ok", "parity_message"]] = [False, "error 1e-1 exceeds tolerance"]
    rows = presentation.parity_rows(presentation.prepare(df).results)
    assert len(rows) == len(PATHS)
    assert rows[0].path == "call" and not rows[0].ok and rows[0].failed.startswith("2/2")
    assert all(r.ok for r in rows[1:])


def test_html_is_self_contained_and_complete(run_copy):
    html = report.build_html(load_run(run_copy))
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html), "no external resources"
    # latency, heatmap, cold, noise, roofline, where the time goes per cell, single calls; with 2 sizes (under
    # report.LINE_MIN_SIZES) no ratio or parts against the size: the heatmap and the per-cell bars show each size
    assert html.count('src="data:image/svg+xml;base64,') == 7
    assert 'alt="ratio to NumPy against size' not in html and 'alt="parts against size' not in html
    for section in ('id="verdict"', 'id="parity"', 'id="warnings"', 'id="reproduce"', 'id="environment"'):
        assert section in html
    assert "kbench run --model dense --batch 1,2" in html
    assert html.index('id="verdict"') < html.index('id="parity"') < html.index("Latency")


def test_strings_from_models_options_and_env_are_escaped(run_copy):
    data = load_run(run_copy)
    data.results["model"] = EVIL
    data.results["path"] = data.results["path"].where(data.results["path"] != "call", "<img src=x onerror=alert(2)>")
    data.samples["model"] = EVIL
    data.results["options"] = json.dumps({"act": "<img src=x onerror=alert(3)>"})
    meta = json.loads(json.dumps(dict(data.meta), default=list))  # the run.json object, to plant strings in
    meta["command"] = f"kbench run --model '{EVIL}'"
    meta["env"]["host"]["env"]["TF_EVIL"] = EVIL
    meta["machine"] = [EVIL]
    meta["models"] = {EVIL: {"summary": EVIL, "file": "<i>x.py"}}
    html = report.build_html(type(data)(data.run_dir, meta, data.results, data.samples))
    assert EVIL not in html and "<img src=x" not in html and "<i>x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5  # model, summary, machine, command, title
    assert "act=&lt;img src=x onerror=alert(3)&gt;" in html


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


# -- the presentation model on synthetic results (no worker) -------------------------------------------------------

from kbench.core import fmt  # noqa: E402
from kbench.present import terminal

SYNTH_PATHS = ["numpy", "predict", "predict_on_batch", "call", "compiled", "xla"]


def synthetic_run(v2: bool) -> pd.DataFrame:
    """18 rows like the default run: 14 unstable (the worst: call at batch=32, IQR 38%), 3 short of their CI."""
    rows = []
    for b in (1, 32, 1024):
        for i, path in enumerate(SYNTH_PATHS):
            n = len(rows)
            iqr = 0.38 if (path, b) == ("call", 32) else 0.2 if n < 14 else 0.05
            flags = (["unstable"] if n < 14 else []) + (["ci_not_reached"] if n in (3, 9, 15) else [])
            warnings = [f"unstable: IQR is {100 * iqr:.1f}% of the median"] if n < 14 else []
            median = 1e-5 * (i + 1)
            rows.append({
                "model": "dense", "backend": "tensorflow", "path": path, "sizes": f"batch={b}", "dtype": "float32",
                "options": {"activation": "linear"} if v2 else '{"activation": "linear"}', "size_batch": b,
                "median_s": median, "iqr_s": iqr * median, "ci_low_s": median * (0.9 - 0.01 * n),
                "ci_high_s": median * 1.1, "ratio_to_numpy": i + 1.0, "ratio_ci_low": i + 0.9, "ratio_ci_high": i + 1.1,
                "flops": 2 * 128 * b, "parity_ok": True, "parity_tol": 2e-5,
                "parity_max_abs_err": 1e-7, "parity_max_rel_err": 1e-7, "parity_twin_max_abs_err": 0.0,
                "parity_message": "", "flags": flags if v2 else ";".join(flags),
                "warnings": warnings if v2 else " | ".join(warnings),
            })  # fmt: skip
    return pd.DataFrame(rows)


META = {"plan": {"timer": {"target_ci": 0.02}}, "skipped": [{"model": "dense", "sizes": "batch=9", "reason": "budget"}],
        "failed_cells": [{"model": "dense", "sizes": "batch=10", "reason": "killed by SIGSEGV"}]}  # fmt: skip


def test_digest_is_one_line_per_kind_with_its_count_and_worst_case():
    lines = run_warnings.digest(presentation.prepare(synthetic_run(v2=True)).results, META)
    assert lines == (
        "warning: 14 of 18 rows unstable (IQR > 10% of the median); worst: call at dense batch=32, IQR 38%",
        "warning: 3 of 18 rows spent their budget before the median's 95% CI reached the target ±2%; "
        "worst: call at dense batch=1024, ±18%",
        "warning: 1 cell skipped; first: dense batch=9: budget",
        "warning: 1 cell failed or not run; first: dense batch=10: killed by SIGSEGV",
    )


def test_schema_v1_and_v2_results_present_alike():
    v1, v2 = (presentation.build(presentation.prepare(synthetic_run(v2)), META) for v2 in (False, True))
    assert v1 == v2
    assert len(v1.details) == 14 + 2 and v1.cells[0].options == (("activation", "linear"),)
    assert v1.cells[0].title() == "dense · batch=1 · activation=linear · float32"


def test_run_view_puts_the_machine_check_first_and_the_digest_last():
    """With --details: the machine check first, the peak, and the unstable rows and missed CIs as notes (issue 20:
    they are no longer warnings); by default the machine's warning joins the warnings and the peak is left out."""
    meta = {**META, "machine": ["machine: 2 cores, governor powersave"],
            "peak": {"gflops_float32": 281.0, "gflops_float64": 130.0, "copy_gbps": 14.5}}
    items = terminal.run_view(synthetic_run(v2=False), meta, details=True)
    texts = [str(getattr(i, "plain", "")) for i in items]
    assert texts[0] == "machine: 2 cores, governor powersave"
    assert len([t for t in texts if t.startswith("warning:")]) == 2 and texts[-1].startswith("warning: 1 cell failed")
    assert len([t for t in texts if t.startswith("note:")]) == 2
    assert "machine peak (NumPy BLAS): float32 281 GFLOP/s, float64 130 GFLOP/s, copy 14.5 GB/s" in texts
    default = [str(getattr(i, "plain", "")) for i in terminal.run_view(synthetic_run(v2=False), meta)]
    assert [t for t in default if t.startswith("warning:")] == [
        "warning: machine: 2 cores, governor powersave", "warning: 1 cell skipped; first: dense batch=9: budget",
        "warning: 1 cell failed or not run; first: dense batch=10: killed by SIGSEGV"]  # fmt: skip
    assert not any(t.startswith("machine peak") or t.startswith("note:") for t in default)


def test_peak_line_names_the_engine_that_set_each_figure():
    peak = {"gflops_float32": 433.2, "gflops_float64": 130.0, "copy_gbps": 14.53, "engine_float32": "tensorflow",
            "engine_float64": "numpy", "engines": [{"engine": "numpy", "library": "OpenBLAS"},
                                                   {"engine": "tensorflow", "library": "oneDNN"}]}  # fmt: skip
    assert run_context.peak_line(peak) == (
        "machine peak: float32 433 GFLOP/s (tensorflow/oneDNN), float64 130 GFLOP/s (numpy/OpenBLAS), copy 14.5 GB/s"
    )
    assert run_context.peak_line({"gflops_float32": 1.0, "engine": "jax"}) == "machine peak: float32 1 GFLOP/s (jax)"
    assert run_context.peak_line(None) == ""


def test_fmt_reads_both_schema_forms_and_spells_out_control_characters():
    assert fmt.as_list("unstable;ci_not_reached") == fmt.as_list(["unstable", "ci_not_reached"]) == ["unstable", "ci_not_reached"]
    assert fmt.as_list('["a | b"]', " | ") == ["a | b"] and fmt.as_list(float("nan")) == [] and fmt.as_list(None) == []
    assert fmt.as_options('{"a": 1}') == fmt.as_options({"a": 1}) == {"a": 1} and fmt.as_options(pd.NA) == {}
    assert fmt.visible("a\x1b[31mb\u202ec\n") == "a\\x1b[31mb\\u202ec\\x0a" and fmt.visible("µs ✓") == "µs ✓"
    assert [fmt.fmt_ratio(r) for r in (1.0, 4.321, 183.4, 16_300.0)] == ["1×", "4.32×", "183×", "16.3k×"]
    assert fmt.fmt_median_iqr(2.59e-6, 0.18e-6) == "2.59 µs (7%)" and fmt.fmt_time(None) == "—"
    assert fmt.clip("x" * 10, 4) == "xxxx… (+6 characters)"
