"""Run history: every run in a reports folder, and one cell's trend across runs.

:func:`scan` reads each run folder's ``run.json`` and its rows (``results.json``; for a schema v1 folder
``results.csv``, migrated by :func:`kbench.store.schema.migrate` exactly as :func:`kbench.store.results.load_run` does), never
``samples.csv``: a history of hundreds of runs reads two small files per run. A folder that is not a readable kbench
run (no ``run.json``, unreadable JSON, a newer or unknown schema, damaged rows) is skipped with one line saying why
(:class:`Skipped`); the rest is still read. Runs are in run order: by ``started``, then run id (newest last).

:func:`trend` follows one cell (model, backend, path, sizes, dtype, options) across the runs that measured it.

**A significant change between neighbouring runs.** Each run's row carries the 95% CI of its median from
:mod:`kbench.core.stats` (N >= 2 processes: a t interval over the log per-process medians, floored by the
order-statistics CI of the pooled samples; N = 1 and schema v1: the order-statistics CI). On the log scale, with
``d = log(m_b / m_a)`` and ``h_a``, ``h_b`` the two CIs' half-widths on the side facing the other median, the
change is significant when

    |d| > sqrt(h_a**2 + h_b**2)

i.e. when the 95% interval of the difference of two independent estimates (their half-widths added in quadrature)
excludes 0. With equal CIs this is exactly "the new median is outside the previous run's repeat interval"
(:func:`kbench.core.stats.repeat_interval`: each side of the CI stretched by sqrt(2)). It uses only what the rows hold
(no samples are read), and it is less conservative than "the CIs do not overlap" (``|d| > h_a + h_b``), which tests
at roughly the 0.5% level rather than 5%.

Everything here is pure data: frozen dataclasses out, no printing; :func:`trend_figure` draws the trend with seaborn
(imported only when called).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from kbench.store import schema
from kbench.core.errors import KbenchError, ReportWriteError, SchemaError, UsageError, one_line
from kbench.core.fmt import fmt_time, visible

LEVEL = 0.95
VERSION_KEYS = ("keras", "tensorflow", "jax", "torch")  # shown per run, from the environment fingerprint
RULE = ("significant: the 95% CI of log(median / previous median), the two runs' 95% CIs added in quadrature, "
        "excludes 0")  # fmt: skip


class NoRunsError(UsageError):
    """The reports folder does not exist or is not a folder."""


class NoMatchError(UsageError):
    """The cell filters match no row of any run."""


class AmbiguousCellError(UsageError):
    """The cell filters match rows of more than one cell."""


# -- reading --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """One run as the history lists it."""

    run_id: str
    folder: Path
    started: str
    status: str
    mode: str
    models: tuple[str, ...]
    backends: tuple[str, ...]
    versions: tuple[tuple[str, str], ...]  # ("keras", "3.15.1"), ("tensorflow", "2.21.0"), ...
    processes: int
    n_rows: int
    source_version: int  # the schema version on disk (older ones were migrated)


@dataclass(frozen=True)
class HistoryRun:
    summary: RunSummary
    rows: tuple[dict, ...]  # schema v2 rows as read (v1 migrated); coerced only when a trend uses them


@dataclass(frozen=True)
class Skipped:
    """A folder that was not read, and why (one line)."""

    folder: Path
    reason: str

    def line(self) -> str:
        return f"skipped {visible(self.folder)}: {visible(one_line(self.reason))}"


@dataclass(frozen=True)
class History:
    reports: Path
    runs: tuple[HistoryRun, ...]  # run order, newest last
    skipped: tuple[Skipped, ...]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path.name} cannot be read ({one_line(exc)}); the run folder is damaged") from None


def _meta_version(meta: Any) -> int:
    """run.json's schema version, refused in one line when it is newer than this kbench or unknown."""
    if not isinstance(meta, dict):
        raise SchemaError(f"run.json holds {type(meta).__name__}, not an object; the run folder is damaged")
    version = meta.get("schema_version")
    known = isinstance(version, int) and not isinstance(version, bool)
    if known and version > schema.SCHEMA_VERSION:
        raise SchemaError(f"results schema version {version} is newer than this kbench reads (up to "
                          f"{schema.SCHEMA_VERSION}); upgrade kbench to read it")  # fmt: skip
    if not known or version < 1:
        raise SchemaError(f"results schema version {version!r} is not one kbench wrote; the run folder is damaged")
    return version


def _rows_v2(run_dir: Path) -> list[dict]:
    path = run_dir / "results.json"
    if not path.is_file():
        return []
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise SchemaError('results.json is not an object with a "rows" list; the run folder is damaged')
    if doc.get("schema_version") != 2 or not all(isinstance(r, dict) for r in doc["rows"]):
        raise SchemaError("results.json has another schema version than run.json or a row that is not an object")
    return doc["rows"]


