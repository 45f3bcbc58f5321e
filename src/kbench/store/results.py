"""Results: one tidy row per (model, backend, path, sizes, dtype), raw samples beside them, written as the run goes.

A run folder ``reports/<run-id>/`` holds (every column and field is declared in :mod:`kbench.store.schema`)

- ``run.json``      the run's metadata (:class:`RunMeta`): schema version, run id, the command that reproduces the
                    run, the plan, the environment fingerprint, import and runtime-init times, status;
- ``results.json``  the source of truth: ``{"schema_version": 2, "rows": [...]}``, lists as lists, options as an
                    object;
- ``results.csv``   a flat export of the same rows for spreadsheets (lists joined with ``;``), never read back;
- ``samples.csv``   every per-call sample (seconds) of every path, with its loop count and worker process;
- ``worker.log``    the worker's stderr (TensorFlow's own messages land here).

Every file is rewritten whole through a temporary file and an atomic rename each time a cell finishes, so a
reader never sees half a file and a crash keeps every finished cell. :func:`load_run` reads every schema version
it knows and migrates older ones in memory (:func:`kbench.store.migrations.migrate`), never rewriting them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping

import pandas as pd

from kbench.core.errors import RunNotFoundError, SchemaError, one_line
from kbench.core.files import atomic_write
from kbench.store import migrations, schema
from kbench.store.catalog import resolve_run

SCHEMA_VERSION = schema.SCHEMA_VERSION
COLUMNS = schema.COLUMNS  # the result columns in order, without the size_<name> family
SAMPLE_COLUMNS = schema.SAMPLE_COLUMN_NAMES


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows as they are (no type conversion) in schema order, every declared column present (missing ones NA)."""
    df = pd.DataFrame(list(rows))
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    return df[schema.ordered(df.columns)]


# -- run metadata ---------------------------------------------------------------------------------------------------


def _field_value(name: str, v: Any, nullable: bool) -> Any:
    """A run.json field converted to its RunMeta type (lists to tuples; dicts kept as the same objects)."""
    dtype = schema.column(name, schema.RUN_FIELDS).dtype
    if v is None and nullable:
        return None
    if dtype == "int" and isinstance(v, int) and not isinstance(v, bool):
        return v
    if dtype == "str" and isinstance(v, str):
        return v
    if dtype == "dict" and isinstance(v, dict):
        return v
    element = {"list[str]": str, "list[dict]": dict}.get(dtype)
    if element is not None and isinstance(v, (list, tuple)) and all(isinstance(x, element) for x in v):
        return tuple(v)
    raise SchemaError(f"run.json field {name!r} is {type(v).__name__} {str(v)[:40]!r}, expected {dtype}")


