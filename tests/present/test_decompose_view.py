"""Where the time goes, as shown (kbench.present.decompose): the overhead's words, the cell's sentence, the breakdown
rows and their bars."""

import pytest

from kbench.analysis.decompose import Estimate, decompose, from_row
from kbench.core.fmt import fmt_time
from kbench.present.decompose import breakdown, cell_sentence, overhead_text, span_text

US = 1e-6



def est(median_us, low_us, high_us) -> Estimate:
    return Estimate(median_us * US, low_us * US, high_us * US)


def test_a_negative_overhead_within_noise_is_said_to_be_noise_and_never_shown_as_a_share():
    d = decompose(est(60, 50, 75), est(55, 52, 57), est(6, 5, 7), est(2, 2, 3))
    assert d.overhead_s == pytest.approx(-3 * US)
    assert d.overhead_low_s < 0 < d.overhead_high_s and d.within_noise
    assert d.shares()["overhead"] == 0.0
    shown, span = overhead_text(d, fmt_time)
    assert shown == "≈0 (noise)"
    assert span.startswith("−") and span.endswith("µs") and "…" in span


def test_an_interval_is_written_in_one_unit_that_keeps_it_narrow():
    assert span_text(-92.7 * US, 226 * US) == "−92.7…226 µs"
    assert span_text(411 * US, 1260 * US) == "411…1260 µs"  # the smaller end's unit: "0.411…1.26 ms" is wider
    assert span_text(28.8e-3, 67.5e-3) == "28.8…67.5 ms"
    assert span_text(-0.3 * US, 2e-3) == "−0.0003…2 ms"  # ends 1,000× apart: the larger end's unit


def test_references_that_exceed_the_path_beyond_noise_are_said_to_do_so():
    d = decompose(est(60, 59, 61), est(80, 79, 81), est(5, 5, 5), est(1, 1, 1))
    assert d.overhead_high_s < 0 and not d.within_noise
    assert "refs > path" in overhead_text(d, fmt_time)[0]
    assert "the references exceed the path beyond their noise" in cell_sentence("n=1", {"compiled": d})


def _row(path, median_us, floor_us=None, cin_us=10.0, cout_us=5.0, floor="tf.function", dispatch_us=None):
    row = {"path": path, "median_s": median_us * US, "sizes": "batch=1", "model": "dense"}
    if floor_us is not None:
        exact = lambda us: est(us, us, us)  # noqa: E731
        d = decompose(est(median_us, median_us * 0.95, median_us * 1.05), exact(floor_us), exact(cin_us),
                                exact(cout_us))  # fmt: skip
        dispatch = None if dispatch_us is None else dispatch_us * US
        row.update(floor_s=d.floor_s, floor_name=floor, dispatch_s=dispatch, conversion_in_s=d.conversion_in_s,
                   conversion_out_s=d.conversion_out_s, overhead_s=d.overhead_s, overhead_low_s=d.overhead_low_s,
                   overhead_high_s=d.overhead_high_s)  # fmt: skip
    return row


def test_the_sentence_names_the_fastest_keras_path_its_largest_share_and_compute_against_numpy():
    rows = [_row("numpy", 20.0), _row("call", 1000.0, 50.0), _row("compiled", 400.0, 30.0)]
    decomps = {r["path"]: d for r in rows if (d := from_row(r)) is not None}
    assert set(decomps) == {"call", "compiled"}
    text = cell_sentence("batch=1", decomps, 20e-6)
    assert text.startswith("At batch=1, 89% of compiled (the fastest Keras path) is framework overhead")
    assert "compute 8%, dispatch 0%, conversion 4%, framework overhead 89%" in text
    assert "this backend's dispatch is not timed apart, so compute holds it" in text
    assert "compute alone takes 1.5× NumPy's time, the path 20×" in text
    assert cell_sentence("batch=1", {}) == ""


def test_a_floor_that_is_mostly_dispatch_is_called_dispatch_not_compute():
    rows = [_row("numpy", 4.0), _row("xla", 300.0, 240.0, 10.0, 6.0, "xla", dispatch_us=228.0)]
    text = cell_sentence("batch=1", {"xla": from_row(rows[1])}, 4e-6)
    assert text.startswith("At batch=1, 76% of xla (the fastest Keras path) is dispatch")
    assert "compute 4%, dispatch 76%" in text and "compute alone takes 3× NumPy's time, the path 75×" in text
    assert "not timed apart" not in text


def test_a_cell_breakdown_shows_every_keras_path_with_a_bar_of_its_split_and_numpys_time():
    b = breakdown([_row("numpy", 20.0), _row("compiled", 400.0, 300.0), _row("h2d", 5.0)], "n=1024",
                            model="matmul")  # fmt: skip
    assert (b.numpy, b.model, [r.path for r in b.rows]) == ("20 µs", "matmul", ["compiled"])
    r = b.rows[0]
    assert (r.compute, r.dispatch, r.conversion, r.overhead, r.floor) == ("300 µs", "", "15 µs", "85 µs",
                                                                            "tf.function")  # fmt: skip
    assert r.bar == "██████░░"  # 75% compute, 4% conversion, 21% overhead, of 8 characters
    split = breakdown([_row("numpy", 20.0), _row("compiled", 400.0, 300.0, dispatch_us=200.0)], "n=1").rows[0]
    assert (split.compute, split.dispatch, split.bar) == ("100 µs", "200 µs", "██▓▓▓▓░░")
    assert breakdown([_row("numpy", 20.0)], "n=1").rows == ()


def test_a_serving_runtime_gets_its_own_row_but_the_sentence_stays_about_the_keras_paths():
    runtime = {**_row("litert", 9.0, 6.0, 1.5, 0.5, floor="litert run"), "runtime": "ai-edge-litert 2.3.0"}
    b = breakdown([_row("numpy", 4.0), _row("compiled", 400.0, 300.0), runtime], "batch=1")
    assert [r.path for r in b.rows] == ["compiled", "litert"] and b.rows[1].floor == "litert run"
    assert "of compiled (the fastest Keras path)" in b.sentence and "litert" not in b.sentence


def test_the_reports_figure_draws_the_rows_own_compute_not_the_floor_less_dispatch():
    """A profiled row's bar splits its floor as the row (and the terminal) does; a row without ``compute_s`` falls
    back to its dispatch reference, and one with neither is all compute."""
    import numpy as np
    import pandas as pd

    from kbench.present.decompose_figures import part_widths

    d = pd.DataFrame({"floor_s": [300e-6, 300e-6, 50e-6], "compute_s": [10e-6, np.nan, np.nan],
                      "dispatch_s": [200e-6, 240e-6, np.nan], "conversion_in_s": [1e-6] * 3,
                      "conversion_out_s": [2e-6] * 3, "overhead_s": [5e-6] * 3})  # fmt: skip
    parts = part_widths(d)
    np.testing.assert_allclose(parts["compute"], [10e-6, 60e-6, 50e-6])
    np.testing.assert_allclose(parts["dispatch"], [290e-6, 240e-6, 0.0])
