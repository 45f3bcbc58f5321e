"""``kbench merge``: the run folders of the shards of one plan (:mod:`kbench.orchestrate.shard`) joined back into one run.

**Merge: exact.** Result rows and samples are the shards' own, as written (no statistic is recomputed; ratios are
within a cell, and a cell is never split across shards), ordered as an unsharded run orders them: by backend, then
by cell in the full plan. A row keeps the ``run_id`` of the shard run that measured it. The metadata is combined:
see :func:`merged_meta`. Before anything is written the inputs are checked: shards of one plan, each once, all of
them (unless ``allow_partial``), from one kind of machine (unless ``allow_mixed``).
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from kbench.core.errors import UsageError
from kbench.machine.fingerprint import flatten
from kbench.orchestrate.planning import Shard
from kbench.orchestrate.shard import ASSIGNMENT, shard_from_json, shard_indices
from kbench.store import migrations
from kbench.store.results import READERS, RunMeta, RunWriter, load_run

ROW_KEY = ("model", "backend", "path", "sizes", "dtype")  # one row per key in a run
IGNORED_ENV = ("TF_CPP_", "TF_CLI_", "TF_VAR_", "TF_LOG", "TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "TF_IN_AUTOMATION",
               "TF_INPUT", "TF_WORKSPACE")  # fmt: skip  # log levels and Terraform's TF_ variables: no effect on timing
# the kernel build string differs between identical runners; env is filtered instead; "blas" lists only what the
# parent process happened to load (no timing runs there: the workers' BLAS is under backends.<name>.blas)
IGNORED_HOST = ("os", "env", "blas")
STATUS_ORDER = ("failed", "running", "interrupted", "complete")  # a merged run has its worst shard's status


# -- reading and checking the shards --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardRun:
    """One input of a merge: a shard's run folder, its rows exactly as written (migrated only if older)."""

    ref: str
    run_dir: Path
    meta: RunMeta
    shard: Shard
    rows: tuple[dict, ...]
    samples: pd.DataFrame

    @property
    def name(self) -> str:
        return self.meta.run_id or self.run_dir.name


def read_shard(ref: str | Path, reports_dir: str | Path = "reports") -> ShardRun:
    """A shard's run folder (a folder, a run id under ``reports_dir``); unknown refs and unreadable or
    unmigratable folders are refused by :func:`kbench.store.results.load_run`, non-shards here."""
    data = load_run(ref, reports_dir)
    if "merged" in data.meta.extra:
        raise UsageError(f"{ref} is a merged run; merge the shard folders it was made from instead")
    if "shard" not in data.meta.extra:
        raise UsageError(f"{ref} was not run with --shard; merge the run folders of one `kbench run --shard K/N` sweep")
    shard = shard_from_json(data.meta.extra["shard"], str(ref))
    raw = migrations.migrate(READERS[data.source_version](data.run_dir, data.meta.to_json()))
    return ShardRun(str(ref), data.run_dir, data.meta, shard, raw.rows, raw.samples)


def _first_difference(a: Any, b: Any, name: str) -> str:
    """``"timer.budget_s 0.2 vs 0.3"``: where two values first differ (into dicts), or '' when equal."""
    if a == b:
        return ""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            why = _first_difference(a.get(k), b.get(k), f"{name}.{k}")
            if why:
                return why
    text = lambda v: json.dumps(v, default=str)[:60]  # noqa: E731
    return f"{name} {text(a)} vs {text(b)}"


def plan_difference(a: ShardRun, b: ShardRun) -> str:
    """Why ``a`` and ``b`` are not shards of one plan, or '' when they are."""
    if a.shard.count != b.shard.count:
        return f"shard {a.shard.label} vs {b.shard.label}: one sweep has one shard count"
    if a.shard.plan_cells != b.shard.plan_cells:
        return f"a {a.shard.plan_cells}-cell plan vs a {b.shard.plan_cells}-cell plan"
    for key in ("mode", "backends"):
        why = _first_difference(a.meta[key], b.meta[key], key)
        if why:
            return why
    for key in ("paths", "seed", "timer", "processes"):
        why = _first_difference(a.meta.plan.get(key), b.meta.plan.get(key), f"plan.{key}")
        if why:
            return why
    if a.shard.plan_digest != b.shard.plan_digest:
        return f"plan digest {a.shard.plan_digest} vs {b.shard.plan_digest}: their cells or device settings differ"
    return ""


