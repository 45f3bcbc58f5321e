"""The default terminal view of a run (issue 20): one screen of grids, verdicts, the precision reached and only the
warnings a user can act on; everything else behind ``--details``. Result frames are built here with each planted
condition (a ratio's CI across 1, two named paths whose CIs overlap, parity near its tolerance, a fixable machine
finding) and without any, and the lines each gives are checked."""

from pathlib import Path

import pandas as pd
import pytest
from rich.cells import cell_len
from rich.console import Console

from kbench.present import presentation, run_warnings, screen, terminal
from kbench.store.results import load_run

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1-20261126-081219-dense-dot"
PATHS = ("numpy", "predict", "predict_on_batch", "call", "compiled", "xla")
# per batch: each path's median in seconds, like a default run (NumPy fastest, compiled and xla apart by > 10%)
MEDIANS = {1: (3e-6, 40e-3, 460e-6, 1.06e-3, 420e-6, 340e-6), 32: (13e-6, 42e-3, 545e-6, 1.12e-3, 480e-6, 380e-6),
           1024: (350e-6, 90e-3, 1.6e-3, 3.5e-3, 1.36e-3, 1.1e-3)}  # fmt: skip
HALF = 0.04  # every median's 95% CI is ±4%; every ratio's ±5%


def quiet_run(changes: dict | None = None) -> pd.DataFrame:
    """18 rows of a default dense run on a quiet machine: every row flagged unstable and short of a ±2% target
    (as on a slow machine), but no verdict, ratio or parity in doubt. ``changes``: {(batch, path): {column: value}}."""
    rows = []
    for batch, medians in MEDIANS.items():
        for path, median in zip(PATHS, medians):
            ratio = median / medians[0]
            row = {
                "model": "dense", "backend": "tensorflow", "path": path, "sizes": f"batch={batch} features=128 units=128",
                "dtype": "float32", "options": {"activation": "linear"}, "size_batch": batch, "size_features": 128,
                "size_units": 128, "median_s": median, "iqr_s": 0.2 * median, "ci_low_s": median * (1 - HALF),
                "ci_high_s": median * (1 + HALF), "ratio_to_numpy": ratio, "ratio_ci_low": ratio * 0.95,
                "ratio_ci_high": ratio * 1.05, "flops": 2 * 128 * 128 * batch, "parity_ok": True, "parity_tol": 2.2e-5,
                "parity_max_abs_err": 1e-7, "parity_max_rel_err": 2e-7, "parity_twin_max_abs_err": 0.0,
                "parity_message": "", "flags": ["unstable", "ci_not_reached"],
                "warnings": ["unstable: IQR is 20.0% of the median", "budget spent before the median's 95% CI reached the target"],
            }  # fmt: skip
            row.update((changes or {}).get((batch, path), {}))
            rows.append(row)
    return pd.DataFrame(rows)


META = {"plan": {"timer": {"target_ci": 0.02}, "gaps": [], "rate": None},
        "machine": ["machine check: ok blas, load, cores, threads (`kbench env --check` for details)"],
        "machine_findings": [{"kind": "load", "level": "ok", "found": "load average 0.1", "cost": "", "fix": ""},
                             {"kind": "cpufreq", "level": "info", "found": "governor not readable (a VM)",
                              "cost": "figures can drift", "fix": "compare paths within one run"}],
        "peak": {"gflops_float32": 67.0, "gflops_float64": 33.0, "copy_gbps": 9.0},
        "imports": {"tensorflow": {"numpy": 0.1, "backend": 7.5}}}  # fmt: skip


def shown(items, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, highlight=False, force_terminal=False)
    for item in items:
        console.print(item, soft_wrap=True)
    return console.export_text().splitlines()


