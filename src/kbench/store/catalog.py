"""The run catalog: which run folders a reports folder holds, and which folder a reference names.

A reference is a run folder, a run id under the reports folder, ``latest`` (the run whose ``run.json`` was written
last) or ``previous`` (the one before it). Every command that takes a run (``compare``, ``history``, ``results``,
``report``, ``merge``) resolves it here, through :func:`resolve_run` (directly or through
:func:`kbench.store.results.load_run`).
"""

from __future__ import annotations

from pathlib import Path

from kbench.core.errors import RunNotFoundError, UsageError


class NoRunsError(UsageError):
    """The reports folder does not exist or is not a folder."""


def run_folders(reports_dir: str | Path) -> tuple[Path, ...]:
    """Every folder directly under ``reports_dir`` that may be a run (hidden entries and plain files are left out),
    by name; whether each is a readable run is the reader's question. A missing folder is a :class:`NoRunsError`."""
    reports = Path(reports_dir)
    if not reports.is_dir():
        raise NoRunsError(f"no folder {reports}; pass --reports DIR, the --out folder of `kbench run` "
                          "(default: reports)")  # fmt: skip
    entries = sorted(reports.iterdir(), key=lambda p: p.name)
    return tuple(e for e in entries if not e.name.startswith(".") and e.is_dir())


def runs_by_age(reports_dir: str | Path) -> list[Path]:
    """The run folders (those with a ``run.json``) under ``reports_dir``, oldest first by the mtime of ``run.json``."""
    return [p.parent for p in sorted(Path(reports_dir).glob("*/run.json"), key=lambda p: p.stat().st_mtime)]


def resolve_run(ref: str | Path, reports_dir: str | Path = "reports") -> Path:
    """A run folder, a run id under ``reports_dir``, ``latest``, or ``previous`` (the run before the latest)."""
    reports = Path(reports_dir)
    if str(ref) in ("latest", "previous"):
        return _by_age(str(ref), reports)
    for cand in (Path(ref), reports / str(ref)):
        if (cand / "run.json").is_file():
            return cand
    if Path(ref).is_dir() or (reports / str(ref)).is_dir():
        raise RunNotFoundError(f"{ref} is not a kbench run (no run.json); pass a folder written by `kbench run`")
    raise RunNotFoundError(f"no run {str(ref)!r} (looked for {ref} and {reports / str(ref)}); see `ls {reports}`")


def _by_age(ref: str, reports: Path) -> Path:
    runs = runs_by_age(reports)
    if ref == "latest":
        if not runs:
            raise RunNotFoundError(f"no runs under {reports}/; run `kbench run --model dense` first")
        return runs[-1]
    if len(runs) < 2:
        raise RunNotFoundError(f"`previous` needs two runs under {reports}/, found {len(runs)}; "
                               "run `kbench run` again or name both runs")  # fmt: skip
    return runs[-2]
