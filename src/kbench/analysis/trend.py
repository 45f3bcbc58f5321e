"""One cell's trend across runs: :func:`trend` follows one cell (model, backend, path, sizes, dtype, options,
``--threads``) through the runs of a :class:`kbench.analysis.history.History` that measured it.

**A significant change between neighbouring runs** is what :mod:`kbench.analysis.significance` calls significant,
the rule ``kbench compare`` uses, applied to the one row the two runs share: each run's side is its row (pooled
median, process medians, and the row's 95% CI of its median as the floor: no samples are read); the ratio's 95% CI
is the wider of the t interval on the log process medians (bounded by the range of their ratios, as
:mod:`kbench.analysis.significance` says) and the two CIs in quadrature; the change is
significant when that CI excludes 1 and the t-test's p-value is below 0.05. With one process on each side (schema
v1, or ``--processes 1``) no test can run without the samples, and the CI decides alone.

Everything here is pure data: frozen dataclasses out, no printing; the figure is
:func:`kbench.present.history_plot.trend_figure`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from kbench.analysis.history import History, HistoryRun, Skipped
from kbench.analysis.significance import Side, between, floor_excludes_1
from kbench.core.errors import SchemaError, UsageError
from kbench.core.fmt import visible
from kbench.store import schema

RULE = ("significant: the 95% CI of median / previous median (Welch's t on the process medians, bounded by the range "
        "of their ratios, at least the two runs' 95% CIs in quadrature) excludes 1 and that t-test's p < 0.05")


class NoMatchError(UsageError):
    """The cell filters match no row of any run."""


class AmbiguousCellError(UsageError):
    """The cell filters match rows of more than one cell."""


def _option_text(v: Any) -> str:
    """An option value as the command line spells it (``true``, not ``True``)."""
    return json.dumps(v) if isinstance(v, bool) or v is None else str(v)


@dataclass(frozen=True)
class CellFilter:
    """What ``kbench history`` was asked to follow; every field left empty matches anything."""

    model: str | None = None
    path: str | None = None
    backend: str | None = None
    dtype: str | None = None
    sizes: tuple[tuple[str, int], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    threads: int | None = None  # --threads the rows were measured with (kbench.measure.latency); None matches any

    @property
    def active(self) -> bool:
        return any((self.model, self.path, self.backend, self.dtype, self.sizes, self.options, self.threads))

    def flags(self) -> str:
        """The filters as the flags that were given, e.g. ``--model dense --path compiled --size batch=32``."""
        parts = [f"--{k} {v}" for k, v in (("model", self.model), ("path", self.path), ("backend", self.backend),
                                          ("dtype", self.dtype)) if v]  # fmt: skip
        parts += [f"--size {k}={v}" for k, v in self.sizes] + [f"-o {k}={v}" for k, v in self.options]
        parts += [f"--threads {self.threads}"] if self.threads is not None else []
        return visible(" ".join(parts))

    def matches(self, row: Mapping[str, Any]) -> bool:
        fixed = (("model", self.model), ("path", self.path), ("backend", self.backend), ("dtype", self.dtype))
        if any(want is not None and row.get(k) != want for k, want in fixed):
            return False
        if any(not _same_size(row.get(f"size_{k}"), v) for k, v in self.sizes):
            return False
        if self.threads is not None and not _same_size(row.get("threads"), self.threads):
            return False
        opts = row.get("options") if isinstance(row.get("options"), Mapping) else {}
        return all(k in opts and _option_text(opts[k]).lower() == v.lower() for k, v in self.options)


def _same_size(value: Any, want: int) -> bool:
    try:
        return value is not None and float(value) == want
    except (TypeError, ValueError):
        return False


def cell_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes a cell: model, backend, path, sizes, dtype, options (as sorted JSON) and ``--threads``."""
    opts = json.dumps(row.get("options") or {}, sort_keys=True, default=str)
    threads = row.get("threads")
    return tuple(str(row.get(k)) for k in ("model", "backend", "path", "sizes", "dtype")) + (opts,) + (
        "" if threads is None or threads != threads else str(int(threads)),)  # fmt: skip


@dataclass(frozen=True)
class TrendPoint:
    """One run's measurement of the cell, and how it moved from the previous run's."""

    run_id: str
    started: str
    median_s: float
    ci_low_s: float | None
    ci_high_s: float | None
    ratio: float | None
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    n_processes: int
    process_medians_s: tuple[float, ...]
    versions: tuple[tuple[str, str], ...]
    change: float | None = None  # median / previous median - 1
    significant: bool = False


@dataclass(frozen=True)
class Trend:
    model: str
    backend: str
    path: str
    sizes: str
    dtype: str
    options: tuple[tuple[str, str], ...]
    points: tuple[TrendPoint, ...]
    skipped: tuple[Skipped, ...] = ()
    rule: str = RULE

    @property
    def title(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options)
        parts = (self.model, self.backend, self.path, self.sizes, opts, self.dtype)
        return " · ".join(visible(p) for p in parts if p)


def _side(p: TrendPoint) -> Side | None:
    """A run's side of a step from its row (the row's CI as the floor); None when the CI is missing or not > 0."""
    bounds = (p.ci_low_s, p.ci_high_s)
    if any(b is None or not math.isfinite(b) or b <= 0 for b in bounds) or not p.median_s > 0:
        return None
    usable = all(math.isfinite(m) and m > 0 for m in p.process_medians_s)
    return Side(p.median_s, p.process_medians_s if usable else (), 0, p.ci_low_s, p.ci_high_s)


