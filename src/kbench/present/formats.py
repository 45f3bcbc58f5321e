"""A saved run in other formats: ``kbench results RUN --format table|markdown|json|pyperf``.

- ``table``: the terminal view ``kbench run`` prints (:func:`kbench.present.terminal.run_view`), as plain text here.
- ``markdown``: GitHub-flavoured Markdown for a CI job summary (``$GITHUB_STEP_SUMMARY``): a header with the run,
  its status and the environment essentials, the command in a code block, one table per cell (path, median, 95% CI,
  ratio to NumPy with its CI, parity ✓/✗), then the warnings digest. Every string from the run has its control
  characters spelled out (:func:`kbench.core.fmt.visible`) and every Markdown-active character escaped (:func:`md`).
- ``json``: ``{"format": "kbench-results", "schema_version": 2, "meta": {...run.json...}, "rows": [...]}``:
  ``meta`` is ``run.json``'s object (:class:`kbench.store.results.RunMeta`'s fields, then its extra keys); ``rows`` are the
  result rows of :mod:`kbench.store.schema` (lists as lists, ``options`` an object, every declared column present). It is
  strict JSON: a missing or non-finite number is ``null``.
- ``pyperf``: pyperf's JSON format (version ``1.0``), so ``python -m pyperf stats|hist|compare_to`` read kbench
  runs. One benchmark per result row that has samples, named ``model/backend/path/sizes/dtype/options`` (unique,
  the same in every run of the same plan, so ``compare_to`` pairs them); one pyperf run per kbench worker process,
  its values the process's per-call samples in seconds, with ``loops`` (calls per sample) and ``date`` metadata.
  Suite metadata (pyperf's rules: int, float or non-empty one-line str): ``kbench_version``, ``kbench_command``,
  ``kbench_run_id``, ``cpu_model_name``, ``cpu_count``, ``platform``, ``python_version``, ``<package>_version``.
  kbench writes the JSON itself, so pyperf need not be installed to export.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from kbench.core.errors import ReportWriteError, UsageError
from kbench.core.files import atomic_write, unwritable
from kbench.core.fmt import DASH, fmt_ratio, fmt_time, missing, visible
from kbench.machine.fingerprint import package_versions
from kbench.store import schema
from kbench.store.results import RunData

FORMATS = ("table", "markdown", "json", "pyperf")
PYPERF_VERSION = "1.0"
TABLE_WIDTH = 140  # columns of the plain-text table written to a file


class ExportError(UsageError):
    """A format that does not exist, a run that cannot be exported in it, or an unwritable --out."""


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use --format {'|'.join(FORMATS)}")


def check_writable(path: Path) -> None:
    """Refuse an --out that is a folder or cannot be written, before any work is done."""
    why = unwritable(path)
    if why == "is a folder":
        raise ExportError(f"--out {visible(path)} is a folder; pass a file path such as {visible(path / 'results.md')}")
    if why is not None:
        raise ExportError(f"cannot write to {visible(path)}: {why}; pass --out a writable file")


def write(path: Path, text: str) -> None:
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise ReportWriteError(f"cannot write to {visible(path)}: {exc.strerror}; pass --out a writable file") from None


def render(run: RunData, fmt: str) -> str:
    """The run as text in ``fmt`` (one of :data:`FORMATS`)."""
    check_format(fmt)
    return {"table": table_text, "markdown": markdown, "json": json_text, "pyperf": pyperf_text}[fmt](run)


# -- table -------------------------------------------------------------------------------------------------------------


def table_text(run: RunData, width: int = TABLE_WIDTH) -> str:
    """What ``kbench run`` prints about the run, as plain text (no colour, no escape sequences)."""
    from rich.console import Console

    from kbench.present import terminal as render_mod

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False, force_terminal=False)
    for item in render_mod.run_view(run.results, run.meta):
        console.print(item, soft_wrap=True)
    return buf.getvalue()


# -- markdown ----------------------------------------------------------------------------------------------------------

_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_ACTIVE = set("\\`*_{}[]()#!|~$:@")  # inline-active; line-start markers (- + . digits) never start our lines


def md(text: Any) -> str:
    """``text`` safe anywhere in a Markdown line or table cell: control characters spelled out (so a newline cannot
    end a row), ``& < >`` as entities (no HTML), every other Markdown-active character backslash-escaped (no
    emphasis, link, code, math, mention, emoji or table pipe)."""
    return "".join(_MD_ENTITIES.get(c) or (f"\\{c}" if c in _MD_ACTIVE else c) for c in visible(text))


def _fence(text: str) -> str:
    """A fenced code block that ``text`` cannot close (the fence is longer than any run of backticks in it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}sh\n{text}\n{fence}"


