"""The worker protocol: every message survives the JSON round trip, and a missing field is refused, never guessed."""

import dataclasses
import json
import math

import pytest

from kbench.core import errors
from kbench.core.errors import WorkerError
from kbench.measure import protocol
from kbench.measure.parity import ParityResult
from kbench.measure.protocol import Cell
from kbench.measure.protocol import (CellDone, CellSkipped, Done, Exited, Failed, Imported, Job, PathResult, Phase,
                             RuntimeInit, Timeout)  # fmt: skip
from kbench.measure.timer import TimerConfig

NAN = float("nan")
PARITY = ParityResult("call", True, 2.2e-5, 1e-7, 3e-8, 2e-7, "")
RESULT = PathResult("call", 2, 0.012, 0.034, PARITY, "cpu", "host", "float32", (5.1e-4, 5.0e-4, 5.3e-4), 8, "ci",
                    2.1e-8, 4.9e-8, 1, 0.02, 33)  # fmt: skip
EXAMPLES = [
    Imported(0.05, 2.8, {"keras": "3.15", "backend": "tensorflow", "blas": [{"version": "0.3"}]}, 1234),
    Imported(0.05, 2.8, {"backend": "tensorflow"}, 1235, fork_server=1200),
    RuntimeInit(0.28),
    Phase(1, "cold start: call"),
    CellDone(0, (RESULT, PathResult("numpy", 0, None, 2e-4, ParityResult("numpy", True, 2e-5, 0.0, 0.0, 0.0), "cpu",
                                    "host", "float32")), ("numpy", "call"),
             (protocol.Reference("kernel", (1e-4, 1.1e-4), 8), protocol.Reference("to_numpy", (), 0))),  # fmt: skip
    CellSkipped(3, "predicted to need at least 9.1 s"),
    Failed(2, "ModelShapeError", "model 'x': shapes differ", 2),
    Failed(0, "RuntimeError", "RuntimeError: boom", 1, "Traceback ...\n  line 1"),
    Done(),
    Timeout(1, 20.0),
    Exited(-11, "Fatal Python error: Segmentation fault"),
    protocol.Reaped(1235, -9),
]
KINDS = {**protocol.FORK_EVENTS, **protocol.PARENT_EVENTS}

# The documented fields of each message. Removing (or renaming) a field must break this test: the other side of the
# process boundary would otherwise read a default or crash on a key error.
FIELDS = {
    "Job": ["cells", "paths", "backend", "seed", "timer", "mode", "device", "precision", "resident", "run_budget_s",
            "process", "processes", "gaps", "threads", "latency_s", "rate",
            "time_goal_s", "extras_first_only", "cell_overhead_s", "group"],
    "PathResult": ["path", "order", "build_s", "first_call_s", "parity", "device", "placement", "precision", "samples",
                   "loops", "stop_reason", "loop_overhead_s", "fixed_overhead_s", "switch_warmup_calls", "retrace_s",
                   "retrace_batch", "latency", "latency_note", "arrivals", "mem_rss_growth_b", "mem_py_peak_b", "mem_device_peak_b",
                   "export_s", "load_s", "runtime", "exporter", "runtime_options", "others_cpu", "shared"],
    "Imported": ["numpy_import_s", "backend_import_s", "env", "pid", "fork_server"],
    "RuntimeInit": ["runtime_init_s"],
    "Phase": ["index", "phase"],
    "CellDone": ["index", "paths", "cold_order", "references", "budget_s", "overhead_s", "blas_threads",
                 "unavailable"],
    "Reference": ["name", "samples", "loops"],
    "CellSkipped": ["index", "reason"],
    "Failed": ["index", "kind", "message", "exit_code", "traceback"],
    "Done": [],
    "Timeout": ["index", "after_s"],
    "Exited": ["returncode", "stderr_tail"],
    "Reaped": ["pid", "returncode"],
    "ForkRequest": ["job", "log", "sent_at"],
}  # fmt: skip


