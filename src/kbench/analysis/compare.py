"""Compare two runs: did a call path get slower (or faster) from run A to run B?

B is the new run; every ratio is B over A. Rows are matched on (model, backend, path, sizes, dtype, options, and
the ``--threads`` they ran with); each matched row's samples, grouped by worker process, give its ratio, 95% CI,
p-value and verdict (:mod:`kbench.analysis.significance`: Welch's t on the log process medians, its interval
bounded by the range of the process medians' ratios, a floor from the
within-process uncertainty, Holm's adjustment over every timed row of the comparison, so the chance that *any* row
of an A/A comparison is called significant stays under 5%: without it, 18 rows at 5% each made the gate fail 2 of
10 A/A pairs of the default run, ``benchmarks/aa_false_alarms.py``). Each row keeps its own p (``p_value``) beside
the adjusted one (``p_adjusted``). The gate (``--fail-above``) is :mod:`kbench.analysis.gate`; the environment diff
:mod:`kbench.analysis.envdiff`; the HTML report :mod:`kbench.present.compare_report`.

Runs are named as :func:`kbench.store.catalog.resolve_run` resolves them: a run folder, a run id under
``reports_dir``, ``latest`` or ``previous`` (the run before the latest).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from kbench.analysis.envdiff import EnvDiff, env_diff
from kbench.analysis.gate import Factors, fails
from kbench.analysis.significance import ALPHA, Change, Side, change, judge, side
from kbench.core.fmt import flagged, missing, visible
from kbench.core.stats import scipy_stats
from kbench.measure.callpaths import BASELINE
from kbench.store.results import RunData

KEY = ("model", "backend", "path", "sizes", "dtype", "options")


# -- matching ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowKey:
    model: str
    backend: str
    path: str
    sizes: str
    dtype: str
    options: str  # the options as sorted JSON: {"activation": "relu"}
    threads: str = ""  # --threads of the worker that measured the row; "" for the backend's default

    @property
    def options_label(self) -> str:
        return " ".join(f"{visible(k)}={visible(v)}" for k, v in json.loads(self.options).items())


@dataclass(frozen=True)
class RowComparison:
    key: RowKey
    a: Side
    b: Side
    change: Change
    factor: float | None  # the --fail-above factor for this row's path
    fails: bool  # significantly slower by more than the factor


@dataclass(frozen=True)
class Untimed:
    """A matched row that one run has no samples for (a parity-only run, a path that was not timed)."""

    key: RowKey
    missing_in: str  # "A", "B" or "A and B"


def _options_json(v: Any) -> str:
    from kbench.core.fmt import as_options

    return json.dumps(as_options(v), sort_keys=True, ensure_ascii=False, default=str)


def _keys(results: pd.DataFrame) -> dict[RowKey, int]:
    """Each row's key -> its position; a key seen twice keeps its first row."""
    out: dict[RowKey, int] = {}
    for i, r in enumerate(results.to_dict("records")):
        key = RowKey(*(str(r.get(k, "")) for k in KEY[:-1]), _options_json(r.get("options")),
                     threads=threads_text(r.get("threads")))  # fmt: skip
        out.setdefault(key, i)
    return out


def threads_text(v: Any) -> str:
    """A row's or sample's ``threads`` as part of its identity: "" for the default (missing), else the count."""
    return "" if missing(v) else str(int(v))


def per_process_samples(samples: pd.DataFrame) -> dict[tuple[str, ...], list[list[float]]]:
    """(model, backend, path, sizes, dtype, threads) -> samples per process, in process order (finite, > 0 only)."""
    if samples.empty:
        return {}
    df = samples[pd.to_numeric(samples["seconds"], errors="coerce") > 0]
    process = df["process"] if "process" in df.columns else pd.Series(0, index=df.index)
    threads = df["threads"].map(threads_text) if "threads" in df.columns else pd.Series("", index=df.index)
    out: dict[tuple[str, ...], list[list[float]]] = {}
    groups = df.assign(process=process.fillna(0), threads=threads).groupby(list(KEY[:-1]) + ["threads", "process"],
                                                                         sort=True, dropna=False)  # fmt: skip
    for (*key, _), g in groups:
        out.setdefault(tuple(str(k) for k in key), []).append([float(x) for x in g["seconds"]])
    return out


