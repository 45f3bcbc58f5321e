"""The results schema as markdown, rendered from the schema table (:mod:`kbench.store.schema`) and the migrations'
docstrings (:mod:`kbench.store.migrations`): ``python -m kbench.store.schemadoc`` prints it, and
``docs/gen/schema_page.py`` makes it the documentation's schema page (a test keeps the page equal to it).
"""

from __future__ import annotations

import textwrap
from typing import Iterable

from kbench.store.migrations import MIGRATIONS
from kbench.store.schema import (LIST_SEPARATOR, RESULT_COLUMNS, RUN_FIELDS, SAMPLE_COLUMNS, SCHEMA_VERSION,
                                 Column)  # fmt: skip

# the keys of run.json beyond the declared fields (kept as they are in RunMeta.extra), in the page's words
RUN_EXTRA = ("Any other key (e.g. `backend`, `worker_pid`) is kept as it is, in `RunMeta.extra`. Among them: "
             "`cell_budgets_s`, the steady-state sampling budget each worker process gave each cell, in the order "
             "they finished (under `timer.budget_s / processes` where the time goal trimmed it); "
             "`shard`, in a `kbench run --shard K/N` run: `index` (K), `count` (N), `plan_cells` (the full plan's "
             "cell count), `cells` (this shard's cells as indices into the full plan), `plan_digest` (the full "
             "plan's identity) and `assignment` (`round-robin`); `merged`, in a `kbench merge` run: the merge "
             "`command`, the `shards` merged and those `missing` (with `partial`), `mixed` (the fingerprint fields "
             "that differed, with `allow_mixed`) and per input its `run_id`, `shard`, `command`, `status`, times, "
             "counts and timings.")


def _table(columns: Iterable[Column], first: str) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"| {first} | type | unit | meaning |", "|---|---|---|---|"]
    for c in columns:
        new = f" (v{c.since})" if c.since > 1 else ""
        lines.append(f"| `{c.name}`{new} | {cell(c.dtype)} | {c.unit} | {cell(c.meaning)} |")
    return lines


def _prose(*bullets: str) -> list[str]:
    """Paragraphs or ``- `` bullets wrapped at 115 characters, as the README is."""
    return [textwrap.fill(b, 115, subsequent_indent="  " if b.startswith("- ") else "", break_on_hyphens=False,
                          break_long_words=False) for b in bullets]  # fmt: skip


def markdown() -> str:
    """The README's ``## Results schema`` section (without its heading), rendered from the tables and the
    migrations."""
    steps = [f"- **v{k} → v{k + 1}**: {' '.join((f.__doc__ or '').split()).split(': ', 1)[-1]}"
             for k, f in sorted(MIGRATIONS.items())]  # fmt: skip
    v = SCHEMA_VERSION
    return "\n".join([
        *_prose(f"Schema version {v}. Generated from `src/kbench/store/schema.py` (`python -m kbench.store.schemadoc` "
                "prints it; a test keeps this copy equal to it)."),
        "",
        *_prose(f"- `results.json` is the source of truth: `{{\"schema_version\": {v}, \"rows\": [...]}}`, one "
                "object per row and line; lists stay lists, `options` is an object, a missing value is `null` (an "
                "infinite one `Infinity`, as Python's json writes it).",
                "- `results.csv` is a flat export of the same rows for spreadsheets, never read back: list cells are "
                f"joined with `{LIST_SEPARATOR}` (a warning may itself contain one), `options` is JSON text.",
                "- `samples.csv` holds every sample (every column is a scalar); `run.json` the run's metadata.",
                f"- `kbench.store.results.load_run` reads every version it knows and returns version {v} data (lists as "
                "lists, `options` as a dict, `meta` a `RunMeta`): an older folder is migrated in memory, one step "
                "per version, and never rewritten; a newer version is refused in one line. `(v2)` marks a column "
                "that version 2 added."),
        "",
        "### Result rows (`results.json`, `results.csv`)",
        "",
        *_table(RESULT_COLUMNS, "column"),
        "",
        "### Samples (`samples.csv`)",
        "",
        *_table(SAMPLE_COLUMNS, "column"),
        "",
        "### Run metadata (`run.json`, `kbench.store.results.RunMeta`)",
        "",
        *_table(RUN_FIELDS, "field"),
        "",
        *_prose(RUN_EXTRA),
        "",
        "### Migrations",
        "",
        *_prose(*steps),
    ])  # fmt: skip


if __name__ == "__main__":
    print(markdown())