def _ci(lo: Any, hi: Any, fmt) -> str:
    return DASH if missing(lo) or missing(hi) else f"{fmt(lo)} – {fmt(hi)}"


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_cell(rows: pd.DataFrame) -> list[str]:
    out = [_md_row(("path", "median", "95% CI", "×NumPy", "×NumPy 95% CI", "parity")), "|---|---:|---|---:|---|:---:|"]
    for _, r in rows.iterrows():
        ok = bool(r["parity_ok"])
        out.append(_md_row((
            md(r["path"]), fmt_time(r.get("median_s")), _ci(r.get("ci_low_s"), r.get("ci_high_s"), fmt_time),
            fmt_ratio(r.get("ratio_to_numpy")), _ci(r.get("ratio_ci_low"), r.get("ratio_ci_high"), fmt_ratio),
            "✓" if ok else f"✗ {md(r.get('parity_message') or '')}".rstrip(),
        )))  # fmt: skip
    return out


def _md_header(run: RunData) -> list[str]:
    meta = run.meta
    host = (meta.env or {}).get("host") or {}
    versions = " · ".join(f"**{md(k)}** {md(v)}" for k, v in package_versions(meta.env, meta.backends))
    facts = [f"**status** {md(meta.status)}", f"**started** {md(meta.started.replace('T', ' '))}",
             f"**backends** {md(', '.join(meta.backends))}", f"**processes** {md(_processes(run))}"]  # fmt: skip
    machine = [f"**CPU** {md(host.get('cpu', '?'))} ({md(host.get('usable_cores', '?'))} cores)",
               f"**Python** {md(host.get('python', '?'))}", f"**OS** {md(host.get('os', '?'))}"]  # fmt: skip
    return [f"## kbench results: {md(meta.run_id or run.run_dir.name)}", "", " · ".join(facts) + "  ",
            " · ".join(machine) + ("  " if versions else ""), *([versions] if versions else []), "",
            _fence(visible(meta.command) or "(command not recorded)"), ""]  # fmt: skip


def _processes(run: RunData) -> str:
    n = run.meta.get("processes") or (run.meta.plan or {}).get("processes")
    if n is None and "n_processes" in run.results and run.results["n_processes"].notna().any():
        n = int(run.results["n_processes"].max())
    return str(n or 1)


def markdown(run: RunData) -> str:
    """The run as a GitHub-flavoured Markdown summary (module docstring)."""
    from kbench.present import presentation, run_warnings

    p = presentation.prepare(run.results)
    lines = _md_header(run)
    for (model, sizes, dtype, opts), rows in p.results.groupby(presentation.CELL_KEYS, sort=False, dropna=False):
        title = " · ".join(md(x) for x in (model, sizes, opts, dtype) if isinstance(x, str) and x)
        lines += [f"### {title}", "", *_md_cell(rows), ""]
    if p.results.empty:
        lines += ["No result rows.", ""]
    digest = run_warnings.digest(p.results, run.meta)
    lines += [f"- {md(line)}" for line in digest] + ([""] if digest else [])
    return "\n".join(lines)


# -- json --------------------------------------------------------------------------------------------------------------


