"""`kbench compare`: matching, the ratio's CI and p-value, verdicts, the gate, the environment diff, resolution of
`latest`/`previous`, escaping, and old runs. Synthetic run folders (written by RunWriter from rows built the way the
worker's records become rows), no worker."""

import json
import os
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kbench.analysis import compare as cmp
from kbench.analysis import significance as sig
from kbench.analysis.gate import parse_factors
from kbench.cli.app import app
from kbench.core.errors import RunNotFoundError, SchemaError, UsageError
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import Cell
from kbench.measure.protocol import CellDone, PathResult
from kbench.store.catalog import resolve_run
from kbench.store.results import RunWriter, load_run
from kbench.orchestrate.rows import CellFacts, cell_rows

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1-20261126-081219-dense-dot"
ENV = {
    "host": {"cpu": "AMD EPYC", "logical_cores": 2, "usable_cores": 2, "python": "3.11.7",
             "packages": {"numpy": "2.4.6", "tensorflow": "2.21.0", "keras": "3.15.1"},
             "blas": [{"internal_api": "openblas", "version": "0.3.31", "num_threads": 2, "architecture": "SkylakeX"}],
             "env": {}},
    "backends": {"tensorflow": {"keras": "3.15.1", "tensorflow": "2.21.0", "intra_op_threads": "default"}},
}  # fmt: skip
HOSTILE = "[bold red]x</td><script>alert(1)</script>"


def samples(median: float, process: int, n: int = 30, spread: float = 0.01, seed: int = 0) -> tuple[float, ...]:
    """n samples around ``median`` (relative spread), different per process."""
    rng = np.random.default_rng([seed, process])
    return tuple(float(x) for x in median * (1 + spread * rng.standard_normal(n)))


def _path(name: str, s: tuple[float, ...]) -> PathResult:
    parity = ParityResult(name, True, 1e-5, 1e-7, 1e-8, 0.0, "")
    return PathResult(name, 0, None if name == "numpy" else 0.01, 0.02, parity, "cpu", "host", "float32", s, 100,
                      "ci", 2e-8, 1e-7)  # fmt: skip


def cell(model="dense", batch=1, options=(("activation", "linear"),)):
    return Cell(model, f"models/{model}.py", (("batch", batch), ("features", 8)), options, "float32")


def write_run(root: Path, run_id: str, cells: dict, env=ENV, procs: int = 3, started="2026-11-26T08:00:00",
              others_cpu: float | None = None) -> Path:  # fmt: skip
    """A run folder: ``cells`` maps a Cell to {path: median}; every path gets ``procs`` processes of samples.
    A median may be a list, one per process. ``others_cpu``: the share of the CPUs others took in every process."""
    w = RunWriter(root / run_id, {"run_id": run_id, "command": f"kbench run --model {run_id}", "started": started,
                                  "env": env, "backends": ["tensorflow"]})  # fmt: skip
    for i, (c, medians) in enumerate(cells.items()):
        done = {}
        for p in range(procs):
            paths = []
            for name, m in medians.items():
                med = m[p] if isinstance(m, (list, tuple)) else m
                path = _path(name, samples(med, p, seed=zlib.crc32(f"{run_id}/{name}/{i}".encode())))
                paths.append(replace(path, others_cpu=others_cpu))
            done[p] = CellDone(i, tuple(paths), tuple(medians))
        rows, s = cell_rows(CellFacts(run_id, "tensorflow", c, 100, 100, {"numpy": 0.1, "backend": 1.0}), done)
        w.put_cell(i, rows, s)
    w.finish("complete")
    return root / run_id


# -- statistics on data with a known answer --------------------------------------------------------------------------


def test_identical_samples_give_ratio_1_and_no_significance():
    a = [samples(1e-3, p) for p in range(3)]
    c = sig.change(a, a)
    assert c.ratio == pytest.approx(1.0)
    assert c.ci_low < 1 < c.ci_high
    assert c.p_value == pytest.approx(1.0)
    assert (c.significant, c.verdict, c.test) == (False, "same", "welch-t")


