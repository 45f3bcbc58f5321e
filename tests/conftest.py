import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WORKER_MODELS = HERE / "worker_models"

# the machine-peak cache of the tests lives in a throwaway folder, never in the user's ~/.cache
os.environ.setdefault("KBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="kbench-test-cache-"))


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """One real, small run through the TensorFlow worker, shared by the tests that only read its output."""
    from kbench import api
    from kbench.timer import TimerConfig

    out = tmp_path_factory.mktemp("reports")
    timer = TimerConfig(budget_s=0.3, min_samples=3, target_ci=0.5, min_sample_s=0.001, warmup_s=0.005)
    plan = api.plan(["dense"], sizes={"batch": "1,2"}, timer=timer, command="kbench run --model dense --batch 1,2")
    events = []
    result = api.run(plan, out, on_event=events.append)
    return result, events, out


@pytest.fixture(scope="session")
def dense():
    from kbench.spec import load_model

    return load_model("dense")


@pytest.fixture(scope="session")
def dot():
    from kbench.spec import load_model

    return load_model("dot")


@pytest.fixture(scope="session")
def matmul():
    from kbench.spec import load_model

    return load_model("matmul")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """The real console entry point in a child process (what a user types)."""
    return subprocess.run(
        [sys.executable, "-m", "kbench", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