def _rows_v1(run_dir: Path, meta: dict) -> list[dict]:
    """v1's results.csv, read and migrated the way :func:`kbench.store.results.load_run` does (without the samples)."""
    import pandas as pd

    from kbench.store import results

    raw = results.READERS[1](run_dir, meta)  # reads samples.csv too: v1 folders are few and small
    raw = schema.RawRun(1, meta, raw.rows, pd.DataFrame(columns=list(schema.V1_SAMPLE_COLUMNS)))
    return list(schema.migrate(raw).rows)


def package_versions(env: Any, backends: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Keras and each backend's version from the fingerprint (the host's package list when a worker's is absent)."""
    env = env if isinstance(env, Mapping) else {}
    host = (env.get("host") or {}).get("packages") or {}
    per_backend = env.get("backends") or {}
    found: dict[str, str] = {}
    for b in backends:
        fp = per_backend.get(b) if isinstance(per_backend, Mapping) else None
        fp = fp if isinstance(fp, Mapping) else {}
        for key in ("keras", b):
            value = fp.get(key) or (host.get(key) if isinstance(host, Mapping) else None)
            if key in VERSION_KEYS and value and value != "not installed":
                found.setdefault(key, str(value))
    return tuple((k, found[k]) for k in VERSION_KEYS if k in found)


def _processes(meta: Any, rows: list[dict]) -> int:
    declared = meta.extra.get("processes") or (meta.plan or {}).get("processes")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    counts = [r.get("n_processes") for r in rows if isinstance(r.get("n_processes"), int)]
    return max(counts, default=1)


def read_run(run_dir: Path) -> HistoryRun:
    """One run folder's summary and rows; a folder that is not a readable kbench run raises a
    :class:`~kbench.core.errors.KbenchError` whose message says why (without the folder's name)."""
    from kbench.store.results import RunMeta

    if not (run_dir / "run.json").is_file():
        raise SchemaError("not a kbench run (no run.json)")
    raw_meta = _read_json(run_dir / "run.json")
    version = _meta_version(raw_meta)
    rows = _rows_v2(run_dir) if version == 2 else _rows_v1(run_dir, raw_meta)
    meta = RunMeta.from_json({**raw_meta, "schema_version": schema.SCHEMA_VERSION})
    models = [c.get("model") for c in (meta.plan or {}).get("cells") or () if isinstance(c, Mapping)]
    models += [r.get("model") for r in rows]
    backends = meta.backends or tuple(dict.fromkeys(str(r.get("backend")) for r in rows))
    summary = RunSummary(
        run_id=meta.run_id or run_dir.name, folder=run_dir, started=meta.started, status=meta.status,
        mode=meta.mode, models=tuple(dict.fromkeys(str(m) for m in models if m)), backends=tuple(backends),
        versions=package_versions(meta.env, backends), processes=_processes(meta, rows), n_rows=len(rows),
        source_version=version,
    )  # fmt: skip
    return HistoryRun(summary, tuple(rows))


def scan(reports_dir: str | Path) -> History:
    """Every run folder directly under ``reports_dir`` (hidden entries and plain files are ignored), in run order;
    each folder that cannot be read is one :class:`Skipped`."""
    reports = Path(reports_dir)
    if not reports.is_dir():
        raise NoRunsError(f"no folder {reports}; pass --reports DIR, the --out folder of `kbench run` "
                          "(default: reports)")  # fmt: skip
    runs, skipped = [], []
    for entry in sorted(reports.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            runs.append(read_run(entry))
        except KbenchError as exc:
            skipped.append(Skipped(entry, str(exc)))
    runs.sort(key=lambda r: (r.summary.started, r.summary.run_id))
    return History(reports, tuple(runs), tuple(skipped))


# -- one cell ---------------------------------------------------------------------------------------------------------


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


def significant_change(prev: TrendPoint, cur: TrendPoint) -> bool:
    """Whether ``cur``'s median differs from ``prev``'s beyond both runs' 95% CIs (module docstring); False when
    either CI is missing."""
    bounds = (prev.ci_low_s, prev.ci_high_s, cur.ci_low_s, cur.ci_high_s)
    if any(b is None or not math.isfinite(b) or b <= 0 for b in bounds) or prev.median_s <= 0 or cur.median_s <= 0:
        return False
    d = math.log(cur.median_s / prev.median_s)
    if d > 0:  # slower: prev's upper half-width and cur's lower one face each other
        h_prev, h_cur = math.log(prev.ci_high_s / prev.median_s), math.log(cur.median_s / cur.ci_low_s)
    else:
        h_prev, h_cur = math.log(prev.median_s / prev.ci_low_s), math.log(cur.ci_high_s / cur.median_s)
    return abs(d) > math.hypot(max(h_prev, 0.0), max(h_cur, 0.0))


def _number(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _point(run: HistoryRun, row: Mapping[str, Any]) -> TrendPoint:
    medians = tuple(float(x) for x in row.get("process_medians_s") or ())
    versions = tuple((k, v) for k, v in run.summary.versions if k in ("keras", row.get("backend")))
    return TrendPoint(
        run_id=run.summary.run_id, started=run.summary.started, median_s=float(row["median_s"]),
        ci_low_s=_number(row.get("ci_low_s")), ci_high_s=_number(row.get("ci_high_s")),
        ratio=_number(row.get("ratio_to_numpy")), ratio_ci_low=_number(row.get("ratio_ci_low")),
        ratio_ci_high=_number(row.get("ratio_ci_high")), n_processes=int(row.get("n_processes") or 1),
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


# -- the figure -------------------------------------------------------------------------------------------------------


def trend_figure(t: Trend):
    """The median per call with its 95% CI over runs, in run order; each significant change from the previous run
    is marked (red: slower, green: faster) with its size, and a change of versions by a dotted line."""
    import matplotlib
    import matplotlib.ticker as mticker
    import seaborn as sns
    from matplotlib.figure import Figure

    from kbench.present.figures import path_color

    x = list(range(len(t.points)))
    med = [p.median_s for p in t.points]
    lo = [p.median_s - (p.ci_low_s if p.ci_low_s is not None else p.median_s) for p in t.points]
    hi = [(p.ci_high_s if p.ci_high_s is not None else p.median_s) - p.median_s for p in t.points]
    with sns.axes_style("whitegrid"), matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        fig = Figure(figsize=(min(4 + 0.25 * len(x), 16), 4.2), layout="constrained")
        ax = fig.add_subplot()
        color = path_color(t.path)
        ax.errorbar(x, med, yerr=[lo, hi], fmt="none", ecolor=color, alpha=0.6, capsize=2, lw=1)
        sns.lineplot(x=x, y=med, ax=ax, color=color, marker="o", markersize=4, lw=1.2, label="median (bars: 95% CI)")
        _mark_changes(ax, t.points)
        _mark_versions(ax, t.points)
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: fmt_time(v) if v > 0 else "0"))
        ax.set_ylabel("time per call")
        step = max(1, math.ceil(len(x) / 20))
        ax.set_xticks(x[::step], [visible(p.run_id) for p in t.points][::step], rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("run (oldest first)")
        ax.set_title(f"{t.title}: median per call over runs", loc="left")
        ax.legend(loc="best", fontsize=8)
    return fig


def _mark_changes(ax, points: tuple[TrendPoint, ...]) -> None:
    for i, p in enumerate(points):
        if p.significant and p.change is not None:
            color = "#c0392b" if p.change > 0 else "#1e8449"
            ax.scatter([i], [p.median_s], s=90, facecolors="none", edgecolors=color, linewidths=2, zorder=5)
            ax.annotate(f"{p.change:+.0%}", (i, p.median_s), xytext=(0, 9), textcoords="offset points",
                        ha="center", fontsize=8, color=color)  # fmt: skip


def _mark_versions(ax, points: tuple[TrendPoint, ...]) -> None:
    for i in range(1, len(points)):
        if points[i].versions != points[i - 1].versions:
            ax.axvline(i - 0.5, color="0.5", ls=":", lw=1)
            label = " ".join(f"{k} {v}" for k, v in points[i].versions)
            ax.annotate(visible(label), (i - 0.5, 1), xycoords=("data", "axes fraction"), rotation=90, va="top",
                        ha="right", fontsize=6, color="0.4")  # fmt: skip


def save_png(fig, path: Path) -> Path:
    """The figure as a PNG at ``path``, through a temporary file and a rename; an unwritable place is a
    :class:`~kbench.core.errors.ReportWriteError` naming the fix."""
    from kbench.present.figures import to_png

    data, tmp = to_png(fig), None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # readable like any new file, not mkstemp's 0600
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ReportWriteError(f"cannot write the figure to {visible(path)}: {exc.strerror}; pass --plot to a "
                               "writable file or --no-plot") from None  # fmt: skip
    return path


def check_plot_path(path: Path) -> None:
    """Refuse a --plot that is a folder or whose folder cannot be written, before any run is read."""
    if path.is_dir():
        raise ReportWriteError(f"--plot {visible(path)} is a folder; pass a file path such as "
                               f"{visible(path / 'history.png')}")  # fmt: skip
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".kbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the figure to {visible(path)}: {exc.strerror}; pass --plot to a "
                               "writable file or --no-plot") from None  # fmt: skip


def default_plot_path(reports: Path, t: Trend) -> Path:
    """``<reports>/history-<model>-<path>.png``, with characters a file name should not hold replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._@=-]+", "_", f"history-{t.model}-{t.path}")[:120]
    return reports / f"{safe}.png"
