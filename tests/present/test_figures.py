"""Figures are pure functions DataFrame -> Figure: checked on synthetic results, no worker needed."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from kbench.present import figures
from kbench.measure.callpaths import DEFAULT_PATHS
from kbench.measure.callpaths import paths_for

PATHS = paths_for("tensorflow", DEFAULT_PATHS)  # what a default run measures


def synthetic(batches=(1, 32, 1024), model="dense"):
    rows, samples = [], []
    rng = np.random.default_rng(0)
    for b in batches:
        for i, path in enumerate(PATHS):
            median = (2e-6 if path == "numpy" else 4e-4 * (i + 1)) * (1 + b / 256)
            rows.append({
                "model": model, "sizes": f"batch={b} features=8", "dtype": "float32", "options": "{}", "path": path,
                "size_batch": b, "size_features": 8, "median_s": median, "q1_s": median * 0.95, "q3_s": median * 1.05,
                "iqr_s": median * 0.1, "build_s": np.nan if path == "numpy" else 0.01, "first_call_s": median * 30,
                "retrace_s": median * 20, "parity_ok": True, "import_s": 0.05 if path == "numpy" else 2.5,
            })  # fmt: skip
            for s in rng.normal(median, median * 0.05, 12):
                samples.append({"model": model, "sizes": f"batch={b} features=8", "path": path, "seconds": abs(s)})
    df = pd.DataFrame(rows)
    base = df[df["path"] == "numpy"].set_index("sizes")["median_s"]
    df["ratio_to_numpy"] = df["median_s"] / df["sizes"].map(base)
    return df, pd.DataFrame(samples)


def _tick_labels(ax, axis="y"):
    ax.figure.canvas.draw() if hasattr(ax.figure.canvas, "draw") else None
    ticks = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in ticks if t.get_text()]


@pytest.fixture
def data():
    return synthetic()


def test_every_figure_is_a_figure_with_content(data):
    df, samples = data
    for fig in (figures.latency_figure(df, "dense"), figures.ratio_heatmap(df, "dense"),
                figures.cold_start_figure(df, "dense"), figures.distribution_figure(samples, "dense")):  # fmt: skip
        assert isinstance(fig, Figure)
        assert fig.axes
        png = figures.to_png(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_latency_is_log_log_over_decades_with_one_line_per_path_in_its_colour(data):
    df, _ = data
    ax = figures.latency_figure(df, "dense").axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "batch"
    series = {c.get_label(): c.lines[0] for c in ax.containers}  # one errorbar container per path
    assert set(series) == set(PATHS)
    for path, line in series.items():
        assert np.allclose(matplotlib.colors.to_rgb(line.get_color()), figures.PATH_COLORS[path])
        assert len(line.get_xdata()) == 3


def test_time_axes_are_labelled_with_units(data):
    df, _ = data
    fig = figures.latency_figure(df, "dense")
    fig.canvas.draw()
    labels = " ".join(_tick_labels(fig.axes[0], "y"))
    assert "µs" in labels or "ms" in labels
    assert "time per call" in fig.axes[0].get_ylabel()


def test_single_cell_latency_is_a_bar_per_path(data):
    df, _ = data
    one = df[df["size_batch"] == 32]
    ax = figures.latency_figure(one, "dense").axes[0]
    assert len(ax.patches) == len(PATHS)
    assert np.allclose([p.get_facecolor()[:3] for p in ax.patches], [figures.PATH_COLORS[p] for p in PATHS])


def test_heatmap_annotates_every_ratio(data):
    df, _ = data
    ax = figures.ratio_heatmap(df, "dense").axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(df)
    assert texts.count("1×") == 3  # numpy against itself, once per batch
    assert [t.get_text() for t in ax.get_xticklabels()] == ["batch=1", "batch=32", "batch=1024"]


def test_no_global_style_is_touched(data):
    df, samples = data
    before = dict(matplotlib.rcParams)
    figures.latency_figure(df, "dense")
    figures.distribution_figure(samples, "dense")
    after = dict(matplotlib.rcParams)
    assert before == after


def test_dollar_signs_and_markup_in_names_stay_text():
    df, samples = synthetic(model="$x^2$ <b>")
    fig = figures.latency_figure(df, "$x^2$ <b>")
    assert "$x^2$ <b>" in fig.axes[0].get_title(loc="left")
    figures.to_png(fig)  # mathtext would fail to parse or render differently; parse_math is off


def test_latency_draws_the_fitted_curve_per_path(data):
    from kbench.analysis.sweep import fit_overhead

    df, _ = data
    df = df.assign(flops=df["size_batch"] * 2 * 8 * 8)
    ax = figures.latency_figure(df, "dense", fit_overhead(df)).axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == len(PATHS)


def test_ratio_figure_marks_crossovers(data):
    from kbench.analysis.sweep import crossovers

    df, _ = data
    df = df.assign(ratio_ci_low=df["ratio_to_numpy"] * 0.9, ratio_ci_high=df["ratio_to_numpy"] * 1.1)
    cross = crossovers(df).assign(crossover=[64.0] + [None] * (len(PATHS) - 2))
    ax = figures.ratio_figure(df, "dense", cross).axes[0]
    assert ax.get_yscale() == "log" and len(ax.containers) == len(PATHS) - 1  # numpy is the 1x line itself
    markers = [ln for ln in ax.get_lines() if ln.get_marker() == "X"]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [64.0]


def test_roofline_puts_every_timed_cell_under_the_roof(data):
    df, _ = data
    df = df.assign(flops=df["size_batch"] * 2 * 8 * 8, bytes=4 * (df["size_batch"] * 16 + 72))
    df = df.assign(gflops=df["flops"] / df["median_s"] / 1e9, dtype="float32")
    ax = figures.roofline_figure(df, {"gflops_float32": 100.0, "gflops_float64": 50.0, "copy_gbps": 10.0}).axes[0]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == len(df)
    roof = ax.get_lines()[0]
    assert max(roof.get_ydata()) == 100.0


def test_cold_start_shows_import_build_first_retrace_and_steady_per_path(data):
    df, _ = data
    fig = figures.cold_start_figure(df, "dense")
    assert len(fig.axes) == 3  # one per cell
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["import", "build", "first call", "retrace", "steady call"]
    # numpy has no build: 4 bars for it, 5 for each Keras path, per cell
    bars = [p for p in fig.axes[0].patches if p.get_width() > 0]
    assert len(bars) == 4 + 5 * (len(PATHS) - 1)


def test_roofline_has_a_marker_for_any_number_of_models(data):
    df, _ = data
    many = pd.concat([df.assign(model=f"m{i}") for i in range(12)])
    many = many.assign(flops=many["size_batch"] * 128, bytes=4 * (many["size_batch"] * 16 + 72), dtype="float32")
    many = many.assign(gflops=many["flops"] / many["median_s"] / 1e9)
    fig = figures.roofline_figure(many, {"gflops_float32": 100.0, "gflops_float64": 50.0, "copy_gbps": 10.0})
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == len(many)


def test_svg_is_well_formed_xml_with_hostile_names_spelled_out():
    """The report embeds figures as SVG: a model name with markup, a control character and a bidi override must
    come out as text in well-formed XML (an XML parser refuses a raw control character), never as an element."""
    import xml.etree.ElementTree as ET

    name = "<script>alert(1)</script>\x1b[31m\u202e$x$"
    df, _ = synthetic(model=name)
    svg = figures.to_svg(figures.latency_figure(df, name))
    root = ET.fromstring(svg)  # raises on malformed XML
    assert not [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "script"]
    texts = " ".join(t for el in root.iter() for t in [el.text or ""])
    assert "<script>alert(1)</script>\\x1b[31m\\u202e$x$" in texts
    assert b"\x1b" not in svg


@pytest.mark.parametrize("batches, lines", [((1, 32, 1024), False), ((1, 8, 64, 512), True)])
def test_figures_against_the_size_need_four_sizes(batches, lines):
    """Against 3 sizes a line adds nothing to the heatmap and the per-cell bars; from 4 it shows the trend."""
    from types import SimpleNamespace

    from kbench.present import report

    df, samples = synthetic(batches)
    makers = report._model_makers(SimpleNamespace(fits=None, cross=None), df, samples, "dense")
    assert ("ratio_line" in makers) is lines and "ratio" in makers and "latency" in makers