def check_plan(runs: list[ShardRun]) -> None:
    first = runs[0]
    for r in runs[1:]:
        why = plan_difference(first, r)
        if why:
            raise UsageError(f"{first.ref} and {r.ref} are shards of different plans ({why}); merge the shards of one "
                             "`kbench run --shard K/N` command")  # fmt: skip


def check_duplicates(runs: list[ShardRun]) -> None:
    """The same folder twice, the same shard twice, or a row key in two inputs: refused, naming both."""
    folders: dict[Path, str] = {}
    shards: dict[int, str] = {}
    for r in runs:
        where = r.run_dir.resolve()
        if where in folders:
            raise UsageError(f"{r.ref} is given twice (also as {folders[where]}); pass each shard folder once")
        if r.shard.index in shards:
            raise UsageError(f"shard {r.shard.label} is given twice ({shards[r.shard.index]} and {r.ref}); pass "
                             "each shard once")  # fmt: skip
        folders[where], shards[r.shard.index] = r.ref, r.ref
    owner: dict[tuple, str] = {}
    for r in runs:
        for row in r.rows:
            key = tuple(row.get(k) for k in ROW_KEY)
            if owner.setdefault(key, r.ref) != r.ref:
                raise UsageError(f"the row {' '.join(map(str, key))} is in both {owner[key]} and {r.ref}; a cell "
                                 "belongs to one shard, so pass each shard once")  # fmt: skip


def missing_shards(runs: list[ShardRun]) -> tuple[int, ...]:
    count = runs[0].shard.count
    return tuple(sorted(set(range(1, count + 1)) - {r.shard.index for r in runs}))


