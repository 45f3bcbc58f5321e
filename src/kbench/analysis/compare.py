"""Compare two runs: did a call path get slower (or faster) from run A to run B?

B is the new run; every ratio is B over A. Rows are matched on (model, backend, path, sizes, dtype, options).

**The unit of replication is the worker process.** Samples inside one process share its memory layout, thread
placement and the machine's state at that moment, so they are correlated; the process medians are the independent
observations (``--processes``, default 3). Timings are multiplicative, so everything is on the log scale.

**Ratio and its 95% CI.** The point is the ratio of the pooled medians, ``median_B / median_A`` (as in
:mod:`kbench.core.stats`). The CI is ``ratio · exp(± half)`` where ``half`` is the wider of

- the *process interval*: half the 95% CI of ``mean(log process medians of B) - mean(log process medians of A)``
  from :func:`scipy.stats.ttest_ind`: Welch (``equal_var=False``, Welch-Satterthwaite degrees of freedom) when both
  runs have >= 2 processes; the pooled Student t when one run has a single process (a v1 run): its one median is
  then taken as one draw from the spread the other run's processes show;
- the *floor*: the within-process uncertainty, which N processes can hide by agreeing by chance: the log
  half-widths of each run's order-statistics CI of its pooled median (:func:`kbench.measure.timer.median_ci`, the N = 1
  interval of :mod:`kbench.core.stats`), combined in quadrature.

With one process on both sides only the floor exists.

**p-value.** From the same test as the process interval: Welch's (or the pooled) t-test on the log process medians
(:func:`scipy.stats.ttest_ind`). A Mann-Whitney test on the process medians cannot go below p = 0.1 with 3 + 3
processes, and on the pooled samples it treats correlated samples as independent and calls every between-process
wobble significant. Only when both runs have one process each (two v1 runs) is Mann-Whitney on the pooled samples
used (:func:`scipy.stats.mannwhitneyu`), the only test left; the ``test`` field says which one ran.

**Verdict.** ``slower`` or ``faster`` only when the change is *significant*: its Holm-adjusted p < 0.05 **and**
the ratio's CI excludes 1 (the CI carries the floor the t-test cannot see); ``same`` otherwise. The adjustment is
Holm's step-down over every timed row of the comparison, so the chance that *any* row of an A/A comparison is
called significant stays under 5%: without it, 18 rows at 5% each made the gate fail 2 of 10 A/A pairs of the
default run (``benchmarks/aa_false_alarms.py``; 9 of 180 rows, exactly the 5% a per-row test promises). Each row
keeps its own p (``p_value``) beside the adjusted one (``p_adjusted``).

**Gate** (``--fail-above``): a row fails when its verdict is ``slower`` and its *point* ratio is above the factor
for its path (a per-path factor, else the default). The point ratio, not the CI's low end: the CI says whether the
change is real, the factor says whether it is big enough to matter; asking the low end to clear the factor too
would let a real 1.3x slowdown through a 1.10 gate whenever the runs are noisy.

**Environments.** The two fingerprints (``meta.env``) are flattened to dotted keys and diffed. Every difference is
listed; all but the parent process's loaded BLAS libraries (``host.blas``: what the CLI process happened to import,
never what timed anything) make the comparison *cross-environment*, which the terminal and the report say first.

Resolution: a run folder, a run id under ``reports_dir``, ``latest`` or ``previous`` (the run before the latest; both
ordered by the mtime of ``run.json`` as :func:`kbench.store.results.resolve_run` orders ``latest``).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from kbench.core.errors import BadOptionError, RunNotFoundError
from kbench.core.fmt import missing, visible
from kbench.measure.callpaths import PATHS
from kbench.store.results import RunData, load_run, resolve_run
from kbench.core.stats import scipy_stats, summarize
from kbench.measure.timer import median_ci

ALPHA = 0.05
LEVEL = 0.95
KEY = ("model", "backend", "path", "sizes", "dtype", "options")
MINOR_ENV_KEYS = ("host.blas",)  # listed in the diff, never enough to call the comparison cross-environment


class BadFactorError(BadOptionError):
    """A ``--fail-above`` value that is not a factor > 1, or names a path kbench does not know."""


# -- resolving runs ------------------------------------------------------------------------------------------------


def _runs_by_age(reports: Path) -> list[Path]:
    return [p.parent for p in sorted(reports.glob("*/run.json"), key=lambda p: p.stat().st_mtime)]


def resolve(ref: str | Path, reports_dir: str | Path = "reports") -> Path:
    """A run folder, a run id, ``latest``, or ``previous`` (the run before the latest)."""
    if str(ref) != "previous":
        return resolve_run(ref, reports_dir)
    runs = _runs_by_age(Path(reports_dir))
    if len(runs) < 2:
        raise RunNotFoundError(f"`previous` needs two runs under {reports_dir}/, found {len(runs)}; "
                               "run `kbench run` again or name both runs")  # fmt: skip
    return runs[-2]


def load(ref: str | Path, reports_dir: str | Path = "reports") -> RunData:
    return load_run(resolve(ref, reports_dir), reports_dir)


# -- fail factors --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factors:
    """``--fail-above``: a default factor and per-path ones (``predict=1.5``); None means no gate."""

    default: float | None = None
    per_path: tuple[tuple[str, float], ...] = ()

    def for_path(self, path: str) -> float | None:
        return dict(self.per_path).get(path, self.default)

    @property
    def active(self) -> bool:
        return self.default is not None or bool(self.per_path)

    def describe(self) -> str:
        parts = ([f"{self.default:g}"] if self.default is not None else []) + [f"{p}={f:g}" for p, f in self.per_path]
        return " ".join(f"--fail-above {p}" for p in parts)


def _factor(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadFactorError(f"{flag}: {text!r} is not a number; write a factor above 1, e.g. --fail-above 1.10") from None
    if not math.isfinite(value) or value <= 1:
        raise BadFactorError(f"{flag}: {text!r} is not a factor above 1; write e.g. --fail-above 1.10 (10% slower)")
    return value


def parse_factors(items: Iterable[str]) -> Factors:
    """``["1.10", "predict=1.5"]`` -> Factors; a bad number or an unknown path is a :class:`BadFactorError`."""
    default, per_path = None, {}
    for item in items:
        path, sep, value = str(item).partition("=")
        if not sep:
            default = _factor(item, "--fail-above")
            continue
        path = path.strip()
        if path not in PATHS:
            raise BadFactorError(f"--fail-above {item!r}: no path {path!r}; use one of {', '.join(PATHS)}")
        per_path[path] = _factor(value.strip(), f"--fail-above {path}")
    return Factors(default, tuple(per_path.items()))


# -- statistics ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One run's measurement of one row."""

    median: float  # of every sample of every process, pooled
    process_medians: tuple[float, ...]
    n_samples: int
    floor_low: float  # order-statistics 95% CI of the pooled median (within-process uncertainty)
    floor_high: float


