"""The parent's side of the worker protocol: start ``python -m kbench.worker`` for one backend, stream its events.

The parent never imports the backend. ``KERAS_BACKEND`` is set in the child's environment, and TensorFlow's C++
log noise is turned down (``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it) and sent to a log file.

The worker's stdout is read on a thread, so the parent can notice a hang: when no cell finishes within
``cell_timeout_s`` (counted from the worker's start, then from the last finished or skipped cell), the worker is
killed and a ``timeout`` event says so. The worker ignores SIGINT: on Ctrl-C the parent decides, stops the worker
and keeps what was finished.
"""

from __future__ import annotations

import json
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

from kbench.errors import WorkerError
from kbench.plan import Plan

_EOF = object()
_TF_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")  # TF's C++ log noise


def worker_env(backend: str, device: str = "auto") -> dict[str, str]:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if device == "cpu":  # hide accelerators from every backend, so "cpu" cannot quietly mean a GPU
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    return env


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


def stream(plan: Plan, log_path: Path, cell_timeout_s: float | None = None) -> Iterator[dict]:
    """Yield the worker's events; on a hang a ``timeout`` event; then ``{"event": "exit", "returncode": rc, ...}``."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kbench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=worker_env(plan.backend, plan.device),
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(plan.to_json())
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
                    yield {"event": "timeout", "index": current, "after_s": cell_timeout_s}
                    break
                if line is _EOF:
                    break
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    raise WorkerError(f"the worker wrote a line that is not kbench's protocol: {line[:80]!r}") from None
                if event["event"] in ("cell", "skip"):
                    since, current = time.monotonic(), event["index"] + 1
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
    yield {"event": "exit", "returncode": rc, "stderr_tail": last}