# -- the comparison ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathSummary:
    """Over every matched cell of one (model, backend, path): the geometric mean of the ratios."""

    model: str
    backend: str
    path: str
    cells: int
    geomean: float
    slower: int
    faster: int
    worst: float  # the largest ratio


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_dir: Path
    started: str
    command: str
    schema_version: int  # of the files on disk
    contended: int = 0  # rows flagged ``contended``: timed while other processes took a share of the CPUs
    rows: int = 0
    max_others_cpu: float = math.nan  # the largest share they took


@dataclass(frozen=True)
class Comparison:
    a: RunInfo
    b: RunInfo
    rows: tuple[RowComparison, ...]
    paths: tuple[PathSummary, ...]
    only_a: tuple[RowKey, ...]
    only_b: tuple[RowKey, ...]
    untimed: tuple[Untimed, ...]
    env: tuple[EnvDiff, ...]
    factors: Factors
    alpha: float = ALPHA

    @property
    def cross_environment(self) -> bool:
        return any(d.major for d in self.env)

    @property
    def failures(self) -> tuple[RowComparison, ...]:
        return tuple(r for r in self.rows if r.fails)

    def counts(self) -> dict[str, int]:
        return {v: sum(r.change.verdict == v for r in self.rows) for v in ("slower", "faster", "same")}


def _info(run: RunData) -> RunInfo:
    m, df = run.meta, run.results
    contended = flagged(df, "contended")
    waits = pd.to_numeric(contended.get("others_cpu", pd.Series(dtype=float)), errors="coerce").dropna()
    return RunInfo(str(m.get("run_id") or run.run_dir.name), run.run_dir, str(m.get("started", "")),
                   str(m.get("command", "")), run.source_version, len(contended), len(df),
                   float(waits.max()) if len(waits) else math.nan)  # fmt: skip


def _path_summaries(rows: Sequence[RowComparison]) -> tuple[PathSummary, ...]:
    groups: dict[tuple[str, str, str], list[RowComparison]] = {}
    for r in rows:
        groups.setdefault((r.key.model, r.key.backend, r.key.path), []).append(r)
    return tuple(
        PathSummary(*k, len(g), float(scipy_stats().gmean([r.change.ratio for r in g])),
                    sum(r.change.verdict == "slower" for r in g), sum(r.change.verdict == "faster" for r in g),
                    max(r.change.ratio for r in g))  # fmt: skip
        for k, g in groups.items()
    )


def _row(key: RowKey, a: list[list[float]], b: list[list[float]], c: Change, factors: Factors) -> RowComparison:
    return RowComparison(key, side(a), side(b), c, *fails(factors, key.path, c.verdict, c.ratio))


def compare_runs(a: RunData, b: RunData, factors: Factors = Factors(), alpha: float = ALPHA) -> Comparison:
    """B (new) against A (old): every matched row's ratio, CI, p-value and verdict, the per-path summary, the rows
    only one run has, and the environment diff."""
    keys_a, keys_b = _keys(a.results), _keys(b.results)
    samples_a, samples_b = per_process_samples(a.samples), per_process_samples(b.samples)
    timed, untimed = [], []
    for key in (k for k in keys_b if k in keys_a):
        sk = (key.model, key.backend, key.path, key.sizes, key.dtype, key.threads)
        sa, sb = samples_a.get(sk), samples_b.get(sk)
        if sa and sb:
            timed.append((key, sa, sb, change(sa, sb, alpha)))
        else:
            untimed.append(Untimed(key, " and ".join(n for n, s in (("A", sa), ("B", sb)) if not s)))
    judged = judge([c for *_, c in timed], alpha)
    rows = [_row(key, sa, sb, c, factors) for (key, sa, sb, _), c in zip(timed, judged)]
    return Comparison(
        a=_info(a), b=_info(b), rows=tuple(rows), paths=_path_summaries(rows),
        only_a=tuple(k for k in keys_a if k not in keys_b), only_b=tuple(k for k in keys_b if k not in keys_a),
        untimed=tuple(untimed), env=env_diff(a.meta.get("env") or {}, b.meta.get("env") or {}),
        factors=factors, alpha=alpha,
    )  # fmt: skip