def _strict(v: Any) -> Any:
    """Plain JSON values: a non-finite float or a missing value as None, containers recursively."""
    if isinstance(v, Mapping):
        return {str(k): _strict(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if missing(v):
        return None
    item = getattr(v, "item", None)  # a numpy scalar
    return _strict(item()) if callable(item) else str(v)


def json_document(run: RunData) -> dict[str, Any]:
    """``{"format", "schema_version", "meta", "rows"}`` (module docstring)."""
    rows = [schema.coerce_row(r, strict=False) for r in run.results.astype(object).to_dict("records")]
    return {"format": "kbench-results", "schema_version": schema.SCHEMA_VERSION,
            "meta": _strict(run.meta.to_json()), "rows": _strict(rows)}  # fmt: skip


def json_text(run: RunData) -> str:
    return json.dumps(json_document(run), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


# -- pyperf ------------------------------------------------------------------------------------------------------------


def _meta_text(v: Any) -> str | None:
    """A value pyperf accepts as string metadata (one line, not empty after strip), or None."""
    text = visible(v).strip() if not missing(v) else ""
    return text or None


def _suite_metadata(run: RunData) -> dict[str, Any]:
    """The run-wide metadata, under pyperf's names where it has one (cpu_model_name, python_version, ...)."""
    from kbench.core.version import __version__

    meta = run.meta
    host = (meta.env or {}).get("host") or {}
    packages = dict(host.get("packages") or {}) if isinstance(host.get("packages"), Mapping) else {}
    packages.update(package_versions(meta.env, meta.backends))
    out: dict[str, Any] = {
        "kbench_version": __version__, "kbench_command": _meta_text(meta.command),
        "kbench_run_id": _meta_text(meta.run_id or run.run_dir.name), "cpu_model_name": _meta_text(host.get("cpu")),
        "platform": _meta_text(host.get("os")), "python_version": _meta_text(host.get("python")),
        **{f"{visible(k)}_version": _meta_text(v) for k, v in packages.items() if v != "not installed"},
    }  # fmt: skip
    cores = host.get("logical_cores")
    if isinstance(cores, int) and not isinstance(cores, bool) and cores > 0:
        out["cpu_count"] = cores
    return {k: v for k, v in out.items() if v is not None and " " not in k}


def benchmark_name(row: Mapping[str, Any]) -> str:
    """``model/backend/path/sizes/dtype[/options]``: one line, the same for the same cell in every run."""
    from kbench.core.fmt import options_label

    parts = [visible(row.get(k)) for k in ("model", "backend", "path", "sizes", "dtype")]
    opts = options_label(row.get("options"))
    return "/".join(parts + ([opts] if opts else [])).strip()


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name #2``, ``#3``... when an earlier benchmark took it; recorded in ``taken``."""
    out, i = name, 1
    while out in taken:
        i += 1
        out = f"{name} #{i}"
    taken.add(out)
    return out


def _pyperf_runs(samples: pd.DataFrame, date: str | None, where: str) -> list[dict]:
    """One pyperf run per worker process: its per-call samples in order, its loops and the run's date."""
    runs = []
    for process, s in samples.sort_values(["process", "sample"]).groupby("process", sort=True):
        values = [float(v) for v in s["seconds"]]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ExportError(f"{where} has a sample that is not a time > 0; pyperf accepts only positive values")
        loops = int(s["loops"].mode().iloc[0]) if s["loops"].notna().any() else 1
        meta = {"loops": max(loops, 1), "kbench_process": int(process), **({"date": date} if date else {})}
        runs.append({"metadata": meta, "values": values})
    return runs


def pyperf_document(run: RunData) -> dict[str, Any]:
    """pyperf's JSON (module docstring); a run without samples is an :class:`ExportError`."""
    keys = ["model", "backend", "path", "sizes", "dtype"]
    by_cell = {k: g for k, g in run.samples.groupby(keys, sort=False)} if len(run.samples) else {}
    date = run.meta.started.replace("T", " ") if run.meta.started else None
    benchmarks, names = [], set()
    for row in run.results.astype(object).to_dict("records"):
        group = by_cell.get(tuple(row[k] for k in keys))
        if group is None or group.empty:
            continue
        name = _unique(benchmark_name(row), names)
        bench_meta = {"name": name, "unit": "second", **{f"kbench_{k}": _meta_text(row[k]) for k in keys}}
        benchmarks.append({"metadata": {k: v for k, v in bench_meta.items() if v is not None},
                           "runs": _pyperf_runs(group, date, name)})  # fmt: skip
    if not benchmarks:
        raise ExportError(f"run {visible(run.meta.run_id or run.run_dir.name)} has no timed samples (a parity run, or "
                          "no cell finished); pyperf needs per-call samples, export it with --format json")  # fmt: skip
    return {"version": PYPERF_VERSION, "metadata": _suite_metadata(run), "benchmarks": benchmarks}


def pyperf_text(run: RunData) -> str:
    return json.dumps(pyperf_document(run), sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
