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
from typing import Any, Iterator

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
        proc = _start("kbench.measure.worker", job.backend, job.device, job.threads, log)
        try:
            assert proc.stdin is not None
            proc.stdin.write(protocol.encode(job))
            proc.stdin.close()
            lines = _read_lines(proc)
            for event in _events(lines, cell_timeout_s, protocol.WORKER_EVENTS):
                if isinstance(event, Timeout):
                    proc.kill()
                yield event
            rc = proc.wait()
        finally:
            _stop(proc)
    yield Exited(rc, last_words(log_path))


class ForkServer:
    """Worker processes forked from one that imported the backend once (:mod:`kbench.measure.forkserver`).

    One server per backend and ``--threads`` setting (its thread variables must be set before the import). It is
    started by the first :meth:`stream`, with that worker's log as its own, and again after a timeout killed it.
    Use it as a context manager: leaving it ends the server, or stops it and its running worker on an error or
    Ctrl-C."""

    def __init__(self, backend: str, device: str, threads: int | None) -> None:
        self.backend, self.device, self.threads = backend, device, threads
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.log_path: Path | None = None

    def __enter__(self) -> "ForkServer":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None and self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()  # the server exits when its stdin ends, its last worker reaped
            try:
                self.proc.wait(timeout=10)
                self.proc = None
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def stream(self, job: Job, log_path: Path, cell_timeout_s: float | None = None) -> Iterator[protocol.Event]:
        """Like :func:`stream`: the forked worker's events, a ``Timeout`` on a hang, last ``Exited``."""
        if self.proc is None:
            self._start(log_path)
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(protocol.encode(protocol.ForkRequest(job, str(log_path), time.monotonic())) + "\n")
            self.proc.stdin.flush()
        except OSError:  # the server is gone (it failed to import): its exit code and last words follow
            pass
        for event in _events(self.lines, cell_timeout_s, protocol.FORK_EVENTS):
            if isinstance(event, protocol.Reaped):
                yield Exited(event.returncode, last_words(log_path))
                return
            if isinstance(event, Timeout):
                self._kill()
            yield event
        server_log = self.log_path or log_path
        rc = self._kill()  # the server ended (or was killed) before its worker was reaped
        yield Exited(rc, last_words(log_path) or last_words(server_log))

    def _start(self, log_path: Path) -> None:
        log_path.write_text("")
        self.log_path = log_path
        with open(log_path, "a") as log:  # appending: the forked worker of this log appends to it too
            self.proc = _start("kbench.measure.forkserver", self.backend, self.device, self.threads, log)
        self.lines = _read_lines(self.proc)

    def _kill(self) -> int | None:
        """Stop a running server: SIGTERM, on which it kills and reaps its running worker and exits (waited for up to
        5 s), then SIGKILL to whatever is left of its process group. Return the server's exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is not None:
            return proc.returncode
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left in its group: the server, or a worker it forked just as SIGTERM came
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return proc.wait()


def _start(module: str, backend: str, device: str, threads: int | None, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=_with_threads(worker_env(backend, device), threads),
        start_new_session=True,  # Ctrl-C in a terminal signals the parent's group only: the parent decides
    )


def _read_lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's stdout, line by line, on a queue filled by a thread (so a hang can be timed out)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    return lines


def _events(lines: queue.Queue, cell_timeout_s: float | None, kinds: dict[str, type]) -> Iterator[Any]:
    """Decode lines until the stream ends; when no cell finishes within ``cell_timeout_s`` (counted from the start,
    then from the last finished or skipped cell), yield ``Timeout`` and stop (the caller kills the process)."""
    since, current = time.monotonic(), 0
    while True:
        wait = None if cell_timeout_s is None else max(0.0, since + cell_timeout_s - time.monotonic())
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            yield Timeout(current, float(cell_timeout_s or 0.0))
            return
        if line is _EOF:
            return
        event = protocol.decode(line, kinds)
        if isinstance(event, (protocol.CellDone, protocol.CellSkipped)):
            since, current = time.monotonic(), event.index + 1
        yield event
        if isinstance(event, protocol.Reaped):
            return


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def last_words(log_path: Path) -> str:
    """The log's last line that is not TensorFlow's C++ noise (a fatal error's headline first), at most 200 chars."""
    if not Path(log_path).exists():
        return ""
    lines_ = [ln for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip() and not _TF_LOG.match(ln)]
    fatal = [ln for ln in lines_ if ln.startswith("Fatal Python error")]  # faulthandler's headline beats its module list
    return (fatal or lines_)[-1][:200] if lines_ else ""