# -- words shared by the terminal and the HTML report --------------------------------------------------------------


def fmt_p(p: float) -> str:
    return "—" if missing(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_change(c: Change) -> str:
    """``"1.48× [1.41–1.55]"``."""
    return f"{c.ratio:.3g}× [{c.ci_low:.3g}–{c.ci_high:.3g}]"


def where(key: RowKey) -> str:
    """``"numpy at dense (tensorflow) batch=1 features=128 units=128 float32"``, visible."""
    opts = f" {key.options_label}" if key.options_label else ""
    threads = f" threads={key.threads}" if key.threads else ""
    return (f"{visible(key.path)} at {visible(key.model)} ({visible(key.backend)}) {visible(key.sizes)}"
            f"{opts}{threads} {visible(key.dtype)}")  # fmt: skip


def env_headline(c: Comparison, limit: int = 4) -> str:
    """The cross-environment warning, naming the first differences; empty when the environments match."""
    major = [d for d in c.env if d.major]
    if not major:
        return ""
    shown = "; ".join(f"{visible(d.key)} {visible(d.a)} → {visible(d.b)}" for d in major[:limit])
    more = f"; and {len(major) - limit} more (see the environment diff)" if len(major) > limit else ""
    return (f"DIFFERENT ENVIRONMENTS: {shown}{more}. Every ratio below includes the effect of these changes.")


SHIFT = 1.05  # NumPy's rows and the others moved the same way by at least this factor: the machine, likely


def machine_shift(c: Comparison) -> str:
    """A warning when the NumPy twin's rows moved with the other rows, the same way and by 5% or more (geometric
    means): no Keras or backend change touches the twin, so the machine most likely ran at another speed for one of
    the runs (a back-to-back A/A pair of default runs on the 2-core VM failed the gate so: NumPy 1.06×, the Keras
    paths 1.16-1.30×). Empty otherwise, or with fewer than two NumPy rows."""
    numpy = [r.change.ratio for r in c.rows if r.key.path == BASELINE]
    others = [r.change.ratio for r in c.rows if r.key.path != BASELINE]
    if len(numpy) < 2 or not others:
        return ""
    gn, go = (float(scipy_stats().gmean(v)) for v in (numpy, others))
    if (gn > 1) != (go > 1) or min(abs(math.log(gn)), abs(math.log(go))) < math.log(SHIFT):
        return ""
    return (f"the machine may have run at another speed: NumPy's rows, which no Keras or backend change touches, "
            f"moved {gn:.3g}× (geometric mean of {len(numpy)}) and the other rows {go:.3g}×; rerun A and B back to "
            "back (--rigorous for a gate) before reading a change as the code's")


def contention(c: Comparison) -> tuple[str, ...]:
    """One warning per run whose rows were measured while another process shared a core (flag ``contended``):
    their medians hold that process's time slices, so a change in them may be the machine's load."""
    out = []
    for side, info in (("A", c.a), ("B", c.b)):
        if info.contended:
            worst = "" if math.isnan(info.max_others_cpu) else f" up to {100 * info.max_others_cpu:.0f}% of"
            out.append(f"{side} ({visible(info.run_id)}): {info.contended} of {info.rows} rows were timed while "
                       f"other processes took{worst} the CPUs; a change in them may be that load's: rerun on a "
                       "quiet machine before reading it as the code's")  # fmt: skip
    return tuple(out)


def gate_lines(c: Comparison) -> tuple[str, ...]:
    """One line per failing row, naming its path and cell; nothing when the gate passes or is off."""
    return tuple(f"slower than --fail-above {r.factor:g}: {where(r.key)}: {fmt_change(r.change)}, "
                 f"p={fmt_p(r.change.p_adjusted)} (Holm)" for r in c.failures)  # fmt: skip
