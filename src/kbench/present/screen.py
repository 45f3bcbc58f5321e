"""The run on one screen: per model one grid (paths as rows, sizes as columns, each cell the median, the ratio to
NumPy and the parity mark) and the verdict in a few short sentences. :mod:`kbench.present.terminal` lays them out;
the per-cell tables, where the time goes, single calls and cold start are the ``--details`` view.

Sizes are split into the words of each cell's label (``batch=1 features=128 units=128``): the words every cell of a
grid shares go to its title, the others name its columns. Every string has gone through
:func:`kbench.core.fmt.visible`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from kbench.analysis.sweep import headlines, verdict_table
from kbench.core.fmt import fmt_ratio, fmt_time, missing, options_label, visible
from kbench.measure.callpaths import BASELINE

GRID_KEYS = ["model", "dtype", "options_label"]  # one grid per model, dtype and options


@dataclass(frozen=True)
class GridCell:
    """One path at one size: ``median`` and ``ratio`` as shown, and whether it passed parity."""

    median: str
    ratio: str
    ok: bool


@dataclass(frozen=True)
class GridRow:
    path: str
    baseline: bool
    cells: tuple[GridCell | None, ...]  # aligned with the grid's columns; None where the path did not run


@dataclass(frozen=True)
class Grid:
    """One model (dtype, options): the sizes its cells share in the title, the rest as columns."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[GridRow, ...]


@dataclass(frozen=True)
class Screen:
    grids: tuple[Grid, ...] = ()
    verdicts: tuple[str, ...] = ()  # short sentences: who wins where, and what to call from Keras


def _words(sizes: str) -> list[str]:
    return str(sizes).split(" ")


def split_sizes(labels: Sequence[str]) -> tuple[str, list[str]]:
    """The words every label shares (in the first label's order), and each label without them."""
    words = [_words(s) for s in labels]
    common = [w for w in words[0] if all(w in ws for ws in words)] if words else []
    rest = [" ".join(w for w in ws if w not in common) for ws in words]
    return " ".join(common), rest


def _grid_cell(r: Any) -> GridCell:
    return GridCell(fmt_time(r.get("median_s")), fmt_ratio(r.get("ratio_to_numpy")), bool(r["parity_ok"]))


def _grid(key: tuple, g: pd.DataFrame) -> Grid:
    model, dtype, _ = key
    labels = list(dict.fromkeys(g["sizes"]))
    fixed, varying = split_sizes(labels)
    if len(labels) == 1:
        fixed, varying = "", ["median · ×NumPy"]
    opts = options_label(g["options"].iloc[0], 80) if "options" in g else ""
    title = " · ".join(visible(p) for p in (model, fixed, "") if p) + (f" · {opts}" if opts else "")
    title += f" · {visible(dtype)}" if dtype else ""
    rows = []
    for path, p in g.groupby("path", sort=False):
        by_size = {r["sizes"]: r for _, r in p.iterrows()}
        cells = tuple(_grid_cell(by_size[s]) if s in by_size else None for s in labels)
        rows.append(GridRow(visible(path), path == BASELINE, cells))
    return Grid(title, tuple(visible(v) for v in varying), tuple(rows))


def grids(df: pd.DataFrame) -> tuple[Grid, ...]:
    """One grid per model, dtype and options, in the order the cells ran."""
    if df.empty:
        return ()
    return tuple(_grid(key, g) for key, g in df.groupby(GRID_KEYS, sort=False, dropna=False))


def where_list(labels: Sequence[str], every: bool) -> str:
    """``" at batch=1, 32 and 1024"`` (one size word varying), ``" at every batch"``, the labels joined by commas,
    or nothing for a grid of one size (``"NumPy wins: ..."``)."""
    if not labels or labels == [""]:
        return ""
    return " at " + _where(labels, every)


def _where(labels: Sequence[str], every: bool) -> str:
    keys = {lab.partition("=")[0] for lab in labels}
    if len(keys) == 1 and all(" " not in lab and "=" in lab for lab in labels):
        key = next(iter(keys))
        if every and len(labels) > 1:
            return f"every {key}"
        values = [lab.partition("=")[2] for lab in labels]
        return f"{key}={values[0]}" if len(values) == 1 else f"{key}={', '.join(values[:-1])} and {values[-1]}"
    return "every size" if every and len(labels) > 1 else ", ".join(labels)


def _range(ratios: Sequence[float]) -> str:
    lo, hi = min(ratios), max(ratios)
    return fmt_ratio(lo) if fmt_ratio(lo) == fmt_ratio(hi) else f"{fmt_ratio(lo)}–{fmt_ratio(hi)}"


def _keras_choice(cells: Sequence[tuple[str, Any]], invert: bool) -> tuple[str, str]:
    """The fastest Keras path, ``"compiled"`` or ``"compiled at batch=1 and 1024, xla at batch=32"``, and the range
    of its ratios to NumPy (inverted: how many times faster than NumPy)."""
    by_path: dict[str, list[str]] = {}
    ratios = []
    for label, v in cells:
        by_path.setdefault(visible(v.keras_best), []).append(label)
        ratios.append(1 / float(v.keras_best_ratio) if invert else float(v.keras_best_ratio))
    if len(by_path) == 1:
        return next(iter(by_path)), _range(ratios)
    return ", ".join(f"{path}{where_list(labels, False)}" for path, labels in by_path.items()), _range(ratios)