def screen_lines(lines: list[str], width: int = 80) -> int:
    """Lines as a terminal ``width`` columns wide shows them (a longer line wraps)."""
    return sum(max(1, -(-cell_len(line.rstrip()) // width)) for line in lines)


def warning_lines(df: pd.DataFrame, meta: dict = META) -> list[str]:
    return [line for line in shown(terminal.run_view(df, meta)) if line.startswith("warning:")]


def test_a_quiet_run_warns_about_nothing_and_states_its_precision():
    lines = shown(terminal.run_view(quiet_run(), META))
    assert [line for line in lines if line.startswith("warning:")] == []
    assert "precision: medians ±4% (95% CI half-width, median over 18 rows; widest ±4%)" in lines
    text = "\n".join(lines)
    assert "unstable" not in text and "spent their budget" not in text and "±2%" not in text


def test_the_time_plan_says_what_it_trimmed_and_is_silent_otherwise():
    plan = {**META["plan"], "timer": {"target_ci": 0.02, "budget_s": 4.0}, "processes": 3, "cell_goal_s": 15.0,
            "cells": [{}, {}, {}]}  # fmt: skip
    trimmed = {**META, "plan": plan, "backends": ["tensorflow"], "cell_budgets_s": [1.33, 0.5, 0.3, 0.41]}
    lines = shown(terminal.run_view(quiet_run(), trimmed))
    assert ("time: 3 of 4 cell runs sampled less than 1.3 s, down to 0.3 s, to keep the 45 s goal; --cell-budget "
            "or --budget to choose" in " ".join(lines))
    kept = {**trimmed, "cell_budgets_s": [4.0 / 3] * 9}
    assert not [line for line in shown(terminal.run_view(quiet_run(), kept)) if line.startswith("time:")]
    slight = {**trimmed, "cell_budgets_s": [4.0 / 3] * 8 + [0.3]}  # a 9% cut: said nowhere but in run.json
    assert not [line for line in shown(terminal.run_view(quiet_run(), slight)) if line.startswith("time:")]
    cut = {**trimmed, "cell_budgets_s": [4.0 / 3] * 8 + [0.05]}  # 10% or more: said
    assert [line for line in shown(terminal.run_view(quiet_run(), cut)) if line.startswith("time: 1 of 9")]
    chosen = {**trimmed, "plan": {**plan, "cell_goal_s": None}}  # the user set the time: nothing to say
    assert not [line for line in shown(terminal.run_view(quiet_run(), chosen)) if line.startswith("time:")]


def test_the_default_view_is_one_grid_then_the_verdict_then_the_hint():
    lines = shown(terminal.run_view(quiet_run(), META))
    assert lines[0] == "dense · features=128 units=128 · activation=linear · float32"
    header = next(line for line in lines if line.lstrip().startswith("path"))
    assert header.split() == ["path", "batch=1", "batch=32", "batch=1024"]
    numpy = next(line for line in lines if line.lstrip().startswith("numpy"))
    assert numpy.split() == ["numpy", "3", "µs", "1×", "✓", "13", "µs", "1×", "✓", "350", "µs", "1×", "✓"]
    compiled = next(line for line in lines if line.lstrip().startswith("compiled"))
    assert compiled.split()[1:5] == ["420", "µs", "140×", "✓"]
    assert "NumPy wins at every batch: the fastest Keras path takes 3.14×–113× its time." in lines
    assert "If you must call Keras, use xla." in lines
    assert lines[-1] == terminal.HINT
    for absent in ("where the time goes", "single calls", "1st call", "import (", "machine peak", "machine check"):
        assert absent not in "\n".join(lines[:-1]), absent


def test_a_ratio_whose_ci_crosses_1_warns():
    df = quiet_run({(1024, "xla"): {"median_s": 340e-6, "ratio_to_numpy": 0.97, "ratio_ci_low": 0.9, "ratio_ci_high": 1.04}})
    assert warning_lines(df) == [
        "warning: 1 ratio to NumPy could flip (95% CI crosses 1×); e.g. xla at dense batch=1024 features=128 "
        "units=128: 0.97× [0.9–1.04]"
    ]


def test_the_ratio_warning_names_the_verdicts_path_first():
    """Two ratios cross 1 at batch=1024; the one shown is xla's, the Keras path the verdict names there."""
    df = quiet_run({(1024, "xla"): {"median_s": 300e-6, "ratio_to_numpy": 0.86, "ratio_ci_low": 0.5, "ratio_ci_high": 1.3},
                    (1024, "compiled"): {"median_s": 340e-6, "ratio_to_numpy": 0.97, "ratio_ci_low": 0.9,
                                         "ratio_ci_high": 1.04, "ci_low_s": 330e-6, "ci_high_s": 350e-6}})  # fmt: skip
    lines = warning_lines(df)
    assert lines[0].startswith("warning: 2 ratios to NumPy could flip (95% CI crosses 1×); e.g. xla at dense batch=1024")


def test_two_named_paths_whose_cis_overlap_warn():
    """At batch=32 xla (the path the verdict names) and compiled are 2% apart with ±4% CIs."""
    df = quiet_run({(32, "compiled"): {"median_s": 388e-6, "ci_low_s": 372e-6, "ci_high_s": 403e-6}})
    assert warning_lines(df) == [
        "warning: xla vs compiled: order uncertain (95% CIs overlap) in 1 of 3 cells; first: dense batch=32 "
        "features=128 units=128"
    ]


def test_parity_close_to_its_tolerance_warns_and_a_failure_stays_loud():
    df = quiet_run({(1, "call"): {"parity_max_rel_err": 1.5e-5}})
    assert warning_lines(df) == [
        "warning: 1 row passed parity within 2× of the tolerance; closest: call at dense batch=1 features=128 "
        "units=128, scaled error 1.50e-05 = 0.68× the tolerance 2.20e-05"
    ]
    failed = quiet_run({(1, "call"): {"parity_ok": False, "parity_max_rel_err": 3e-5, "parity_message": "too far"}})
    lines = shown(terminal.run_view(failed, META))
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: 1 of 18 rows failed parity; worst: call at dense batch=1 features=128 units=128, scaled error "
        "3.00e-05 against a tolerance of 2.20e-05"
    ]
    assert "Left out because they failed parity: call." in lines
    assert next(line for line in lines if line.lstrip().startswith("call")).count("✗") == 1


def test_rows_measured_beside_another_busy_process_warn_once_with_the_worst_and_the_fix():
    contended = {"flags": ["contended"], "warnings": ["contended: other processes took 41% of the CPUs"]}
    df = quiet_run({(32, "numpy"): {**contended, "others_cpu": 0.41}, (1, "call"): {**contended, "others_cpu": 0.12}})
    expected = ("warning: 2 of 18 rows contended: other processes took up to 41% of the CPUs while they were timed "
                "(numpy at dense batch=32 features=128 units=128), and these medians hold their time slices; fix: "
                "stop the other work (--rigorous samples longer on a shared CPU), or compare only runs taken alike")  # fmt: skip
    assert warning_lines(df) == [expected]
    assert run_warnings.digest(df, META)[0] == expected  # the report's digest says it too, not as a bare flag
    assert not [line for line in run_warnings.digest(df, META) if "flagged contended" in line]


def test_a_fixable_machine_finding_warns_and_an_info_one_does_not():
    fixable = {"kind": "threads", "level": "warn", "found": "OMP_NUM_THREADS=8 on 2 usable cores",
               "cost": "threads compete for cores", "fix": "unset OMP_NUM_THREADS"}  # fmt: skip
    meta = {**META, "machine_findings": [*META["machine_findings"], fixable]}
    assert warning_lines(quiet_run(), meta) == [
        "warning: machine: OMP_NUM_THREADS=8 on 2 usable cores; fix: unset OMP_NUM_THREADS"
    ]
    many = {**META, "machine_findings": [fixable] * 4}
    assert warning_lines(quiet_run(), many)[-1] == "warning: machine: 2 more finding(s) to fix: see `kbench env --check`"
    old = {"machine": ["machine: governor powersave; fix: cpupower frequency-set -g performance", "machine check: ok"]}
    assert run_warnings.warnings(quiet_run(), old) == (
        "warning: machine: governor powersave; fix: cpupower frequency-set -g performance",
    )  # a run that recorded only the check's lines


def test_keras_winning_somewhere_is_said_with_its_margin():
    df = quiet_run({(1024, "xla"): {"median_s": 233e-6, "ratio_to_numpy": 233 / 350, "ratio_ci_low": 0.6,
                                      "ratio_ci_high": 0.7}})  # fmt: skip
    lines = presentation.build(presentation.prepare(df), META).screen.verdicts
    assert lines[:3] == (
        "NumPy wins at batch=1 and 32: the fastest Keras path takes 29.2×–113× its time.",
        "If you must call Keras, use xla.",
        "Keras wins at batch=1024: use xla, 1.5× faster than NumPy.",
    )
    (crossing,) = lines[3:]  # a sweep that crosses NumPy adds its crossover sentence
    assert crossing.startswith("dense at features=128 units=128: below batch ≈ ") and "above it xla wins" in crossing


def test_the_default_view_of_a_realistic_run_fits_one_screen():
    """The golden run (two models, two sizes each) and a default-like run of three sizes, at 80 columns."""
    run = load_run(GOLDEN)
    golden = shown(terminal.run_view(run.results, run.meta))
    default = shown(terminal.run_view(quiet_run(), META))
    assert screen_lines(golden) <= 40 and screen_lines(default) <= 40
    assert all(cell_len(line.rstrip()) <= 80 for line in golden if not line.startswith(("warning:", "dense:", "dot:")))
    assert sum(line.startswith(("dense ·", "dot ·")) for line in golden) == 2  # one grid per model


def test_details_keep_the_cell_tables_the_machine_check_and_the_stability_notes():
    lines = shown(terminal.run_view(quiet_run(), META, details=True))
    text = "\n".join(lines)
    assert lines[0] == META["machine"][0]
    for present in ("1st call", "n×loops", "import (tensorflow worker)", "machine peak (NumPy BLAS): float32 67",
                    "note: 18 of 18 rows unstable", "note: 18 of 18 rows spent their budget"):  # fmt: skip
        assert present in text, present
    assert "precision: medians ±4%" in text and terminal.HINT not in text
    assert not [line for line in lines if line.startswith("warning:")]


def test_a_wide_grid_is_split_to_fit_the_width():
    rows = [{**r, "sizes": f"batch={b}", "size_batch": b} for b in (1, 2, 4, 8, 16, 32, 64, 128)
            for r in quiet_run().head(6).to_dict("records")]  # fmt: skip
    (grid,) = screen.grids(presentation.prepare(pd.DataFrame(rows)).results)
    assert grid.columns == tuple(f"batch={b}" for b in (1, 2, 4, 8, 16, 32, 64, 128))
    tables = terminal.grid_tables(grid, 80)
    assert len(tables) > 1 and sum(len(t.columns) - 1 for t in tables) == 8
    assert all(cell_len(line.rstrip()) <= 80 for line in shown(tables))


@pytest.mark.parametrize("labels, every, words", [
    (["batch=1", "batch=32", "batch=1024"], False, " at batch=1, 32 and 1024"),
    (["batch=1", "batch=32"], True, " at every batch"),
    (["batch=1 units=2", "batch=2 units=4"], False, " at batch=1 units=2, batch=2 units=4"),
    ([""], True, ""),  # one size: "NumPy wins: ...", not "NumPy wins at here"
])  # fmt: skip
def test_where_list_names_the_sizes_briefly(labels, every, words):
    assert screen.where_list(labels, every) == words


def test_a_one_size_verdict_reads_as_a_sentence():
    rows = quiet_run()
    one = rows[rows["sizes"].eq(rows["sizes"].iloc[0])]
    lines = shown(terminal.run_view(one, META))
    verdict = next(line for line in lines if line.startswith(("NumPy wins", "Keras wins")))
    assert verdict.startswith(("NumPy wins: the fastest Keras path takes", "Keras wins: use")), verdict


def test_a_parity_check_without_timings_shows_its_tables_and_no_verdict():
    timing = ["median_s", "iqr_s", "ci_low_s", "ci_high_s", "ratio_to_numpy", "ratio_ci_low", "ratio_ci_high"]
    df = quiet_run().assign(**{c: None for c in timing}, flags=[[]] * 18, warnings=[[]] * 18)  # `kbench parity`: no timings
    view = presentation.build(presentation.prepare(df), {})
    assert view.screen.verdicts == () and view.precision == "" and view.warnings == ()
    assert len(terminal.parity_view(df)) == 3
