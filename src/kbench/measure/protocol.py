"""The worker protocol: what crosses the process boundary, as frozen dataclasses with a JSON round trip.

Parent -> worker: one :class:`Job` on stdin (one worker process's share of a :class:`kbench.orchestrate.planning.Plan`).
Worker -> parent: one JSON line per event on stdout, each one of :data:`WORKER_EVENTS`::

    Imported      the worker timed its own imports (NumPy, then Keras with its backend); backend fingerprint
    RuntimeInit   the throwaway pass that pays the process-wide lazy set-up before the first cell
    Phase         progress: which cell and which step the worker is on
    CellDone      a finished cell: one PathResult per call path
    CellSkipped   the run budget could not hold this cell
    Failed        an error, as data (kind, message, exit code): exit code 2 is the user's input, 1 a measurement
    Done          every cell of the job was handled

The parent adds two events of its own when the process ends (:data:`PARENT_EVENTS`): ``Timeout`` (no cell
finished within the cell timeout, so the worker was killed) and ``Exited`` (its return code and last log line).

Workers forked from a fork server (:mod:`kbench.measure.forkserver`) get a :class:`ForkRequest` (the job and the
log to write) on the server's stdin, write the same events to the server's stdout, and the server adds
:class:`Reaped` (:data:`FORK_EVENTS`) once the forked worker has exited.

Every field is required on the wire: a line that lacks one is refused with :class:`kbench.core.errors.WorkerError`,
so a protocol change cannot slip through half-read. Adding an event is one dataclass here plus one ``case`` in
:mod:`kbench.orchestrate.session`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Union

from kbench.core.errors import WorkerError
from kbench.measure.latency import LATENCY_S, LatencySeries
from kbench.measure.parity import ParityResult
from kbench.measure.timer import TimerConfig


@dataclass(frozen=True)
class Cell:
    """One cell of a plan: a model at one set of sizes, options and dtype; every path of a backend is timed in it."""

    model: str
    model_file: str
    sizes: tuple[tuple[str, int], ...]
    options: tuple[tuple[str, Any], ...]
    dtype: str

    @property
    def sizes_dict(self) -> dict[str, int]:
        return dict(self.sizes)

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.sizes)


@dataclass(frozen=True)
class Job:
    """One worker process's job: the cells of a plan on one backend, as process ``process`` of ``processes``."""

    cells: tuple[Cell, ...]
    paths: tuple[str, ...]
    backend: str
    seed: int
    timer: TimerConfig
    mode: str = "run"  # "run", "parity" or "env"
    device: str = "cpu"
    precision: str = "default"
    resident: bool | None = None
    run_budget_s: float | None = None  # this process's share of the whole-run budget (cells that do not fit: skipped)
    process: int = 0  # 0-based index of this process among the backend's worker processes
    processes: int = 1
    gaps: tuple[float, ...] = ()  # --gap: idle gaps (s) before single calls, besides back to back (kbench.measure.latency)
    threads: int | None = None  # --threads: set before the backend's import; None: the backend's default
    latency_s: float = LATENCY_S  # back-to-back single calls: seconds per cell, all processes and paths together
    rate: float | None = None  # --rate: open-loop Poisson arrivals per second (kbench.measure.latency.open_loop); None: off
    time_goal_s: float | None = None  # this process's share of the default run's time goal (sampling trimmed, no skip)
    extras_first_only: bool = False  # single calls and the retrace check in process 0 only, all of them there
    cell_overhead_s: float | None = None  # a cell's time outside sampling in the processes before (the time goal)
    group: int = 0  # which share of the backend's paths (kbench.measure.callpaths.path_groups): 0, or a runtime's

    @property
    def slot(self) -> int:
        """This process's index among all of its backend's processes, every group together."""
        return self.group * self.processes + self.process

    @property
    def runs_extras(self) -> bool:
        """Whether this process times single calls and the retrace check."""
        return not self.extras_first_only or self.process == 0

    @property
    def latency_processes(self) -> int:
        """Over how many processes the single calls are spread."""
        return 1 if self.extras_first_only else self.processes


@dataclass(frozen=True)
class PathResult:
    """One call path in one cell of one worker process: cold start, parity and the steady-state samples."""

    path: str
    order: int  # position in the shuffled cold-start order
    build_s: float | None  # None for paths that build no Keras model
    first_call_s: float
    parity: ParityResult
    device: str
    placement: str
    precision: str
    samples: tuple[float, ...] = ()  # seconds per call, one per sample (empty in parity mode)
    loops: int = 0
    stop_reason: str = ""
    loop_overhead_s: float = 0.0
    fixed_overhead_s: float = 0.0
    switch_warmup_calls: int = 0
    retrace_s: float | None = None
    retrace_batch: int | None = None
    latency: tuple[LatencySeries, ...] = ()  # single calls: back to back (gap 0), then one series per --gap > 0
    latency_note: str = ""  # why there are none, e.g. "too short for single-call timing"
    arrivals: tuple[LatencySeries, ...] = ()  # --rate: each request's latency from its arrival, queueing included
    mem_rss_growth_b: int | None = None  # peak RSS growth over a few calls after the timed ones (process 0 only)
    mem_py_peak_b: int | None = None  # tracemalloc's peak over those calls
    mem_device_peak_b: int | None = None  # a @device path's peak device memory, where the backend can say
    export_s: float | None = None  # a serving runtime: the export of its file (None for every other path)
    load_s: float | None = None  # a serving runtime: its session or interpreter created from that file
    runtime: str = ""  # a serving runtime: which one and its version
    exporter: str = ""  # a serving runtime: what wrote its file
    runtime_options: tuple[tuple[str, Any], ...] = ()  # a serving runtime: its settings in effect
    others_cpu: float | None = None  # share of the usable CPUs other processes took over the rounds (None: unknown)
    shared: bool = False  # the timer found its CPU shared before calibrating, and sampled longer (TimerConfig)