def _grid_verdicts(g: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    labels = list(dict.fromkeys(g["sizes"]))
    _, short = split_sizes(labels)
    short_of = dict(zip(labels, [visible(s) for s in short] if len(labels) > 1 else [""]))
    rows = table[table["model"].eq(g["model"].iloc[0]) & table["sizes"].isin(labels)]
    kinds: dict[str, list[tuple[str, Any]]] = {"numpy": [], "keras": [], "no_twin": [], "none": [], "keras_only": []}
    for v in rows.itertuples():
        kind = ("none" if v.recommended is None else "keras_only" if v.keras_best is None
                else "no_twin" if missing(v.keras_best_ratio) else "keras" if float(v.keras_best_ratio) <= 1 else "numpy")
        kinds[kind].append((short_of[v.sizes], v))  # fmt: skip
    every = {k: len(c) == len(labels) for k, c in kinds.items()}
    at = {k: where_list([lab for lab, _ in c], every[k]) for k, c in kinds.items()}
    out = []
    if kinds["numpy"]:
        use, ratios = _keras_choice(kinds["numpy"], False)
        out += [f"NumPy wins{at['numpy']}: the fastest Keras path takes {ratios} its time.",
                f"If you must call Keras, use {use}."]  # fmt: skip
    if kinds["keras"]:
        use, ratios = _keras_choice(kinds["keras"], True)
        out.append(f"Keras wins{at['keras']}: use {use}, {ratios} faster than NumPy.")
    if kinds["keras_only"]:
        out.append(f"Use {visible(kinds['keras_only'][0][1].recommended)}{at['keras_only']}: no Keras path passed parity.")
    if kinds["no_twin"]:
        best = dict.fromkeys(visible(v.keras_best) for _, v in kinds["no_twin"])
        out.append(f"Fastest Keras path{at['no_twin']}: {', '.join(best)} (no NumPy twin to compare with).")
    if kinds["none"]:
        out.append(f"No path passed parity{at['none']}.")
    out += _serving(rows, short_of)
    bad = sorted({visible(p) for v in rows.itertuples() for p in v.failed_parity})
    return out + ([f"Left out because they failed parity: {', '.join(bad)}."] if bad else [])


def _serving(rows: pd.DataFrame, short_of: dict[str, str]) -> list[str]:
    """When the run timed serving runtimes: the fastest way to serve the model, e.g. "Serve with onnxruntime: 1.4×
    NumPy's time at batch=1; the NumPy twin is fastest of all paths at batch=1 and 32"."""
    if "served_best" not in rows or rows["served_best"].isna().all():
        return []
    cells = [(short_of[v.sizes], v) for v in rows.itertuples() if isinstance(v.served_best, str)]
    by_runtime: dict[str, list[str]] = {}
    for label, v in cells:
        by_runtime.setdefault(visible(v.served_best), []).append(label)
    use = next(iter(by_runtime)) if len(by_runtime) == 1 else \
        ", ".join(f"{rt}{where_list(labels, False)}" for rt, labels in by_runtime.items())  # fmt: skip
    ratios = [float(v.served_best_ratio) for _, v in cells if not missing(v.served_best_ratio)]
    if not ratios:
        return [f"Serve with {use}: the fastest runtime (no NumPy twin to compare with)."]
    line = f"Serve with {use}: {_range(ratios)} NumPy's time{where_list([lab for lab, _ in cells], False)}"
    numpy_cells = [label for label, v in cells if v.recommended == BASELINE]
    if numpy_cells:
        line += f"; the NumPy twin is fastest of all paths{where_list(numpy_cells, len(numpy_cells) == len(cells))}"
    return [line + "."]


def _crossing_headlines(df: pd.DataFrame, cross: pd.DataFrame) -> list[str]:
    """The sweep sentences that name a crossover (the others say what the grid's verdict already says)."""
    if cross.empty:
        return []
    keep = cross.groupby(["model", "swept", "fixed"], sort=False)["crossover"].transform(lambda c: c.notna().any())
    return [visible(h) for h in headlines(df, cross[keep.astype(bool)])] if keep.any() else []


def verdict_lines(df: pd.DataFrame, cross: pd.DataFrame) -> tuple[str, ...]:
    """Per grid: who wins at which sizes, and which Keras path to call; then any crossover a sweep found."""
    if df.empty:
        return ()
    table = verdict_table(df)
    if table.empty:  # nothing timed (a parity check)
        return ()
    out = []
    groups = list(df.groupby(GRID_KEYS, sort=False, dropna=False))
    for key, g in groups:
        lines = _grid_verdicts(g, table)
        out += [f"{visible(key[0])}: {line}" for line in lines] if len(groups) > 1 else lines
    return tuple(out + _crossing_headlines(df, cross))


def screen(df: pd.DataFrame, cross: pd.DataFrame) -> Screen:
    return Screen(grids(df), verdict_lines(df, cross))