def test_a_clear_1_5x_shift_over_3_processes_is_slower_and_significant():
    a = [samples(1e-3 * (1 + 0.02 * p), p) for p in range(3)]
    b = [samples(1.5e-3 * (1 + 0.02 * (2 - p)), p + 10) for p in range(3)]
    c = sig.change(a, b)
    assert c.ratio == pytest.approx(1.5, rel=0.03)
    assert 1 < c.ci_low < 1.5 < c.ci_high
    assert c.p_value < 0.01
    assert (c.significant, c.verdict) == (True, "slower")
    assert sig.change(b, a).verdict == "faster"


def test_a_shift_within_the_process_spread_is_not_significant():
    """Processes that disagree by ±10% among themselves: a 3% difference between the runs is noise."""
    a = [samples(1e-3 * f, p) for p, f in enumerate((0.9, 1.0, 1.1))]
    b = [samples(1.03e-3 * f, p + 10) for p, f in enumerate((1.1, 0.9, 1.0))]
    c = sig.change(a, b)
    assert c.p_value > 0.05 and c.verdict == "same" and c.ci_low < 1 < c.ci_high


def test_processes_that_agree_by_chance_are_floored_by_the_in_process_spread():
    """Three processes with the same median each (no spread between them), noisy samples: the CI is the floor."""
    base = samples(1e-3, 0, n=15, spread=0.2)
    c = sig.change([base] * 3, [tuple(1.01 * x for x in base)] * 3)
    assert c.floored and c.ci_low < 1 < c.ci_high
    assert c.verdict == "same"  # the t-test alone (p ~ 0) would call 1% significant


def test_one_process_against_several_uses_the_pooled_t_and_two_single_processes_mann_whitney():
    a1, b3 = [samples(1e-3, 0)], [samples(1.5e-3, p) for p in range(3)]
    assert sig.change(a1, b3).test == "pooled-t"
    single = sig.change([samples(1e-3, 0)], [samples(1.5e-3, 1)])
    assert single.test == "mann-whitney" and single.verdict == "slower"


# -- matching and the comparison -----------------------------------------------------------------------------------


def test_rows_match_on_model_path_sizes_options_and_the_rest_are_listed(tmp_path):
    a = write_run(tmp_path, "a", {cell(batch=1): {"numpy": 1e-6, "call": 1e-4, "xla": 5e-5},
                                  cell(batch=2): {"numpy": 2e-6, "call": 1e-4}})  # fmt: skip
    b = write_run(tmp_path, "b", {cell(batch=1): {"numpy": 1e-6, "call": 1e-4},
                                  cell(batch=4): {"numpy": 4e-6, "call": 1e-4}})  # fmt: skip
    c = cmp.compare_runs(load_run(a), load_run(b))
    assert [(r.key.path, r.key.sizes) for r in c.rows] == [("numpy", "batch=1 features=8"), ("call", "batch=1 features=8")]
    assert {(k.path, k.sizes) for k in c.only_a} == {("xla", "batch=1 features=8"), ("numpy", "batch=2 features=8"),
                                                     ("call", "batch=2 features=8")}  # fmt: skip
    assert {(k.path, k.sizes) for k in c.only_b} == {("numpy", "batch=4 features=8"), ("call", "batch=4 features=8")}
    relu = write_run(tmp_path, "relu", {cell(batch=1, options=(("activation", "relu"),)): {"numpy": 1e-6}})
    other = cmp.compare_runs(load_run(a), load_run(relu))
    assert not other.rows and len(other.only_b) == 1 and other.only_b[0].options == '{"activation": "relu"}'


def test_per_path_geomean_and_verdicts(tmp_path):
    a = write_run(tmp_path, "a", {cell(batch=1): {"numpy": 1e-6, "call": 1e-4}, cell(batch=2): {"numpy": 2e-6, "call": 1e-4}})
    b = write_run(tmp_path, "b", {cell(batch=1): {"numpy": 1e-6, "call": 1.5e-4}, cell(batch=2): {"numpy": 2e-6, "call": 2e-4}})
    c = cmp.compare_runs(load_run(a), load_run(b))
    call = next(p for p in c.paths if p.path == "call")
    assert call.cells == 2 and call.geomean == pytest.approx((1.5 * 2.0) ** 0.5, rel=0.02)
    assert call.slower == 2 and call.worst == pytest.approx(2.0, rel=0.02)
    assert c.counts() == {"slower": 2, "faster": 0, "same": 2}


