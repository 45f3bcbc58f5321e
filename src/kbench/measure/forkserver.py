"""The fork server: ``python -m kbench.measure.forkserver`` imports Keras and its backend once, then forks one worker
process per :class:`kbench.measure.protocol.ForkRequest` read from stdin.

Importing TensorFlow takes 5 s on a fast machine and 13 s on a slow one, and a default run has three worker
processes per backend; paid once instead of three times, it is most of what keeps the default run inside a minute.
The server imports and does nothing else: no op runs, no graph is built and no thread pool is started before it
forks, so every worker starts its backend's runtime itself, as a spawned worker does (TensorFlow, JAX and PyTorch
all run correctly in a process forked after their import, and their parity is checked in every cell as always).

Each forked worker sends its stderr to its own log, reads nothing from stdin, and writes its events
(:mod:`kbench.measure.worker`'s :func:`serve`) to the server's stdout, which the parent reads. Workers run one at a
time: the server waits for each to exit and then writes :class:`kbench.measure.protocol.Reaped` with its exit code,
which ends that worker's stream. The server ignores SIGINT like a worker; the parent ends it by closing its stdin,
or with SIGTERM (a hung worker, Ctrl-C), on which it kills and reaps the running worker and exits.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
import traceback

from kbench.measure import worker


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    import_s = worker.timed_imports()
    from kbench.measure import protocol

    current: list[int] = []  # the forked worker running now, for the SIGTERM handler
    signal.signal(signal.SIGTERM, lambda *_: _stop(current))
    while line := sys.stdin.readline():
        request = protocol.decode_fork_request(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os._exit(_child(request, import_s))
        current[:] = [pid]
        _, status = os.waitpid(pid, 0)
        current.clear()
        sys.stdout.write(protocol.encode(protocol.Reaped(pid, os.waitstatus_to_exitcode(status))) + "\n")
        sys.stdout.flush()
    os._exit(0)  # no teardown: unloading TensorFlow's modules took 1.7 s, and nothing here needs it


def _stop(current: list[int]) -> None:
    """SIGTERM from the parent (a hang, Ctrl-C): kill the running worker and reap it, so none is left behind, then
    exit."""
    for pid in current:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    os._exit(143)


def _child(request, import_s: tuple[float, float]) -> int:
    """The forked worker: its own log as stderr, no stdin, the server's stdout as its protocol stream."""
    started = time.perf_counter() - max(time.monotonic() - request.sent_at, 0.0)
    proto = None
    try:
        log = os.open(request.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 2)
        os.close(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        proto = worker.protocol_stream()
        return worker.serve(request.job, worker.emitter(proto), started, import_s, fork_server=os.getppid())
    except BaseException:  # noqa: BLE001  (the worker's last words go to its log; the parent reads them)
        traceback.print_exc()
        return 1
    finally:
        if proto is not None:
            proto.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    main()
