"""The Python API. The CLI is a thin layer over these functions; each returns data, never prints.

    >>> import kbench
    >>> plan = kbench.plan(["dense"], sizes={"batch": "1,32"}, processes=3)
    >>> result = kbench.run(plan)          # RunResult: .results (a pandas DataFrame), .samples, .run_dir, .ok
    >>> saved = kbench.load_run("latest")  # RunData: .meta (RunMeta), .results, .samples

A request is a :class:`kbench.orchestrate.request.RunRequest` (what the user asked for); :func:`plan` takes one, or builds
it from the same keyword arguments, and validates it in one place (:func:`kbench.orchestrate.request.make_plan`), so the
CLI and the API refuse the same input with the same one-line message. Strings such as ``"1,32"``,
``"2**0..2**10"`` or ``"5m"`` are accepted where the CLI takes them, as are plain numbers and lists.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

from kbench.core import errors
from kbench.core.files import unwritable
from kbench.machine.fingerprint import host_fingerprint
from kbench.measure.timer import TimerConfig
from kbench.model.loader import available_models, load_model_file, model_dirs
from kbench.model.spec import ModelSpec
from kbench.orchestrate.planning import Plan, parse_backends
from kbench.orchestrate.record import RunStart
from kbench.orchestrate.request import RunRequest, listify, make_plan
from kbench.orchestrate.session import Progress, RunResult, RunSession


def list_models(models_dirs: Iterable[str | Path] = ()) -> list[ModelSpec]:
    """Every model in the user folders and the built-in folder (this imports each model file)."""
    return [load_model_file(p) for p in available_models(model_dirs(tuple(models_dirs))).values()]


def plan(request: RunRequest | Iterable[str] | str, *args: Any, **options: Any) -> Plan:
    """Validate a request and return the plan; raises a :class:`kbench.core.errors.UsageError` on bad input.

    ``request`` is a :class:`RunRequest`, or the models, then the rest of a request's fields (see
    :class:`RunRequest`: ``paths``, ``sizes``, ``options``, ``dtype``, ``seed``, ... ``gaps``, ``threads``, ``rate``)
    by position or keyword, as in ``kbench.plan(["dense"], sizes={"batch": "1,32"}, processes=3)``."""
    if isinstance(request, RunRequest):
        if args or options:
            raise TypeError("plan() takes a RunRequest alone, or the models and the request's fields")
        return make_plan(request)
    return make_plan(RunRequest(request, *args, **options))


def _new_run_dir(out_dir: Path, plan: Plan) -> Path:
    models = "-".join(dict.fromkeys(c.model for c in plan.cells))
    stem = f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{models}"
    run_dir, i = out_dir / stem, 1
    while run_dir.exists():
        i += 1
        run_dir = out_dir / f"{stem}-{i}"
    return run_dir


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse, before anything runs, an output folder that cannot be created or written."""
    p = Path(out_dir)
    if p.exists() and not p.is_dir():
        raise errors.UsageError(f"--out {p} is a file; pass a folder for the run folders")
    probe = p.absolute()
    while not probe.exists():
        probe = probe.parent
    reason = "not a folder" if not probe.is_dir() else unwritable(probe / ".kbench-run")
    if reason:
        raise errors.UsageError(f"--out {p} cannot be written ({probe}: {reason}); pass a writable folder")


def default_cell_timeout(plan: Plan) -> float:
    """A cell that has not finished after this long is a hang: two minutes for the backend import and cold start,
    plus 20 times the cell's sampling budget."""
    return 120.0 + 20.0 * plan.timer.budget_s


def _machine(plan: Plan) -> tuple[Any, list[str], list[dict]]:
    """The machine peak (cached after the first run) and the machine and noise check, for a timed run."""
    if plan.mode != "run":
        return None, [], []
    from kbench.machine import check, peak

    peak_figures, _ = peak.load_or_measure(engines=plan.backends)
    findings = check.check(peak=peak_figures)
    return peak_figures, check.block_lines(findings), [asdict(f) for f in findings]


def run(
    plan: Plan,
    out_dir: str | Path | None = "reports",
    on_event: Callable[[Progress], None] | None = None,
    cell_timeout_s: float | None = None,
) -> RunResult:
    """Run a plan: ``plan.processes`` worker processes per backend, one after the other. With ``out_dir`` (the
    default ``reports``) results are written to a new run folder as each cell finishes; the folder is created only
    once the first cell has finished.

    A worker that crashes or hangs (no cell finished within ``cell_timeout_s``, default ``plan.cell_timeout_s`` or
    :func:`default_cell_timeout`) is stopped; the cell it was on and the ones after it are recorded as failed with
    the reason, and every finished cell is kept. Ctrl-C (or SIGTERM turned into :class:`session.Interrupted`) does
    the same and returns with ``interrupted`` set. Raises a :class:`kbench.core.errors.UsageError` when the worker finds
    a bad model (after saving finished cells).
    """
    if out_dir is not None:
        check_out_dir(out_dir)
    hook = on_event or (lambda event: None)
    peak_figures, machine_lines, findings = _machine(plan)
    timeout = cell_timeout_s or plan.cell_timeout_s or default_cell_timeout(plan)
    run_dir = _new_run_dir(Path(out_dir), plan) if out_dir is not None else None
    start = RunStart.of(plan, peak_figures, machine_lines, findings)
    return RunSession(plan, run_dir, start, hook, timeout, peak_figures).run()


def environment(backends: Iterable[str] | str | None = None) -> dict:
    """The host fingerprint plus each backend's, read from a worker per backend (the parent never imports one).
    ``backend`` holds the first backend's fingerprint, ``backends`` every one's."""
    from kbench.measure import protocol
    from kbench.orchestrate.runner import stream

    out: dict[str, Any] = {"host": host_fingerprint(), "backends": {}}
    for name in parse_backends(listify(backends)):
        job = protocol.Job((), (), name, 0, TimerConfig(), mode="env")
        with tempfile.TemporaryDirectory(prefix="kbench-") as tmp:
            for event in stream(job, Path(tmp) / "worker.log"):
                if isinstance(event, protocol.Imported):
                    out["backends"][name] = event.env
                    out.setdefault("imports", {"numpy_s": event.numpy_import_s, "backend_s": event.backend_import_s})
                elif isinstance(event, protocol.Failed):
                    raise errors.from_data(event.kind, event.message, event.exit_code)
                elif isinstance(event, protocol.Exited) and name not in out["backends"]:
                    raise errors.WorkerError(f"the {name} worker failed to start: {event.stderr_tail or 'no output'}")
    out["backend"] = next(iter(out["backends"].values()))
    return out