def test_the_twins_rows_moving_with_the_others_is_called_a_machine_shift_not_a_code_change(tmp_path):
    before = {cell(batch=1): {"numpy": 1e-6, "call": 1e-4}, cell(batch=2): {"numpy": 2e-6, "call": 1e-4}}
    machine = {cell(batch=1): {"numpy": 1.08e-6, "call": 1.2e-4}, cell(batch=2): {"numpy": 2.16e-6, "call": 1.2e-4}}
    code = {cell(batch=1): {"numpy": 1e-6, "call": 1.2e-4}, cell(batch=2): {"numpy": 2e-6, "call": 1.2e-4}}
    a = load_run(write_run(tmp_path, "a", before))
    shifted = cmp.machine_shift(cmp.compare_runs(a, load_run(write_run(tmp_path, "machine", machine))))
    assert "NumPy's rows" in shifted and "moved 1.08× (geometric mean of 2)" in shifted and "1.2×" in shifted
    assert cmp.machine_shift(cmp.compare_runs(a, load_run(write_run(tmp_path, "code", code)))) == ""  # twin still
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "machine"), "--no-html"])
    assert "warning: the machine may have run at another speed" in result.output


def test_a_run_timed_beside_another_busy_process_is_named_in_the_comparison(tmp_path):
    cells = {cell(batch=1): {"numpy": 1e-6, "call": 1e-4}}
    a = write_run(tmp_path, "quiet", cells, others_cpu=0.01)
    b = write_run(tmp_path, "busy", {cell(batch=1): {"numpy": 1.9e-6, "call": 1.8e-4}}, others_cpu=0.42)
    c = cmp.compare_runs(load_run(a), load_run(b))
    assert cmp.contention(c) == (
        "B (busy): 2 of 2 rows were timed while other processes took up to 42% of the CPUs; a change in them may be "
        "that load's: rerun on a quiet machine before reading it as the code's",)
    assert cmp.contention(cmp.compare_runs(load_run(a), load_run(a))) == ()  # 1% is no contention
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--no-html"])
    assert "warning: B (busy): 2 of 2 rows were timed while other processes took up to 42% of the CPUs" in result.output
    html = (b / "compare-quiet.html")
    CliRunner().invoke(app, ["compare", str(a), str(b), "--html", str(html)])
    assert "2 of 2 rows were timed while other processes took up to 42% of the CPUs" in html.read_text(encoding="utf-8")


def test_per_path_factors_decide_which_rows_fail(tmp_path):
    a = write_run(tmp_path, "a", {cell(): {"numpy": 1e-6, "predict": 1e-2, "call": 1e-4}})
    b = write_run(tmp_path, "b", {cell(): {"numpy": 1e-6, "predict": 1.3e-2, "call": 1.3e-4}})
    ra, rb = load_run(a), load_run(b)
    assert {r.key.path for r in cmp.compare_runs(ra, rb, parse_factors(["1.10"])).failures} == {"predict", "call"}
    per_path = parse_factors(["1.10", "predict=1.5"])
    assert per_path.for_path("predict") == 1.5 and per_path.for_path("call") == 1.10
    assert {r.key.path for r in cmp.compare_runs(ra, rb, per_path).failures} == {"call"}
    only_predict = parse_factors(["predict=1.2"])
    assert [r.key.path for r in cmp.compare_runs(ra, rb, only_predict).failures] == ["predict"]
    assert not cmp.compare_runs(ra, rb, parse_factors(["1.5"])).failures


@pytest.mark.parametrize("bad", ["1.0", "0.9", "abc", "nan", "inf", "predict=1", "nopath=1.5", "predict=x"])
def test_bad_factors_are_usage_errors(bad):
    with pytest.raises(UsageError, match="--fail-above"):
        parse_factors([bad])