@dataclass(frozen=True)
class RunMeta:
    """``run.json`` as a typed record; keys it does not declare are kept in ``extra``, so nothing is lost.

    Transitional, read only: ``meta["key"]``, ``meta.get("key", default)``, ``"key" in meta``, ``keys()``,
    ``items()`` and ``dict(meta)`` read it as the dict it used to be (lists as lists, ``extra`` keys at the top level;
    ``get`` and ``in`` treat a null field as absent). To change a field: ``meta.updated(key=value)``."""

    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    command: str = ""
    started: str = ""
    finished: str | None = None
    status: str = "unknown"
    mode: str = "run"
    backends: tuple[str, ...] = ()
    plan: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    peak: dict | None = None
    imports: dict = field(default_factory=dict)
    runtime_init_s: dict = field(default_factory=dict)
    skipped: tuple[dict, ...] = ()
    failed_cells: tuple[dict, ...] = ()
    failures: tuple[str, ...] = ()
    processes: int = 1
    models: dict = field(default_factory=dict)
    machine: tuple[str, ...] = ()
    machine_findings: tuple[dict, ...] = ()
    imports_per_process: dict = field(default_factory=dict)
    runtime_init_s_per_process: dict = field(default_factory=dict)
    unavailable_paths: tuple[dict, ...] = ()
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunMeta:
        """From run.json's object; a field of the wrong type is a :class:`SchemaError`."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"run.json holds {type(data).__name__}, expected an object")
        declared = {f.name: f for f in fields(cls) if f.name != "extra"}
        values = {k: _field_value(k, v, declared[k].default is None) for k, v in data.items() if k in declared}
        return cls(**values, extra={k: v for k, v in data.items() if k not in declared})

    def to_json(self) -> dict[str, Any]:
        """run.json's object: declared fields in schema order (tuples as lists), then ``extra``."""
        out = {f.name: getattr(self, f.name) for f in schema.RUN_FIELDS}
        return {**{k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}, **self.extra}

    def updated(self, **values: Any) -> RunMeta:
        """A copy with ``values`` set (undeclared keys go to ``extra``)."""
        return RunMeta.from_json({**self.to_json(), **values})

    def __getitem__(self, key: str) -> Any:
        if key != "extra" and key in self.__dataclass_fields__:
            v = getattr(self, key)
            return list(v) if isinstance(v, tuple) else v
        return self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            v = self[key]
        except KeyError:
            return default
        return default if v is None else v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def keys(self) -> list[str]:
        """run.json's keys, so ``dict(meta)`` gives back the dict (lists as lists, nested dicts shared)."""
        return list(self.to_json())

    def items(self) -> list[tuple[str, Any]]:
        return list(self.to_json().items())

    def __iter__(self):
        return iter(self.keys())


# -- writing --------------------------------------------------------------------------------------------------------


def results_json(rows: list[dict]) -> str:
    """``results.json``'s text: one row per line; an infinite float is written ``Infinity`` as Python's json does."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows)  # NaN is already null
    return f'{{"schema_version": {SCHEMA_VERSION}, "rows": [\n{body}\n]}}\n' if rows else \
        f'{{"schema_version": {SCHEMA_VERSION}, "rows": []}}\n'  # fmt: skip


def flat_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows flattened for ``results.csv``: list cells joined with ``;``, ``options`` as JSON text."""

    def flat(v: Any) -> Any:
        if isinstance(v, list):
            return schema.LIST_SEPARATOR.join(map(str, v))
        return json.dumps(v, sort_keys=True, ensure_ascii=False) if isinstance(v, dict) else v

    names = schema.ordered(COLUMNS + [k for r in rows for k in r])
    return pd.DataFrame([{k: flat(v) for k, v in r.items()} for r in rows], columns=names)


