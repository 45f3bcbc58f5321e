"""Run history: every run in a reports folder, as ``kbench history`` lists it.

:func:`scan` reads each run folder the catalog finds (:func:`kbench.store.catalog.run_folders`) with
:func:`kbench.store.listing.read_listed`: its ``run.json`` and its rows, never ``samples.csv``, so a history of
hundreds of runs reads two small files per run. A folder that is not a readable kbench run (no ``run.json``,
unreadable JSON, a newer or unknown schema, damaged rows) is skipped with one line saying why (:class:`Skipped`);
the rest is still read. Runs are in run order: by ``started``, then run id (newest last). One cell's trend across
these runs is :mod:`kbench.analysis.trend`.

Everything here is pure data: frozen dataclasses out, no printing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kbench.core.errors import KbenchError, one_line
from kbench.core.fmt import visible
from kbench.machine.fingerprint import package_versions
from kbench.store import schema
from kbench.store.catalog import run_folders
from kbench.store.listing import read_listed
from kbench.store.results import RunMeta


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


def _processes(meta: Any, rows: list[dict]) -> int:
    declared = meta.extra.get("processes") or (meta.plan or {}).get("processes")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    counts = [r.get("n_processes") for r in rows if isinstance(r.get("n_processes"), int)]
    return max(counts, default=1)


def read_run(run_dir: Path) -> HistoryRun:
    """One run folder's summary and rows; a folder that is not a readable kbench run raises a
    :class:`~kbench.core.errors.KbenchError` whose message says why (without the folder's name)."""
    listed = read_listed(run_dir)
    rows = list(listed.rows)
    meta = RunMeta.from_json({**listed.meta, "schema_version": schema.SCHEMA_VERSION})
    models = [c.get("model") for c in (meta.plan or {}).get("cells") or () if isinstance(c, Mapping)]
    models += [r.get("model") for r in rows]
    backends = meta.backends or tuple(dict.fromkeys(str(r.get("backend")) for r in rows))
    summary = RunSummary(
        run_id=meta.run_id or run_dir.name, folder=run_dir, started=meta.started, status=meta.status,
        mode=meta.mode, models=tuple(dict.fromkeys(str(m) for m in models if m)), backends=tuple(backends),
        versions=package_versions(meta.env, backends), processes=_processes(meta, rows), n_rows=len(rows),
        source_version=listed.source_version,
    )  # fmt: skip
    return HistoryRun(summary, tuple(rows))


def scan(reports_dir: str | Path) -> History:
    """Every run folder directly under ``reports_dir`` (hidden entries and plain files are ignored), in run order;
    each folder that cannot be read is one :class:`Skipped`. A missing folder is a
    :class:`~kbench.store.catalog.NoRunsError`."""
    reports = Path(reports_dir)
    runs, skipped = [], []
    for entry in run_folders(reports):
        try:
            runs.append(read_run(entry))
        except KbenchError as exc:
            skipped.append(Skipped(entry, str(exc)))
    runs.sort(key=lambda r: (r.summary.started, r.summary.run_id))
    return History(reports, tuple(runs), tuple(skipped))