@dataclass(frozen=True)
class Change:
    """B relative to A for one row: ``ratio`` = median_B / median_A with its 95% CI, the test's p-value."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float  # the row's own test
    test: str  # "welch-t", "pooled-t" or "mann-whitney"
    floored: bool  # the floor, not the process interval, set the CI's width
    significant: bool
    verdict: str  # "slower", "faster" or "same"
    p_adjusted: float = math.nan  # Holm-adjusted over every row of the comparison (what the verdict uses)


def side(per_process: Sequence[Sequence[float]]) -> Side:
    s = summarize(per_process)
    lo, hi = median_ci(tuple(sorted(x for p in per_process for x in p)))
    return Side(s.median, s.process_medians, sum(len(p) for p in per_process), lo, hi)


def _log_half(s: Side) -> float:
    return max(math.log(s.median / s.floor_low), math.log(s.floor_high / s.median))


def _t_test(a: Side, b: Side) -> tuple[float, float, str]:
    """(p-value, half-width of the log-ratio's 95% CI, test name) from the log process medians."""
    la, lb = np.log(a.process_medians), np.log(b.process_medians)
    welch = len(la) >= 2 and len(lb) >= 2
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = scipy_stats().ttest_ind(lb, la, equal_var=not welch)
        ci = res.confidence_interval(LEVEL)
    p = float(res.pvalue)
    if math.isnan(p):  # no spread on either side: the difference is exactly what it is
        p = 1.0 if float(np.mean(lb)) == float(np.mean(la)) else 0.0
    half = float(ci.high - ci.low) / 2
    return p, half if math.isfinite(half) else 0.0, "welch-t" if welch else "pooled-t"


def _mann_whitney(a_samples: Sequence[float], b_samples: Sequence[float]) -> float:
    return float(scipy_stats().mannwhitneyu(b_samples, a_samples, alternative="two-sided").pvalue)


def change(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], alpha: float = ALPHA) -> Change:
    """B against A from each run's per-process samples (module docstring: the CI, the test, the verdict)."""
    sa, sb = side(a), side(b)
    ratio = sb.median / sa.median
    floor = math.hypot(_log_half(sa), _log_half(sb))
    if len(sa.process_medians) + len(sb.process_medians) >= 3:
        p, half_t, test = _t_test(sa, sb)
    else:
        p, half_t, test = _mann_whitney(a[0], b[0]), 0.0, "mann-whitney"
    half = max(half_t, floor)
    lo, hi = ratio * math.exp(-half), ratio * math.exp(half)
    significant = p < alpha and (lo > 1 or hi < 1)
    verdict = ("slower" if ratio > 1 else "faster") if significant else "same"
    return Change(ratio, lo, hi, p, test, floor > half_t, significant, verdict)


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


