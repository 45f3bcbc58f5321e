"""Rules of the test suite itself: in CI no test may be skipped (a missing browser, JAX or torch must fail there)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _pytest(folder: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          capture_output=True, text=True, env=env, cwd=folder, timeout=120)  # fmt: skip


def test_a_skip_fails_in_ci_and_only_there(tmp_path):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_needs_a_browser.py").write_text(
        "import pytest\n\ndef test_browser():\n    pytest.skip('no chromium here')\n\ndef test_plain():\n    assert 1 + 1 == 2\n"
    )
    local = _pytest(tmp_path, ci=False)
    assert local.returncode == 0, local.stdout
    assert "1 passed, 1 skipped" in local.stdout
    ci = _pytest(tmp_path, ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "1 failed, 1 passed" in ci.stdout and "skipped in CI, where every test must run: Skipped: no chromium here" in ci.stdout