def _same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN (parity errors are NaN for transfers)."""
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_every_message_has_its_documented_fields():
    classes = {"Job": Job, "PathResult": PathResult, "Reference": protocol.Reference, "ForkRequest": protocol.ForkRequest,
               **KINDS}
    assert set(classes) == set(FIELDS)
    for name, cls in classes.items():
        assert [f.name for f in dataclasses.fields(cls)] == FIELDS[name], name


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event):
    line = protocol.encode(event)
    assert "\n" not in line
    back = protocol.decode(line, KINDS)
    assert _same(back, event)


def test_nan_and_inf_survive_strict_json():
    p = ParityResult("h2d", True, 1e-5, NAN, NAN, math.inf, "transfer: no parity")
    event = CellDone(0, (dataclasses.replace(RESULT, parity=p, retrace_s=None),), ("h2d",))
    line = protocol.encode(event)
    json.loads(line)  # strict JSON: no bare NaN
    back = protocol.decode(line)
    assert math.isnan(back.paths[0].parity.max_abs_err) and back.paths[0].parity.twin_max_abs_err == math.inf
    assert back.paths[0].retrace_s is None


@pytest.mark.parametrize("event", [e for e in EXAMPLES if dataclasses.fields(e)], ids=lambda e: type(e).__name__)
def test_a_missing_field_is_refused_naming_it(event):
    for f in dataclasses.fields(event):
        data = json.loads(protocol.encode(event))
        del data[f.name]
        with pytest.raises(errors.WorkerError, match=f"lacks the field '{f.name}'"):
            protocol.decode(json.dumps(data), KINDS)


def test_a_missing_nested_field_is_refused():
    data = json.loads(protocol.encode(next(e for e in EXAMPLES if isinstance(e, CellDone))))
    del data["paths"][0]["parity"]["tol"]
    with pytest.raises(errors.WorkerError, match="ParityResult lacks the field 'tol'"):
        protocol.decode(json.dumps(data))


@pytest.mark.parametrize("line, words", [("not json", "not kbench's protocol"), ('{"event": "Nope"}', "unknown event"),
                                         ('{"index": 1}', "unknown event"), ("[1, 2]", "unknown event")])
def test_foreign_lines_are_refused(line, words):
    with pytest.raises(errors.WorkerError, match=words):
        protocol.decode(line)


def test_parent_events_are_not_accepted_from_the_worker():
    with pytest.raises(errors.WorkerError, match="unknown event 'Exited'"):
        protocol.decode(protocol.encode(Exited(0, "")))


def test_a_job_round_trips_with_its_cells_and_timer():
    cell = Cell("dense", "/models/dense.py", (("batch", 32), ("features", 128)), (("activation", "relu"),), "float32")
    job = Job((cell,), ("numpy", "call"), "jax", 7, TimerConfig(budget_s=1.5), "run", "cpu", "highest", None, 12.5, 1, 3)
    back = protocol.decode_job(protocol.encode(job))
    assert back == job
    assert back.cells[0].sizes_dict == {"batch": 32, "features": 128}


def test_a_fork_request_round_trips_and_a_worker_event_list_refuses_the_servers_event():
    cell = Cell("dense", "/models/dense.py", (("batch", 1),), (), "float32")
    job = Job((cell,), ("numpy",), "tensorflow", 0, TimerConfig(), extras_first_only=True, cell_overhead_s=2.5)
    request = protocol.ForkRequest(job, "/tmp/worker-tensorflow-2.log", 1234.5)
    assert protocol.decode_fork_request(protocol.encode(request)) == request
    with pytest.raises(WorkerError, match="unknown event 'Reaped'"):  # a spawned worker's stream never carries it
        protocol.decode(protocol.encode(protocol.Reaped(1, 0)))


def test_only_process_0_runs_the_extras_under_extras_first_only_and_it_takes_all_the_single_calls():
    cell = Cell("dense", "/models/dense.py", (("batch", 1),), (), "float32")
    jobs = [Job((cell,), ("numpy",), "tensorflow", 0, TimerConfig(), process=k, processes=3, extras_first_only=True)
            for k in range(3)]  # fmt: skip
    assert [j.runs_extras for j in jobs] == [True, False, False] and {j.latency_processes for j in jobs} == {1}
    spread = Job((cell,), ("numpy",), "tensorflow", 0, TimerConfig(), process=2, processes=3)
    assert spread.runs_extras and spread.latency_processes == 3


def test_errors_cross_as_data_and_come_back_typed():
    usage = Failed(0, "ModelShapeError", "shapes differ", 2)
    assert type(errors.from_data(usage.kind, usage.message, usage.exit_code)) is errors.ModelShapeError
    assert usage.user
    unknown = errors.from_data("SomethingNew", "a new kind of bad input", 2)
    assert type(unknown) is errors.UsageError and unknown.exit_code == 2
    failure = errors.from_data("RuntimeError", "boom", 1)
    assert isinstance(failure, errors.WorkerError) and failure.exit_code == 1
    # a known name with the wrong exit code is not trusted blindly
    assert type(errors.from_data("ModelShapeError", "x", 1)) is errors.WorkerError
