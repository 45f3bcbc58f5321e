"""The parent's side of the worker protocol: start ``python -m kbench.worker`` for one backend, stream its events.

The parent never imports the backend. ``KERAS_BACKEND`` is set in the child's environment, and TensorFlow's C++
log noise is turned down (``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it) and sent to a log file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from kbench.errors import WorkerError
from kbench.plan import Plan


def worker_env(backend: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def stream(plan: Plan, log_path: Path) -> Iterator[dict]:
    """Yield the worker's events, then one final ``{"event": "exit", "returncode": rc, "stderr_tail": ...}``."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kbench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=worker_env(plan.backend),
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(plan.to_json())
            proc.stdin.close()
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    raise WorkerError(f"the worker wrote a line that is not kbench's protocol: {line[:80]!r}") from None
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
    tail = [ln for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip()][-1:]
    yield {"event": "exit", "returncode": rc, "stderr_tail": tail[0] if tail else ""}