# -- environments --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvDiff:
    key: str  # dotted: packages.tensorflow, host.cpu, tensorflow.intra_op_threads, env.OMP_NUM_THREADS
    a: str
    b: str
    major: bool  # counts towards "cross-environment"


def _blas_label(libs: Any) -> str:
    """A BLAS list (threadpoolctl) as one order-independent string: ``openblas 0.3.31 SkylakeX threads=2``."""
    if not isinstance(libs, list):
        return visible(libs)
    names = []
    for d in libs:
        if isinstance(d, Mapping):
            parts = [d.get("internal_api"), d.get("version"), d.get("architecture"),
                     f"threads={d.get('num_threads')}", d.get("threading_layer"), d.get("error")]  # fmt: skip
            names.append(" ".join(str(p) for p in parts if not missing(p) and p != ""))
    return "; ".join(sorted(set(names)))


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif prefix.endswith("blas"):
        out[prefix] = _blas_label(value)
    elif isinstance(value, list):
        out[prefix] = ", ".join(map(str, value))
    else:
        out[prefix] = "" if value is None else str(value)


def fingerprint(env: Mapping[str, Any]) -> dict[str, str]:
    """``meta.env`` flattened: ``host.*`` (packages as ``packages.*``, variables as ``env.*``), ``<backend>.*``."""
    env = env if isinstance(env, Mapping) else {}
    host = dict(env.get("host") or {})
    out: dict[str, str] = {}
    _flatten({k: v for k, v in host.items() if k not in ("packages", "env")}, "host", out)
    _flatten(host.get("packages") or {}, "packages", out)
    _flatten(host.get("env") or {}, "env", out)
    _flatten(env.get("backends") or {}, "", out)
    return out