class RunWriter:
    """Owns one run folder. Created lazily by the caller, so a run that fails validation writes nothing.

    Rows and samples are kept per cell, under a key the caller chooses (any hashable, e.g. ``(backend, cell
    index)``), checked against :mod:`kbench.store.schema` (an undeclared column is a :class:`SchemaError`) and stamped
    with :data:`SCHEMA_VERSION`; every file is rewritten atomically after each :meth:`add` or :meth:`put_cell`."""

    def __init__(self, run_dir: Path, meta: Mapping[str, Any] | RunMeta) -> None:
        self.run_dir = Path(run_dir)
        given = meta.to_json() if isinstance(meta, RunMeta) else dict(meta)
        self._meta = RunMeta.from_json({"status": "running", **given, "schema_version": SCHEMA_VERSION})
        self._cells: dict[Hashable, tuple[list[dict], list[dict]]] = {}
        self.run_dir.mkdir(parents=True, exist_ok=False)
        self._write_meta()

    @property
    def meta(self) -> RunMeta:
        return self._meta

    @property
    def rows(self) -> list[dict]:
        """Every result row as written, cells in the order they were first put."""
        return [r for rows, _ in self._cells.values() for r in rows]

    @property
    def samples(self) -> list[dict]:
        return [s for _, samples in self._cells.values() for s in samples]

    def _write_meta(self) -> None:
        atomic_write(self.run_dir / "run.json", json.dumps(self._meta.to_json(), indent=2, default=str) + "\n")

    def update_meta(self, **fields: Any) -> None:
        """Set run.json fields (undeclared ones are kept in ``RunMeta.extra``) and rewrite it."""
        self._meta = self._meta.updated(**fields)
        self._write_meta()

    def add(self, rows: list[dict], samples: list[dict]) -> None:
        """Append rows and samples as a new cell and rewrite the files."""
        self.put_cell(("_added", len(self._cells)), rows, samples)

    def put_cell(self, key: Hashable, rows: list[dict], samples: list[dict]) -> None:
        """Set every row and sample of the cell ``key``, replacing what an earlier call put there (e.g. once another
        worker process has added its samples): the cell keeps its place, a new one goes last. Other cells are
        untouched."""
        new_rows = [schema.coerce_row({**r, "schema_version": SCHEMA_VERSION}) for r in rows]
        new_samples = [schema.coerce_row(s, schema.SAMPLE_COLUMNS) for s in samples]
        self._cells[key] = (new_rows, new_samples)
        self._write_tables()

    def _write_tables(self) -> None:
        rows = self.rows
        samples = pd.DataFrame(self.samples, columns=schema.ordered(SAMPLE_COLUMNS, schema.SAMPLE_COLUMNS))
        # text quoted: pandas leaves a lone carriage return unquoted otherwise, which splits the row on reading
        atomic_write(self.run_dir / "samples.csv", samples.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
        atomic_write(self.run_dir / "results.csv", flat_frame(rows).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
        atomic_write(self.run_dir / "results.json", results_json(rows))

    def finish(self, status: str, **fields: Any) -> None:
        self.update_meta(status=status, **fields)


# -- reading --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    meta: RunMeta
    results: pd.DataFrame
    samples: pd.DataFrame
    source_version: int = SCHEMA_VERSION  # the schema version of the files on disk (older ones were migrated)


def _damaged(path: Path, why: Any) -> SchemaError:
    return SchemaError(one_line(f"{path} {why}; the run folder is damaged, rerun the benchmark"))


def _lacks(path: Path, missing: list[str]) -> SchemaError:
    return _damaged(path, f"lacks the columns {', '.join(missing[:4])}{'…' if len(missing) > 4 else ''}")


def _read_csv(path: Path, table: tuple[schema.Column, ...], required: Iterable[str]) -> pd.DataFrame:
    """A CSV with its text columns read as text, exactly (only an empty number is missing), the required columns
    checked."""
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        numbers = [n for n in header if getattr(schema.column(n, table), "dtype", "str") in ("int", "float", "bool")]
        df = pd.read_csv(path, dtype={n: str for n in header if n not in numbers}, keep_default_na=False,
                         na_values={n: [""] for n in numbers})  # fmt: skip
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _damaged(path, f"cannot be read ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise _lacks(path, missing)
    return df


def _read_v1(run_dir: Path, meta: dict) -> migrations.RawRun:
    """Version 1: results.csv (flags, warnings and options as text) and samples.csv."""
    results_csv, samples_csv = run_dir / "results.csv", run_dir / "samples.csv"
    df = _read_csv(results_csv, schema.RESULT_COLUMNS, migrations.V1_COLUMNS) if results_csv.is_file() else \
        pd.DataFrame(columns=list(migrations.V1_COLUMNS))  # fmt: skip
    keep = [c for c in df.columns if c in migrations.V1_COLUMNS or c.startswith("size_")]
    rows = tuple(df[keep].astype(object).to_dict("records"))
    v1_samples = migrations.V1_SAMPLE_COLUMNS
    samples = _read_csv(samples_csv, schema.SAMPLE_COLUMNS, v1_samples) if samples_csv.is_file() else \
        pd.DataFrame(columns=list(v1_samples))  # fmt: skip
    return migrations.RawRun(1, meta, rows, samples)


def _read_results_json(path: Path, version: int) -> list:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"cannot be read ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise _damaged(path, 'is not an object with a "rows" list')
    if doc.get("schema_version") != version:
        raise _damaged(path, f"has schema version {doc.get('schema_version')!r} but run.json {version}")
    if not all(isinstance(r, dict) for r in doc["rows"]):
        raise _damaged(path, "has a row that is not an object")
    return doc["rows"]


def _read_json_run(run_dir: Path, meta: dict, version: int) -> migrations.RawRun:
    """Version 2 or 3: results.json (the source of truth) and samples.csv; each row must hold the columns its
    version had from the start (those added later in version 2, :data:`schema.LATE_V2`, may be missing)."""
    path, samples_csv = run_dir / "results.json", run_dir / "samples.csv"
    rows = _read_results_json(path, version) if path.is_file() else []
    expected = [c.name for c in schema.RESULT_COLUMNS if not c.is_family and c.since <= version]
    for r in rows:
        missing = [c for c in expected if c not in r and c not in schema.LATE_V2]
        if missing:
            raise _lacks(path, missing)
    try:
        coerced = tuple(schema.coerce_row(r, strict=False) for r in rows)
    except SchemaError as exc:
        raise _damaged(path, f"has a bad value: {exc}") from None
    required = [c for c in SAMPLE_COLUMNS if c not in schema.LATE_V2]
    samples = _read_csv(samples_csv, schema.SAMPLE_COLUMNS, required) if samples_csv.is_file() else \
        pd.DataFrame(columns=SAMPLE_COLUMNS)  # fmt: skip
    columns = schema.ordered([*samples.columns, *SAMPLE_COLUMNS], schema.SAMPLE_COLUMNS)
    return migrations.RawRun(version, meta, coerced, samples.reindex(columns=columns))


READERS: dict[int, Callable[[Path, dict], migrations.RawRun]] = {
    1: _read_v1, 2: partial(_read_json_run, version=2), 3: partial(_read_json_run, version=3),
    4: partial(_read_json_run, version=4), 5: partial(_read_json_run, version=5)}


def _read_meta(run_dir: Path) -> tuple[dict, int]:
    """run.json's object and its schema version; an unknown or newer version is refused in one line."""
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = f"{run_dir}/run.json cannot be read ({exc}); the run folder is damaged"
        raise RunNotFoundError(one_line(why)) from None
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise SchemaError(f"{run_dir} has results schema version {version}, newer than this kbench reads (up to "
                          f"{SCHEMA_VERSION}); upgrade kbench (`pip install -U kbench`) to read it")  # fmt: skip
    if version not in READERS or isinstance(version, bool):
        raise SchemaError(f"{run_dir} has results schema version {version!r}, which no kbench wrote; the run "
                          "folder is damaged, rerun the benchmark")  # fmt: skip
    return meta, version


def load_run(ref: str | Path, reports_dir: str | Path = "reports") -> RunData:
    """Read a run folder of any known schema version as version :data:`SCHEMA_VERSION` data (older versions are
    migrated in memory; the files are never rewritten). Damaged files and unknown versions raise
    :class:`SchemaError` (a missing or unreadable run, :class:`RunNotFoundError`), each in one line."""
    run_dir = resolve_run(ref, reports_dir)
    meta, version = _read_meta(run_dir)
    raw = migrations.migrate(READERS[version](run_dir, meta))
    try:
        run_meta = RunMeta.from_json(raw.meta)
        samples = schema.apply_dtypes(raw.samples[schema.ordered(raw.samples.columns, schema.SAMPLE_COLUMNS)],
                                      schema.SAMPLE_COLUMNS)  # fmt: skip
    except SchemaError as exc:
        raise _damaged(run_dir, f"has a bad value: {exc}") from None
    return RunData(run_dir, run_meta, schema.typed_frame(list(raw.rows)), samples, version)
