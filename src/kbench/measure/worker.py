"""The backend worker: ``python -m kbench.measure.worker`` with a :class:`kbench.measure.protocol.Job` on stdin and one
:mod:`kbench.measure.protocol` event per line on stdout.

One worker process per Keras backend and per repetition (``--processes``): ``KERAS_BACKEND`` is set by the parent
before this process imports Keras, and the parent never imports the backend itself. The worker's first act is to
time its own imports (NumPy, then Keras with its backend) in this fresh process. It then streams one ``CellDone``
per finished cell (see :mod:`kbench.measure.cellrun` for the steps), so a crash loses only the cells that were not finished.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
import traceback
from dataclasses import replace


def protocol_stream():
    """Keep the protocol clean: the real stdout becomes the protocol stream, and anything printed by TensorFlow,
    Keras or a model file goes to stderr (the worker log)."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def main() -> int:
    started = time.perf_counter()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us and keeps results
    faulthandler.enable()  # a segfault leaves a Python traceback in the worker log
    proto = protocol_stream()
    job_text = sys.stdin.read()
    import_s = timed_imports()
    from kbench.measure import protocol

    return serve(protocol.decode_job(job_text), emitter(proto), started, import_s)


def timed_imports() -> tuple[float, float]:
    """Import NumPy, then Keras with its backend (``KERAS_BACKEND``, chosen by the parent); return both times."""
    t0 = time.perf_counter()
    import numpy  # noqa: F401  (timed: the baseline's import cost)

    t1 = time.perf_counter()
    import keras  # noqa: F401  (timed: Keras plus its backend)

    return t1 - t0, time.perf_counter() - t1


def emitter(proto):
    """A function that writes one event as one protocol line and flushes it."""
    from kbench.measure import protocol

    def emit(event) -> None:
        proto.write(protocol.encode(event) + "\n")
        proto.flush()

    return emit


def numpy_blas_threads() -> int | None:
    """NumPy's BLAS thread count in this process, as threadpoolctl reads it; None where it cannot be read."""
    from kbench.machine.threadpools import numpy_blas, read_threadpools

    try:
        n = numpy_blas(read_threadpools()).get("num_threads")
    except Exception:  # threadpoolctl missing or failing: the row says nothing rather than stop the cell
        return None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def serve(job, emit, started: float, import_s: tuple[float, float], fork_server: int | None = None) -> int:
    """Set up the device, announce the imports (timed in the fork server ``fork_server`` when this process was forked
    from one), then run (or skip) every cell of the job in order."""
    from kbench.measure import budget, protocol
    from kbench.backends import get as get_backend
    from kbench.measure.cellrun import WorkerState, freeze_heap
    from kbench.machine.fingerprint import backend_fingerprint
    from kbench.core.errors import KbenchError

    from kbench.backends.threads import apply_threads
    from kbench.machine.threadpools import read_threadpools

    state = WorkerState(job.backend)
    # before any op: --threads (its variables were set already)
    threads = apply_threads(job.backend, job.threads, read_threadpools)
    try:
        state.device, state.precision = get_backend(job.backend).setup_device(job.device, job.precision)
    except KbenchError as exc:
        emit(_failed(0, exc))
        return 0
    env = {**backend_fingerprint(), "device": state.device, "matmul_precision": state.precision,
           "threads_setting": threads}
    emit(protocol.Imported(import_s[0], import_s[1], env, os.getpid(), fork_server))
    freeze_heap()
    if job.mode == "env":
        emit(protocol.Done())
        return 0
    costs = None  # the budget's cost model, from the cells run so far
    for index, cell in enumerate(job.cells):
        try:
            flops = state.spec(cell.model_file).flops(cell.sizes_dict)
            budget_s, skip = budget.cell_budget(job, index, time.perf_counter() - started, costs, flops)
            if skip:
                emit(protocol.CellSkipped(index, skip))
                continue
            t0 = time.perf_counter()
            done = _run_cell(job, index, state, emit, budget_s)
            costs = budget.after_cell(costs, cell.model, done, time.perf_counter() - t0, flops)
            timed = job.mode == "run"
            emit(replace(done, budget_s=budget_s if timed else None, overhead_s=costs.cold_s if timed else None,
                         blas_threads=numpy_blas_threads()))
        except Exception as exc:  # a typed error stops the job; anything else is a backend failure, reported
            emit(_failed(index, exc))
            return 0
    emit(protocol.Done())
    return 0


def _run_cell(job, index, state, emit, budget_s):
    from kbench.measure.cellrun import CellRunner

    return CellRunner(job, index, state, emit).run(budget_s)


def _failed(index: int, exc: BaseException):
    """An error as data: a kbench error keeps its kind, message and exit code; anything else is a failure (1)."""
    from kbench.core.errors import KbenchError, one_line
    from kbench.measure.protocol import Failed

    if isinstance(exc, KbenchError):
        return Failed(index, type(exc).__name__, one_line(exc), exc.exit_code)
    return Failed(index, type(exc).__name__, f"{type(exc).__name__}: {one_line(exc)}", 1, traceback.format_exc())


if __name__ == "__main__":
    sys.exit(main())