def test_a_different_tensorflow_is_a_prominent_cross_environment_line(tmp_path):
    new_env = json.loads(json.dumps(ENV))
    new_env["host"]["packages"]["tensorflow"] = "2.20.0"
    new_env["backends"]["tensorflow"]["tensorflow"] = "2.20.0"
    new_env["host"]["blas"].reverse()  # order alone is no difference
    a = write_run(tmp_path, "a", {cell(): {"numpy": 1e-6}})
    b = write_run(tmp_path, "b", {cell(): {"numpy": 1e-6}}, env=new_env)
    c = cmp.compare_runs(load_run(a), load_run(b))
    assert c.cross_environment
    assert {(d.key, d.a, d.b) for d in c.env} == {("packages.tensorflow", "2.21.0", "2.20.0"),
                                                  ("tensorflow.tensorflow", "2.21.0", "2.20.0")}  # fmt: skip
    out = CliRunner().invoke(app, ["compare", str(a), str(b), "--no-html"]).output
    first = out.splitlines()[0]
    assert first.startswith("DIFFERENT ENVIRONMENTS") and "packages.tensorflow 2.21.0 → 2.20.0" in first


def test_only_the_cli_process_blas_is_not_a_cross_environment(tmp_path):
    env = json.loads(json.dumps(ENV))
    env["host"]["blas"].append({"internal_api": "openblas", "version": "0.3.30", "num_threads": 2})
    a = write_run(tmp_path, "a", {cell(): {"numpy": 1e-6}})
    b = write_run(tmp_path, "b", {cell(): {"numpy": 1e-6}}, env=env)
    c = cmp.compare_runs(load_run(a), load_run(b))
    assert [d.key for d in c.env] == ["host.blas"] and not c.cross_environment and cmp.env_headline(c) == ""


# -- resolution: latest and previous ---------------------------------------------------------------------------------


def test_previous_is_the_run_before_latest(tmp_path):
    old = write_run(tmp_path, "r-old", {cell(): {"numpy": 1e-6}})
    new = write_run(tmp_path, "r-new", {cell(): {"numpy": 1e-6}})
    os.utime(old / "run.json", (time.time() - 100, time.time() - 100))
    assert resolve_run("previous", tmp_path) == old and resolve_run("latest", tmp_path) == new
    c = cmp.compare_runs(load_run("previous", tmp_path), load_run("latest", tmp_path))
    assert (c.a.run_id, c.b.run_id) == ("r-old", "r-new")
    (new / "run.json").unlink()
    with pytest.raises(RunNotFoundError, match="`previous` needs two runs"):
        resolve_run("previous", tmp_path)


# -- the CLI: exit codes, output, HTML ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slower_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    a = write_run(root, "a", {cell(): {"numpy": 1e-6, "call": 1e-4}})
    b = write_run(root, "b", {cell(): {"numpy": 1.5e-6, "call": 1e-4}})
    return root, a, b


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_cli_exits_1_when_a_row_is_significantly_slower_than_the_factor_and_names_it(slower_pair, tmp_path):
    root, a, b = slower_pair
    r = invoke("compare", "a", "b", "--reports", str(root), "--fail-above", "1.10", "--html", str(tmp_path / "c.html"))
    assert r.exit_code == 1, r.output
    assert "slower than --fail-above 1.1: numpy at dense (tensorflow) batch=1 features=8 activation=linear" in r.output
    assert "gate (--fail-above 1.1): FAILED: 1 row(s)" in r.output
    html = (tmp_path / "c.html").read_text()
    assert 'id="gate-failed"' in html and "<script" not in html and 'src="data:image/svg+xml;base64,' in html


def test_cli_exits_0_without_a_gate_under_a_per_path_factor_and_when_faster(slower_pair):
    root, a, b = slower_pair
    assert invoke("compare", str(a), str(b), "--no-html").exit_code == 0
    assert invoke("compare", str(a), str(b), "--no-html", "--fail-above", "numpy=1.6").exit_code == 0
    assert invoke("compare", str(a), str(b), "--no-html", "--fail-above", "2", "--fail-above", "numpy=1.2").exit_code == 1
    assert invoke("compare", str(b), str(a), "--no-html", "--fail-above", "1.1").exit_code == 0  # faster never fails


def test_default_html_goes_into_the_b_folder(slower_pair):
    root, a, b = slower_pair
    r = invoke("compare", "previous", "latest", "--reports", str(root))
    assert r.exit_code == 0, r.output
    assert (b / "compare-a.html").is_file()