def env_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[EnvDiff, ...]:
    fa, fb = fingerprint(a), fingerprint(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return tuple(EnvDiff(k, fa.get(k, "(absent)"), fb.get(k, "(absent)"), k not in MINOR_ENV_KEYS)
                 for k in keys if fa.get(k) != fb.get(k))  # fmt: skip


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
    m = run.meta
    return RunInfo(str(m.get("run_id") or run.run_dir.name), run.run_dir, str(m.get("started", "")),
                   str(m.get("command", "")), run.source_version)  # fmt: skip


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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (a missing p counts as 1): the family-wise error rate over all
    rows stays at most alpha, which is what a gate asking "did *any* row get slower?" needs."""
    p = [1.0 if missing(v) else float(v) for v in p_values]
    adjusted, running = [1.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(len(p)), key=p.__getitem__)):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _judged(c: Change, p_adjusted: float, alpha: float) -> Change:
    """The row's verdict from its Holm-adjusted p-value (and its CI excluding 1, as before)."""
    significant = p_adjusted < alpha and (c.ci_low > 1 or c.ci_high < 1)
    verdict = ("slower" if c.ratio > 1 else "faster") if significant else "same"
    return replace(c, significant=significant, verdict=verdict, p_adjusted=p_adjusted)


def _row(key: RowKey, a: list[list[float]], b: list[list[float]], c: Change, factors: Factors) -> RowComparison:
    factor = factors.for_path(key.path)
    fails = factor is not None and c.verdict == "slower" and c.ratio > factor
    return RowComparison(key, side(a), side(b), c, factor, fails)


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
    adjusted = holm([c.p_value for *_, c in timed])
    rows = [_row(key, sa, sb, _judged(c, p, alpha), factors) for (key, sa, sb, c), p in zip(timed, adjusted)]
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


def gate_lines(c: Comparison) -> tuple[str, ...]:
    """One line per failing row, naming its path and cell; nothing when the gate passes or is off."""
    return tuple(f"slower than --fail-above {r.factor:g}: {where(r.key)}: {fmt_change(r.change)}, "
                 f"p={fmt_p(r.change.p_adjusted)} (Holm)" for r in c.failures)  # fmt: skip


# -- the HTML report -----------------------------------------------------------------------------------------------

RATIO_TICKS = ((0.8, 0.9, 1.0, 1.1, 1.25), (0.1, 0.2, 0.5, 0.8, 1.0, 1.25, 2.0, 5.0, 10.0))  # fine, coarse
VERDICT_COLORS = {"slower": "#b3261e", "faster": "#1b7f3b", "same": "#7a8190"}
METHOD = (
    "B is the new run; every ratio is median B / median A (the medians of every sample of every worker process).",
    "The worker process is the unit of replication: samples inside one process are correlated, the process medians "
    "are the independent observations. Everything is on the log scale (timings are multiplicative).",
    "The 95% CI of the ratio is the wider of the interval from the t-test on the log process medians (Welch when "
    "both runs have two processes or more; the pooled t when one has a single process) and a floor from each "
    "run's within-process uncertainty (order-statistics CI of its median), combined in quadrature.",
    "p is that t-test's two-sided p-value (Mann-Whitney on the pooled samples only when both runs have one "
    "process each). A row is slower or faster only when p < 0.05 and its CI excludes 1; same otherwise.",
    "--fail-above: a row fails when it is significantly slower and its point ratio is above its path's factor.",
)


def row_label(key: RowKey, backend: bool = True) -> str:
    opts = f" · {key.options_label}" if key.options_label else ""
    opts += f" · threads={key.threads}" if key.threads else ""
    model = f"{visible(key.model)} · {visible(key.backend)}" if backend else visible(key.model)
    return f"{model} · {visible(key.path)} · {visible(key.sizes)}{opts}"


def forest_figure(c: Comparison):
    """One horizontal line per row: the ratio B/A and its 95% CI (log scale), a line at 1 and at each fail factor."""
    import matplotlib
    import matplotlib.ticker as mticker
    import seaborn as sns
    from matplotlib.figure import Figure

    from kbench.core.fmt import fmt_ratio

    rows = c.rows
    df = pd.DataFrame({"y": range(len(rows)), "ratio": [r.change.ratio for r in rows],
                       "verdict": [r.change.verdict for r in rows]})  # fmt: skip
    with sns.axes_style("whitegrid"), matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        fig = Figure(figsize=(10, 1.4 + 0.26 * max(len(rows), 1)), layout="constrained")
        ax = fig.add_subplot()
        for i, r in enumerate(rows):
            ax.hlines(i, r.change.ci_low, r.change.ci_high, color=VERDICT_COLORS[r.change.verdict], lw=2)
            if r.factor is not None and r.factor != c.factors.default:
                ax.plot([r.factor], [i], marker="|", markersize=12, color="#b3261e")
        sns.scatterplot(df, x="ratio", y="y", hue="verdict", palette=VERDICT_COLORS, ax=ax, zorder=3, s=30,
                        hue_order=[v for v in VERDICT_COLORS if v in set(df["verdict"])])  # fmt: skip
        ax.axvline(1.0, color="black", lw=1)
        if c.factors.default is not None:
            ax.axvline(c.factors.default, color="#b3261e", lw=1, ls="--", label=f"fail above {c.factors.default:g}×")
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ticks = RATIO_TICKS[0] if hi / lo < 1.6 else RATIO_TICKS[1]
        ax.set_xticks([t for t in ticks if lo <= t <= hi] or [1.0])
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: fmt_ratio(v)))
        ax.xaxis.set_minor_locator(mticker.NullLocator())
        several = len({r.key.backend for r in rows}) > 1
        ax.set_yticks(range(len(rows)), [row_label(r.key, several) for r in rows], fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("median B / median A, 95% CI (log scale; right of 1: B is slower)")
        ax.set_ylabel("")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(f"B {visible(c.b.run_id)} against A {visible(c.a.run_id)}", x=0.01, ha="left")
        return fig


def _css() -> str:
    """The run report's styles (one source: templates/report.html.j2's <style> block)."""
    from importlib import resources

    text = resources.files("kbench").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    start, end = text.find("<style>"), text.find("</style>")
    return text[start + len("<style>"):end] if 0 <= start < end else ""


def build_html(c: Comparison) -> str:
    """The compare report as one HTML string: every value from a run is text that Jinja autoescapes; only the
    package's own stylesheet is marked safe."""
    import base64
    from importlib import resources

    import jinja2
    from markupsafe import Markup

    from kbench.present.figures import to_png
    from kbench.core.fmt import fmt_time

    template = resources.files("kbench").joinpath("templates/compare.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    forest = base64.b64encode(to_png(forest_figure(c))).decode("ascii") if c.rows else ""
    return env.from_string(template).render(
        c=c, css=Markup(_css()), forest=forest, headline=env_headline(c, limit=6), gate=gate_lines(c),
        counts=c.counts(), visible=visible, fmt_time=fmt_time, fmt_p=fmt_p, fmt_change=fmt_change,
        label=row_label, where=where, method=METHOD,
    )  # fmt: skip


def default_html_path(c: Comparison) -> Path:
    """``<B run folder>/compare-<A id>.html`` (the id made safe for a file name)."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in c.a.run_id) or "A"
    return c.b.run_dir / f"compare-{safe}.html"


def write_html(c: Comparison, out: str | Path | None = None) -> Path:
    """Render, then write atomically: a failure never leaves half a file."""
    from kbench.core.errors import ReportWriteError
    from kbench.store.results import atomic_write

    path = Path(out) if out is not None else default_html_path(c)
    if path.is_dir():
        raise ReportWriteError(f"--html {path} is a folder; pass a file path such as {path / 'compare.html'}")
    html = build_html(c)
    try:
        atomic_write(path, html)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the compare report to {path}: {exc.strerror}; pass --html to a "
                               "writable file or --no-html") from None  # fmt: skip
    return path
