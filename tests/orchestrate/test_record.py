"""run.json's content: the start of a run, what the workers report, and the one function that assembles them."""

from __future__ import annotations

from kbench.measure.protocol import Cell
from kbench.orchestrate.record import CellFailure, RunRecord, RunStart, WorkerSkip, run_json

CELL = Cell("dense", "dense.py", (("batch", 1),), (), "float32")


def _start(shard: dict | None = None) -> RunStart:
    return RunStart(command="kbench run --model dense", started="2026-01-01T00:00:00", backends=("tensorflow", "jax"),
                    mode="run", processes=2, plan={"paths": ["numpy"]}, host={"cpu": "x"},
                    models={"dense": {"summary": "s", "file": "dense.py"}}, machine=("machine check: ok",),
                    skipped=({"model": "dense", "sizes": "batch=9", "reason": "too big"},), shard=shard)  # fmt: skip


def test_the_start_alone_in_run_json_order():
    meta = _start().to_json()
    assert list(meta) == ["command", "started", "backend", "backends", "mode", "processes", "plan", "env", "models",
                          "machine", "machine_findings", "peak", "skipped", "failed_cells",
                          "unavailable_paths"]  # fmt: skip
    assert meta["backend"] == "tensorflow,jax" and meta["backends"] == ["tensorflow", "jax"]
    assert meta["env"] == {"host": {"cpu": "x"}} and meta["machine"] == ["machine check: ok"]
    assert "shard" in _start({"index": 1}).to_json()


def test_a_runtime_that_could_not_take_a_cell_is_recorded_once_after_the_missing_ones():
    start = RunStart(**{**_start().__dict__, "unavailable": ({"path": "openvino", "reason": "not installed"},)})
    record = RunRecord()
    for _ in range(2):  # two processes saw the same failed export
        record.path_unavailable("tensorflow", CELL, "litert", "load failed: RuntimeError: no such op")
    got = run_json(start, record)["unavailable_paths"]
    assert got == [{"path": "openvino", "reason": "not installed"},
                   {"path": "litert", "reason": "load failed: RuntimeError: no such op", "backend": "tensorflow",
                    "model": "dense", "sizes": "batch=1"}]  # fmt: skip


def test_per_process_figures_and_their_medians():
    record = RunRecord()
    record.worker_started("tensorflow", {"keras": "3"}, 11, 0.1, 3.0)
    record.worker_started("tensorflow", {"keras": "other"}, 12, 0.3, 5.0)
    record.worker_started("tensorflow", {"keras": "other"}, 13, 0.2, 1.0)
    record.runtime_started("tensorflow", 0.5)
    record.runtime_started("tensorflow", 0.7)
    assert record.backend_env == {"tensorflow": {"keras": "3"}}  # the first process's
    assert record.worker_pid == {"tensorflow": 13}  # the latest process's
    assert record.imports == {"tensorflow": {"numpy": 0.2, "backend": 3.0}}
    assert record.runtime_init_s == {"tensorflow": 0.6}
    assert len(record.imports_per_process["tensorflow"]) == 3


def test_run_json_assembles_start_and_record_in_the_order_run_json_had():
    record = RunRecord()
    assert "imports_per_process" not in run_json(_start(), record)  # no worker has started yet
    record.worker_started("tensorflow", {"keras": "3"}, 11, 0.1, 3.0)
    record.runtime_started("tensorflow", 0.5)
    record.skipped.append(WorkerSkip("dense", "batch=2", "tensorflow", 0, "budget spent"))
    record.fail_cells("jax", [CELL], "not run: interrupted (Ctrl-C)")
    record.fail_cells("tensorflow", [CELL], "hung", process=1)
    record.failures.append("tensorflow: dense batch=1: hung")
    running = run_json(_start({"index": 1}), record)
    assert list(running)[-9:] == ["skipped", "failed_cells", "unavailable_paths", "shard", "imports",
                                  "runtime_init_s", "worker_pid", "imports_per_process",
                                  "runtime_init_s_per_process"]  # fmt: skip
    assert "status" not in running and "failures" not in running
    assert running["env"] == {"host": {"cpu": "x"}, "backends": {"tensorflow": {"keras": "3"}}}
    assert running["skipped"][1] == {"model": "dense", "sizes": "batch=2", "backend": "tensorflow", "process": 0,
                                     "reason": "budget spent"}  # fmt: skip
    assert running["failed_cells"] == [
        {"model": "dense", "sizes": "batch=1", "backend": "jax", "reason": "not run: interrupted (Ctrl-C)"},
        {"model": "dense", "sizes": "batch=1", "backend": "tensorflow", "reason": "hung", "process": 1},
    ]
    ended = run_json(_start(), record, "failed")
    assert list(ended)[-2:] == ["status", "failures"] and ended["failures"] == ["tensorflow: dense batch=1: hung"]


def test_a_failed_cell_is_found_by_backend_model_and_sizes():
    record = RunRecord()
    record.fail_cells("jax", [CELL], "x")
    assert record.failed("jax", CELL) and not record.failed("tensorflow", CELL)
    assert record.failed_cells == [CellFailure("dense", "batch=1", "jax", "x")]