@pytest.mark.parametrize("args, message", [
    (["nosuchrun", "b"], "no run 'nosuchrun'"),
    (["a", "b", "--fail-above", "0.9"], "not a factor above 1"),
    (["a", "b", "--fail-above", "fast"], "is not a number"),
    (["a", "b", "--fail-above", "warp=1.2"], "no path 'warp'"),
    (["a", "b", "--html", "x.html", "--no-html"], "conflict"),
])  # fmt: skip
def test_bad_input_exits_2_with_one_line(slower_pair, args, message):
    root, _, _ = slower_pair
    r = invoke("compare", *args, "--reports", str(root))
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("kbench: error:")


def test_a_schema_that_cannot_be_read_exits_2(tmp_path):
    a = write_run(tmp_path, "a", {cell(): {"numpy": 1e-6}})
    future = write_run(tmp_path, "future", {cell(): {"numpy": 1e-6}})
    meta = json.loads((future / "run.json").read_text())
    (future / "run.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(SchemaError):
        load_run(future)
    r = invoke("compare", str(a), str(future), "--no-html")
    assert r.exit_code == 2 and "newer than this kbench reads" in r.output


def test_hostile_model_names_and_options_are_shown_literally(tmp_path):
    c = cell(model=HOSTILE, options=(("[red]opt", "<b>v</b>\x1b[31m"),))
    a = write_run(tmp_path, "a", {c: {"numpy": 1e-6, "call": 1e-4}})
    b = write_run(tmp_path, "b", {c: {"numpy": 1e-6, "call": 1e-4}})
    r = invoke("compare", str(a), str(b), "--html", str(tmp_path / "c.html"))
    assert r.exit_code == 0, r.output
    assert HOSTILE in r.output and "[red]opt=<b>v</b>\\x1b[31m" in r.output and "\x1b" not in r.output
    html = (tmp_path / "c.html").read_text()
    assert "<script>alert" not in html and "<b>v</b>" not in html and "\x1b" not in html
    assert "[bold red]x&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "[red]opt=&lt;b&gt;v&lt;/b&gt;\\x1b[31m" in html


# -- old runs --------------------------------------------------------------------------------------------------------


def test_a_v1_run_compares_with_itself_and_with_a_v2_run(tmp_path):
    v1 = load_run(GOLDEN)
    same = cmp.compare_runs(v1, v1)
    assert len(same.rows) == len(v1.results) and all(r.change.verdict == "same" for r in same.rows)
    assert {r.change.test for r in same.rows} == {"mann-whitney"} and not same.env
    v2 = write_run(tmp_path, "v2", {Cell("dense", "models/dense.py", (("batch", 1), ("features", 128), ("units", 128)),
                                         (("activation", "linear"),), "float32"): {"numpy": 3e-6, "call": 1e-3}})
    mixed = cmp.compare_runs(v1, load_run(v2))
    assert [r.key.path for r in mixed.rows] == ["numpy", "call"] and {r.change.test for r in mixed.rows} == {"pooled-t"}
    assert mixed.only_a and mixed.cross_environment  # ENV here is not the golden run's
    r = invoke("compare", str(GOLDEN), str(v2), "--html", str(tmp_path / "c.html"))
    assert r.exit_code == 0, r.output
    assert "schema v1" in (tmp_path / "c.html").read_text()


def test_holm_adjustment_has_the_textbook_answer():
    from kbench.analysis.significance import holm

    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(2*0.03, 1*0.04); back in the original order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == [] and holm([float("nan"), 0.5]) == [1.0, 1.0]


def test_a_lone_borderline_row_is_not_significant_among_many():
    """One row at p ~ 0.03 among 18 is what chance gives in an A/A pair; after Holm it is 'same'."""
    from kbench.analysis.significance import Change, judged as _judged

    c = Change(1.2, 1.05, 1.37, 0.03, "welch-t", False, True, "slower")
    assert _judged(c, min(1.0, 18 * 0.03), 0.05).verdict == "same"
    assert _judged(c, 0.03, 0.05).verdict == "slower"  # alone, the same row would be called slower
