"""Worker faults and interruption, through a fault-injecting model file: nothing finished may be lost."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import WORKER_MODELS
from kbench import api
from kbench.measure.callpaths import DEFAULT_PATHS
from kbench.measure.callpaths import paths_for

PATHS = paths_for("tensorflow", DEFAULT_PATHS)  # what a default run measures
from kbench.store.results import load_run
from kbench.measure.timer import TimerConfig

FAST = TimerConfig(budget_s=0.2, min_samples=3, target_ci=0.5, min_sample_s=0.001, warmup_s=0.005)


def _faulty(fault: str, out, spawn: bool = False, **kw):
    plan = api.plan(["faulty"], sizes={"batch": "1,3"}, options={"fault": fault}, timer=FAST, processes=1,
                    models_dirs=[WORKER_MODELS], spawn=spawn)  # fmt: skip
    return api.run(plan, out, **kw)


@pytest.mark.parametrize("fault, words, spawn", [
    ("segfault", "was killed by SIGSEGV", False), ("exit", "exited with code 3", False),
    ("sigkill", "was killed by SIGKILL", False), ("segfault", "was killed by SIGSEGV", True),
])  # fmt: skip
def test_a_dying_worker_keeps_finished_cells_and_names_the_cause(fault, words, spawn, tmp_path):
    result = _faulty(fault, tmp_path, spawn)
    assert not result.ok and len(result.failures) == 1 and words in result.failures[0]
    saved = load_run(result.run_dir)
    assert saved.meta["status"] == "failed"
    assert set(saved.results["sizes"]) == {"batch=1 features=8"} and len(saved.results) == len(PATHS)
    assert saved.meta["failed_cells"] == [{"model": "faulty", "sizes": "batch=3 features=8", "backend": "tensorflow",
                                           "reason": result.meta["failed_cells"][0]["reason"], "process": 0}]  # fmt: skip
    assert words in saved.meta["failed_cells"][0]["reason"]
    if fault == "segfault":
        assert "Fatal Python error: Segmentation fault" in (result.run_dir / "worker-tensorflow.log").read_text()


def test_a_hung_worker_is_killed_after_the_cell_timeout(tmp_path):
    started = time.monotonic()
    result = _faulty("hang", tmp_path, cell_timeout_s=25)
    assert time.monotonic() - started < 120
    assert len(result.failures) == 1 and "hung: no cell finished within 25 s" in result.failures[0]
    saved = load_run(result.run_dir)
    assert set(saved.results["sizes"]) == {"batch=1 features=8"}
    assert saved.meta["failed_cells"][0]["sizes"] == "batch=3 features=8"


def test_cells_after_the_fault_are_recorded_as_not_run(tmp_path):
    plan = api.plan(["faulty"], sizes={"batch": "1,3,5"}, options={"fault": "exit"}, timer=FAST, processes=1,
                    models_dirs=[WORKER_MODELS])  # fmt: skip
    result = api.run(plan, tmp_path)
    failed = {f["sizes"]: f["reason"] for f in load_run(result.run_dir).meta["failed_cells"]}
    assert "exited with code 3" in failed["batch=3 features=8"]
    assert failed["batch=5 features=8"] == "not run: the tensorflow worker stopped before it"


@pytest.mark.parametrize("how, name, code", [("group-SIGINT", "Ctrl-C", 130), ("SIGTERM", "SIGTERM", 143)])
def test_an_interrupt_keeps_finished_cells_writes_a_partial_report_and_exits(how, name, code, tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group; a service manager sends SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kbench", "run", "--model", "faulty", "--batch", "1,3", "-o", "fault=hang",
         "--models-dir", str(WORKER_MODELS), "--quick", "--cell-budget", "0.2", "--processes", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("reports/*/run.json")):  # the first cell has finished
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)  # now inside the hanging second cell
    if how == "group-SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: every process in the group gets it
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    (run_dir,) = (tmp_path / "reports").iterdir()
    assert err.strip().splitlines()[-1] == (f"kbench: interrupted ({name}); 1 finished cell(s) kept in "
                                            f"reports/{run_dir.name} (report marked partial)")  # fmt: skip
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted"
    assert meta["failed_cells"] == [{"model": "faulty", "sizes": "batch=3 features=8", "backend": "tensorflow",
                                     "reason": f"not run: interrupted ({name})"}]  # fmt: skip
    html = (run_dir / "report.html").read_text()
    assert "did not finish (interrupted)" in html
    # the worker was stopped, not left behind
    with pytest.raises(ProcessLookupError):
        os.kill(meta["worker_pid"]["tensorflow"], 0)