@dataclass(frozen=True)
class Imported:
    numpy_import_s: float
    backend_import_s: float
    env: dict
    pid: int
    fork_server: int | None = None  # the pid of the fork server that imported, when this worker was forked from one


@dataclass(frozen=True)
class RuntimeInit:
    runtime_init_s: float


@dataclass(frozen=True)
class Phase:
    index: int
    phase: str


@dataclass(frozen=True)
class Reference:
    """A reference callable of a cell (:mod:`kbench.measure.decompose`: the floor, a dispatch, a conversion), timed in the same
    interleaved run as the paths; never a path, never a result row."""

    name: str  # "kernel", "kernel_xla", "dispatch", "dispatch_xla", "to_backend", "to_numpy", ...
    samples: tuple[float, ...] = ()  # seconds per call, one per sample
    loops: int = 0


@dataclass(frozen=True)
class CellDone:
    index: int
    paths: tuple[PathResult, ...]
    cold_order: tuple[str, ...]
    references: tuple[Reference, ...] = ()  # kbench.measure.decompose's reference timings; () in parity mode
    budget_s: float | None = None  # the steady-state sampling budget this process gave the cell (None: parity mode)
    overhead_s: float | None = None  # the cell's wall time outside its timed samples (cold start, warm-up, ...)
    blas_threads: int | None = None  # NumPy's BLAS threads in this process after the cell (None: not readable)
    unavailable: tuple[tuple[str, str], ...] = ()  # serving runtimes that could not take the model: (path, reason)


@dataclass(frozen=True)
class CellSkipped:
    index: int
    reason: str


@dataclass(frozen=True)
class Failed:
    index: int
    kind: str  # the error's class name, e.g. "ModelShapeError" or "RuntimeError"
    message: str  # one line
    exit_code: int  # 2: the user's input (the run stops); 1: a measurement or backend failure
    traceback: str = ""

    @property
    def user(self) -> bool:
        return self.exit_code == 2


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class ForkRequest:
    """Parent -> fork server, one line per worker process: the job, the log the forked worker writes, and when the
    parent sent it (``time.monotonic()``, one clock for every process on the machine): the worker's time goal and
    run budget count from then, so the first worker is charged for the server's import as a spawned one is."""

    job: Job
    log: str
    sent_at: float


@dataclass(frozen=True)
class Reaped:
    """Fork server -> parent, after the forked worker's own events: that worker has exited with ``returncode``."""

    pid: int
    returncode: int


@dataclass(frozen=True)
class Timeout:
    index: int
    after_s: float


@dataclass(frozen=True)
class Exited:
    returncode: int | None
    stderr_tail: str


WorkerEvent = Union[Imported, RuntimeInit, Phase, CellDone, CellSkipped, Failed, Done]
ParentEvent = Union[Timeout, Exited]
Event = Union[WorkerEvent, ParentEvent]
WORKER_EVENTS: dict[str, type] = {c.__name__: c for c in (Imported, RuntimeInit, Phase, CellDone, CellSkipped, Failed, Done)}
PARENT_EVENTS: dict[str, type] = {c.__name__: c for c in (Timeout, Exited)}
FORK_EVENTS: dict[str, type] = {**WORKER_EVENTS, "Reaped": Reaped}


# -- JSON ------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A dataclass tree as JSON-ready values; NaN and inf become strings JSON can carry."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf", "-inf"
    return value


def encode(obj: Any) -> str:
    """One line of JSON: ``{"event": ClassName, ...fields}`` for an event, the bare fields for a Job."""
    fields = _plain(obj)
    if type(obj).__name__ in FORK_EVENTS or type(obj).__name__ in PARENT_EVENTS:
        fields = {"event": type(obj).__name__, **fields}
    return json.dumps(fields, allow_nan=False)


def _build(tp: Any, value: Any, where: str) -> Any:
    """``value`` (from JSON) as type ``tp``: dataclasses field by field, tuples element by element."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or type(tp).__name__ == "UnionType":
        if value is None and type(None) in args:
            return None
        return _build(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(tp):
        return _from_fields(tp, value, where)
    if origin is tuple:
        return tuple(_build(args[0], v, where) for v in value)
    if tp is float:
        return float(value)  # "nan"/"inf" strings and ints alike
    return value


def _from_fields(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise WorkerError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise WorkerError(f"{where}: {cls.__name__} lacks the field {f.name!r}; the worker and parent disagree")
        kwargs[f.name] = _build(hints[f.name], data[f.name], where)
    return cls(**kwargs)


def decode(line: str, kinds: dict[str, type] = WORKER_EVENTS) -> Any:
    """One protocol line back into its event dataclass; anything else raises :class:`WorkerError`."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        raise WorkerError(f"the worker wrote a line that is not kbench's protocol: {line[:80]!r}") from None
    name = data.pop("event", None) if isinstance(data, dict) else None
    if name not in kinds:
        raise WorkerError(f"the worker wrote an unknown event {name!r}: {line[:80]!r}")
    return _from_fields(kinds[name], data, f"event {name}")


def decode_job(text: str) -> Job:
    try:
        return _from_fields(Job, json.loads(text), "job")
    except json.JSONDecodeError:
        raise WorkerError("the worker's job is not JSON") from None


def decode_fork_request(text: str) -> ForkRequest:
    try:
        return _from_fields(ForkRequest, json.loads(text), "fork request")
    except json.JSONDecodeError:
        raise WorkerError("the fork server's request is not JSON") from None