def significant_change(prev: TrendPoint, cur: TrendPoint) -> bool:
    """Whether ``cur``'s median differs significantly from ``prev``'s (module docstring); False when either CI is
    missing. The test runs only where the floor alone keeps the CI off 1 (it cannot be significant elsewhere)."""
    a, b = _side(prev), _side(cur)
    return a is not None and b is not None and floor_excludes_1(a, b) and between(a, b).significant


def _float_or_none(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _point(run: HistoryRun, row: Mapping[str, Any]) -> TrendPoint:
    medians = tuple(float(x) for x in row.get("process_medians_s") or ())
    versions = tuple((k, v) for k, v in run.summary.versions if k in ("keras", row.get("backend")))
    return TrendPoint(
        run_id=run.summary.run_id, started=run.summary.started, median_s=float(row["median_s"]),
        ci_low_s=_float_or_none(row.get("ci_low_s")), ci_high_s=_float_or_none(row.get("ci_high_s")),
        ratio=_float_or_none(row.get("ratio_to_numpy")), ratio_ci_low=_float_or_none(row.get("ratio_ci_low")),
        ratio_ci_high=_float_or_none(row.get("ratio_ci_high")), n_processes=int(row.get("n_processes") or 1),
        process_medians_s=medians, versions=versions,
    )  # fmt: skip


def _with_changes(points: list[TrendPoint]) -> tuple[TrendPoint, ...]:
    out = points[:1]
    for cur in points[1:]:
        prev = out[-1]
        change = cur.median_s / prev.median_s - 1 if prev.median_s > 0 else None
        out.append(replace(cur, change=change, significant=significant_change(prev, cur)))
    return tuple(out)


def _matches(history: History, filt: CellFilter) -> tuple[list[tuple[HistoryRun, dict]], list[Skipped]]:
    """Every (run, coerced row) the filter matches that has a median; a run whose matching row is damaged is
    skipped with its reason."""
    found, skipped = [], []
    for run in history.runs:
        try:
            rows = [schema.coerce_row(r, strict=False) for r in run.rows if filt.matches(r)]
        except SchemaError as exc:
            skipped.append(Skipped(run.summary.folder, f"a row has a bad value: {exc}"))
            continue
        found += [(run, r) for r in rows if r.get("median_s") is not None]
    return found, skipped


def trend(history: History, filt: CellFilter) -> Trend:
    """The cell ``filt`` selects, across the runs in order. No matching row is a :class:`NoMatchError`; rows of
    several cells an :class:`AmbiguousCellError` that says which flags tell them apart."""
    found, skipped = _matches(history, filt)
    if not found:
        raise NoMatchError(_no_match_message(history, filt))
    keys = list(dict.fromkeys(cell_key(r) for _, r in found))
    if len(keys) > 1:
        raise AmbiguousCellError(_ambiguous_message(filt, [r for _, r in found], len(keys)))
    first = found[0][1]
    points = [_point(run, row) for run, row in found]
    opts = tuple((visible(k), visible(_option_text(v))) for k, v in (first.get("options") or {}).items())
    return Trend(first["model"], first["backend"], first["path"], first["sizes"], first["dtype"], opts,
                 _with_changes(points), tuple(skipped))  # fmt: skip


def _values(rows: Iterable[Mapping[str, Any]], key: str, limit: int = 8) -> str:
    seen = sorted({str(r.get(key)) for r in rows if r.get(key) is not None}, key=_natural)
    more = f" (+{len(seen) - limit} more)" if len(seen) > limit else ""
    return visible(",".join(seen[:limit]) + more)


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _no_match_message(history: History, filt: CellFilter) -> str:
    """One line: the filters, how many runs were searched, and what the closest filter (model alone) holds."""
    runs = len(history.runs)
    where = f"no row of the {runs} run{'s' * (runs != 1)} under {visible(history.reports)} matches {filt.flags()}"
    rows = [r for run in history.runs for r in run.rows]
    same_model = [r for r in rows if filt.model is None or r.get("model") == filt.model]
    if filt.model is not None and not same_model:
        seen = f"models there: {_values(rows, 'model') or 'none'}"
    else:
        seen = (f"{visible(filt.model) + ' has ' if filt.model else ''}paths {_values(same_model, 'path')}, "
                f"backends {_values(same_model, 'backend')}, sizes {_values(same_model, 'sizes', 4)}")  # fmt: skip
    return f"{where}; {seen}; see every run with `kbench history --reports {visible(history.reports)}`"


def _ambiguous_message(filt: CellFilter, rows: list[dict], n_cells: int) -> str:
    """One line naming the flags (with their values) that tell the matching cells apart."""
    hints = []
    for key, flag in (("model", "--model"), ("path", "--path"), ("backend", "--backend"), ("dtype", "--dtype")):
        if len({r.get(key) for r in rows}) > 1:
            hints.append(f"{flag} {_values(rows, key)}")
    size_names = sorted({k[5:] for r in rows for k in r if k.startswith("size_")})
    for name in size_names:
        if len({r.get(f"size_{name}") for r in rows}) > 1:
            hints.append(f"--size {visible(name)}={_values(rows, f'size_{name}')}")
    if len({str(r.get("threads")) for r in rows}) > 1:
        hints.append(f"--threads {_values([r for r in rows if r.get('threads') is not None], 'threads')}")
    option_names = sorted({k for r in rows for k in r.get("options") or {}})
    for name in option_names:
        values = {_option_text((r.get("options") or {}).get(name)) for r in rows}
        if len(values) > 1:
            hints.append(f"-o {visible(name)}={visible(','.join(sorted(values)))}")
    return (f"{filt.flags() or 'the filters'} match {n_cells} different cells; follow one by adding "
            f"{' or '.join(hints) or 'more filters'} (one value each)")  # fmt: skip
