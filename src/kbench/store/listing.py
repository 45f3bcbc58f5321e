"""Reading many run folders fast, for a list of runs: each folder's ``run.json`` and its result rows, never
``samples.csv``.

The rows come from ``results.json`` (schema v2) or, for a schema v1 folder, from ``results.csv`` migrated by
:func:`kbench.store.migrations.migrate` exactly as :func:`kbench.store.results.load_run` migrates it. Rows are returned
as read (not coerced), so one damaged row costs only the cells that use it. A folder that is not a readable kbench
run raises a :class:`~kbench.core.errors.KbenchError` whose message says why without naming the folder (the caller
names it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kbench.core.errors import SchemaError, one_line
from kbench.store import migrations, schema
from kbench.store.results import READERS


@dataclass(frozen=True)
class ListedRun:
    """One run folder as a list reads it: run.json's object, the schema version on disk, the rows (v1 migrated)."""

    folder: Path
    meta: dict
    source_version: int
    rows: tuple[dict, ...]


def read_listed(run_dir: Path) -> ListedRun:
    """``run_dir``'s run.json and rows (module docstring); a folder that cannot be read raises, saying why."""
    if not (run_dir / "run.json").is_file():
        raise SchemaError("not a kbench run (no run.json)")
    meta = _read_json(run_dir / "run.json")
    version = _meta_version(meta)
    rows = _rows_json(run_dir, version) if version >= 2 else _rows_v1(run_dir, meta)
    return ListedRun(run_dir, meta, version, tuple(rows))


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


def _rows_json(run_dir: Path, version: int) -> list[dict]:
    path = run_dir / "results.json"
    if not path.is_file():
        return []
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise SchemaError('results.json is not an object with a "rows" list; the run folder is damaged')
    if doc.get("schema_version") != version or not all(isinstance(r, dict) for r in doc["rows"]):
        raise SchemaError("results.json has another schema version than run.json or a row that is not an object")
    return doc["rows"]


def _rows_v1(run_dir: Path, meta: dict) -> list[dict]:
    """v1's results.csv, read and migrated the way :func:`kbench.store.results.load_run` does (without the samples)."""
    raw = READERS[1](run_dir, meta)  # reads samples.csv too: v1 folders are few and small
    raw = migrations.RawRun(1, meta, raw.rows, pd.DataFrame(columns=list(migrations.V1_SAMPLE_COLUMNS)))
    return list(migrations.migrate(raw).rows)