def check_complete(runs: list[ShardRun], allow_partial: bool) -> None:
    missing, count = missing_shards(runs), runs[0].shard.count
    if missing and not allow_partial:
        names = ", ".join(f"{k}/{count}" for k in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise UsageError(f"shard{'s' * (len(missing) > 1)} {names} {verb} missing; pass every shard's run folder, "
                         "or --allow-partial to merge without them")  # fmt: skip


def fingerprint(meta: RunMeta) -> dict[str, str]:
    """What the figures depend on besides the code, flattened (``host.cpu``, ``host.packages.numpy``,
    ``host.env.OMP_NUM_THREADS``, ``backends.tensorflow.devices``, ...), each value as JSON text
    (:func:`kbench.machine.fingerprint.flatten`)."""
    env = meta.env if isinstance(meta.env, Mapping) else {}
    host = dict(env.get("host") or {})
    return {**flatten({k: v for k, v in host.items() if k not in IGNORED_HOST}, "host"),
            **flatten({k: v for k, v in (host.get("env") or {}).items() if not k.startswith(IGNORED_ENV)}, "host.env"),
            **flatten(env.get("backends") or {}, "backends")}  # fmt: skip


def mixed_fields(runs: list[ShardRun]) -> list[dict[str, Any]]:
    """Each fingerprint field whose value differs between the runs: ``{"field", "values": {run id: value}}``."""
    prints = [(r.name, fingerprint(r.meta)) for r in runs]
    keys = sorted({k for _, p in prints for k in p})
    return [{"field": k, "values": {name: p.get(k) for name, p in prints}} for k in keys
            if len({p.get(k) for _, p in prints}) > 1]  # fmt: skip


def check_machines(runs: list[ShardRun], allow_mixed: bool) -> list[dict[str, Any]]:
    """The fingerprint differences; refused unless ``allow_mixed``."""
    mixed = mixed_fields(runs)
    if mixed and not allow_mixed:
        first = mixed[0]
        values = list(first["values"].items())
        a, va = values[0]
        b, vb = next((n, v) for n, v in values if v != va)
        va, vb = (v if v is None or len(v) <= 60 else v[:57] + "..." for v in (va, vb))
        more = f" (and {len(mixed) - 1} more field(s))" if len(mixed) > 1 else ""
        raise UsageError(f"the shards ran on different machines or software: {first['field']} {va} in {a} vs {vb} in "
                         f"{b}{more}; merge shards from one kind of machine, or pass --allow-mixed")  # fmt: skip
    return mixed


# -- merging --------------------------------------------------------------------------------------------------------


def _cell_order(runs: list[ShardRun]) -> dict[tuple[str, str, str], int]:
    """(model, sizes, dtype) -> the cell's index in the full plan, from each shard's ``plan.cells``."""
    order = {}
    for r in runs:
        for i, c in zip(r.shard.cells, r.meta.plan.get("cells") or []):
            order[(c.get("model"), c.get("sizes"), c.get("dtype"))] = i
    return order


def merged_rows(runs: list[ShardRun]) -> tuple[list[dict], list[dict]]:
    """Every shard's rows and samples, untouched, in an unsharded run's order: by backend, then by full-plan cell
    (a stable sort: a cell's rows and samples keep their own order)."""
    backends, order = list(runs[0].meta.backends), _cell_order(runs)
    last = len(order)

    def rank(backend: Any, model: Any, sizes: Any, dtype: Any) -> tuple[int, int]:
        b = backends.index(backend) if backend in backends else len(backends)
        return b, order.get((model, sizes, dtype), last)

    rows = sorted((row for r in runs for row in r.rows),
                  key=lambda row: rank(row.get("backend"), row.get("model"), row.get("sizes"), row.get("dtype")))
    frames = [r.samples for r in runs if not r.samples.empty]
    if not frames:
        return rows, []
    samples = pd.concat(frames, ignore_index=True)
    keys = [rank(*t) for t in samples[["backend", "model", "sizes", "dtype"]].itertuples(index=False, name=None)]
    samples = samples.iloc[sorted(range(len(keys)), key=keys.__getitem__)]
    return rows, samples.to_dict("records")


def _median_dicts(items: list[Any]) -> Any:
    """The median of numbers, or per key of dicts of numbers (``{"numpy": s, "backend": s}``)."""
    items = [x for x in items if x is not None]
    if not items:
        return None
    if all(isinstance(x, Mapping) for x in items):
        return {k: statistics.median(x[k] for x in items if k in x) for k in items[0]}
    return statistics.median(items)


def merged_timings(runs: list[ShardRun]) -> dict[str, dict]:
    """Per backend: every worker process's imports and runtime first use, the shards' lists concatenated in shard
    order; ``imports`` and ``runtime_init_s`` their medians, as in one run."""
    out: dict[str, dict] = {}
    for key in ("imports", "runtime_init_s"):
        per: dict[str, list] = {}
        for r in runs:
            listed = r.meta.get(f"{key}_per_process") or {}
            for backend, value in (r.meta.get(key) or {}).items():
                per.setdefault(backend, []).extend(listed.get(backend) or [value])
        out[f"{key}_per_process"] = per
        out[key] = {b: _median_dicts(v) for b, v in per.items()}
    return out


def merged_status(statuses: Iterable[str]) -> str:
    """The worst of the shards' statuses (failed, running, interrupted, complete); an unknown one is kept."""
    found = list(statuses)
    for s in found:
        if s not in STATUS_ORDER:
            return s
    return min(found, key=STATUS_ORDER.index)


def unsharded_command(runs: list[ShardRun], fallback: str) -> str:
    """The shards' command without ``--shard K/N`` and ``--out DIR`` (it measures the whole plan on one machine)
    when the shards agree on it; else ``fallback``."""
    stripped = {re.sub(r"\s--(?:shard|out)(?:=|\s+)\S+", "", r.meta.command) for r in runs}
    return stripped.pop() if len(stripped) == 1 and "" not in stripped else fallback


def _unique(items: Iterable[Any]) -> list[Any]:
    seen, out = set(), []
    for x in items:
        key = json.dumps(x, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def _provenance(r: ShardRun, n_rows: int, n_samples: int) -> dict[str, Any]:
    m = r.meta
    return {"run_id": r.name, "shard": r.shard.label, "command": m.command, "status": m.status, "started": m.started,
            "finished": m.finished, "cells": len(r.shard.cells), "rows": n_rows, "samples": n_samples,
            "imports": m.imports, "runtime_init_s": m.runtime_init_s, "worker_pid": m.get("worker_pid"),
            "machine": m.get("machine", [])}  # fmt: skip


def merged_meta(runs: list[ShardRun], run_id: str, merge_command: str, mixed: list[dict],
                allow_mixed: bool) -> dict[str, Any]:  # fmt: skip
    """run.json of the merged run. Checked equal in every shard (the plan's settings, mode, backends): as they
    are. The machine (``env``, ``peak``, ``machine``): the first shard's, equal in all unless ``--allow-mixed``
    (``merged.mixed`` lists what differed). ``plan.cells``: the merged cells in full-plan order. ``started``: the
    earliest; ``finished``: the latest; ``status``: the worst. ``skipped``, ``unavailable_paths``, ``failed_cells`` and ``failures``: every
    shard's (each failure prefixed with its shard). Imports and runtime init: see :func:`merged_timings`.
    ``merged``: the merge command, the shards, what is missing, and each input's own command, status, times, row
    and sample counts and timings."""
    first, count = runs[0], runs[0].shard.count
    cells = sorted((i, c) for r in runs for i, c in zip(r.shard.cells, r.meta.plan.get("cells") or []))
    finished = [r.meta.finished for r in runs]
    missing = [{"shard": f"{k}/{count}", "cells": list(shard_indices(first.shard.plan_cells, k, count))}
               for k in missing_shards(runs)]  # fmt: skip
    base = {k: v for k, v in first.meta.to_json().items() if k not in ("shard", "worker_pid")}
    return {**base, **merged_timings(runs),
            "run_id": run_id,
            "command": unsharded_command(runs, merge_command),
            "started": min(r.meta.started for r in runs),
            "finished": None if None in finished else max(finished),
            "status": merged_status(r.meta.status for r in runs),
            "plan": {**first.meta.plan, "cells": [c for _, c in cells]},
            "models": {k: v for r in runs for k, v in (r.meta.get("models") or {}).items()},
            "skipped": _unique(s for r in runs for s in r.meta.skipped),
            "unavailable_paths": _unique(u for r in runs for u in r.meta.unavailable_paths),
            "failed_cells": [{**f, "shard": r.shard.label} for r in runs for f in r.meta.failed_cells],
            "failures": [f"shard {r.shard.label}: {f}" for r in runs for f in r.meta.failures],
            "merged": {"command": merge_command, "count": count, "shards": [r.shard.label for r in runs],
                       "plan_cells": first.shard.plan_cells, "plan_digest": first.shard.plan_digest,
                       "assignment": ASSIGNMENT, "partial": bool(missing), "missing": missing,
                       "allow_mixed": allow_mixed, "mixed": mixed,
                       "inputs": [_provenance(r, len(r.rows), len(r.samples)) for r in runs]}}  # fmt: skip


@dataclass(frozen=True)
class MergeResult:
    run_dir: Path
    meta: RunMeta
    shards: tuple[str, ...]  # the merged shards' labels, "1/4", ...
    missing: tuple[str, ...]  # the labels of shards left out (only with allow_partial)
    mixed: tuple[str, ...]  # fingerprint fields that differed (only with allow_mixed)
    cells: int
    plan_cells: int
    rows: int
    samples: int


def merge_runs(refs: Iterable[str | Path], out: str | Path, reports_dir: str | Path = "reports",
               allow_mixed: bool = False, allow_partial: bool = False, command: str = "") -> MergeResult:  # fmt: skip
    """Merge the run folders of shards of one plan into the new run folder ``out``. Refused (a
    :class:`kbench.core.errors.UsageError`, one line, before anything is written): no input, an existing ``out``, an
    unknown ref or an unreadable or unmigratable folder, a run that is not a shard, shards of different plans,
    the same folder, shard or row twice, a missing shard (unless ``allow_partial``), shards whose machine or
    software fingerprints differ (unless ``allow_mixed``)."""
    refs, out = list(refs), Path(out)
    if not refs:
        raise UsageError("no run to merge; pass the shards' run folders, e.g. kbench merge shards/* --out merged")
    if out.exists():
        raise UsageError(f"--out {out} already exists; pass a new folder for the merged run")
    runs = [read_shard(r, reports_dir) for r in refs]
    check_plan(runs)
    check_duplicates(runs)
    check_complete(runs, allow_partial)
    mixed = check_machines(runs, allow_mixed)
    runs.sort(key=lambda r: r.shard.index)
    rows, samples = merged_rows(runs)
    meta = merged_meta(runs, out.name, command or "kbench merge " + " ".join(map(str, refs)) + f" --out {out}",
                       mixed, allow_mixed)  # fmt: skip
    try:
        writer = RunWriter(out, meta)
    except OSError as exc:
        raise UsageError(f"--out {out} cannot be created ({exc.strerror}); pass a writable folder") from None
    writer.put_cell("merged", rows, samples)
    return MergeResult(writer.run_dir, writer.meta, tuple(r.shard.label for r in runs),
                       tuple(m["shard"] for m in meta["merged"]["missing"]), tuple(m["field"] for m in mixed),
                       len(meta["plan"]["cells"]), runs[0].shard.plan_cells, len(rows), len(samples))  # fmt: skip
