"""The parent's side of the worker protocol: start ``python -m kbench.measure.worker`` for one backend, stream its events.

The parent never imports the backend. ``KERAS_BACKEND`` is set in the child's environment, and TensorFlow's C++
log noise is turned down (``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it) and sent to a log file.

The worker's stdout is read on a thread, so the parent can notice a hang: when no cell finishes within
``cell_timeout_s`` (counted from the worker's start, then from the last finished or skipped cell), the worker is
killed and a ``timeout`` event says so. The worker ignores SIGINT: on Ctrl-C the parent decides, stops the worker
and keeps what was finished.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from kbench.measure import protocol
from kbench.measure.protocol import Exited, Job, Timeout

_EOF = object()
_TF_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")  # TF's C++ log noise


def worker_env(backend: str, device: str = "auto") -> dict[str, str]:
    """This environment plus what the backend's worker needs for ``device`` (``KERAS_BACKEND``; GPUs hidden for
    ``cpu``; its defaults, such as TensorFlow's quieter C++ log, where the user set none): :mod:`kbench.backends`."""
    from kbench.backends import get

    return get(backend).worker_env(device, os.environ)


def _with_threads(env: dict[str, str], threads: int | None) -> dict[str, str]:
    """``--threads``: BLAS, OpenMP, TensorFlow and XLA thread variables set before the worker imports anything."""
    from kbench.backends.threads import thread_env

    return {**env, **thread_env(threads, env)}


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _reader(stream, lines: queue.Queue) -> None:
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(_EOF)


def stream(job: Job, log_path: Path, cell_timeout_s: float | None = None) -> Iterator[protocol.Event]:
    """Yield the worker's events (:mod:`kbench.measure.protocol`); on a hang a ``Timeout``; last, ``Exited``."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kbench.measure.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_with_threads(worker_env(job.backend, job.device), job.threads),
            start_new_session=True,  # Ctrl-C in a terminal signals the parent's group only: the parent decides
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(protocol.encode(job))
            proc.stdin.close()
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
            since, current = time.monotonic(), 0
            while True:
                wait = None if cell_timeout_s is None else max(0.0, since + cell_timeout_s - time.monotonic())
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    proc.kill()
                    yield Timeout(current, float(cell_timeout_s or 0.0))
                    break
                if line is _EOF:
                    break
                event = protocol.decode(line)
                if isinstance(event, (protocol.CellDone, protocol.CellSkipped)):
                    since, current = time.monotonic(), event.index + 1
                yield event
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    lines_ = [ln for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip() and not _TF_LOG.match(ln)]
    fatal = [ln for ln in lines_ if ln.startswith("Fatal Python error")]  # faulthandler's headline beats its module list
    last = (fatal or lines_)[-1][:200] if lines_ else ""
    yield Exited(rc, last)
