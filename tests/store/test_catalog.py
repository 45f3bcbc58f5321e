"""The run catalog: resolving a run reference (a folder, an id, ``latest``, ``previous``) and listing a reports
folder's run folders."""

import os
import time

import pytest

from kbench.core.errors import RunNotFoundError
from kbench.store import catalog
from kbench.store.results import RunWriter


def test_resolve_run_by_folder_id_and_latest(tmp_path):
    for name in ("a", "b"):
        RunWriter(tmp_path / name, {"run_id": name})
    assert catalog.resolve_run(tmp_path / "a") == tmp_path / "a"
    assert catalog.resolve_run("a", tmp_path) == tmp_path / "a"
    assert catalog.resolve_run("latest", tmp_path) == tmp_path / "b"


@pytest.mark.parametrize("ref", ["missing", "notarun"])
def test_resolve_run_errors_are_one_line(tmp_path, ref):
    (tmp_path / "notarun").mkdir()
    with pytest.raises(RunNotFoundError) as err:
        catalog.resolve_run(ref, tmp_path)
    assert "\n" not in str(err.value)
    assert ("not a kbench run" in str(err.value)) == (ref == "notarun")


def test_latest_with_no_runs(tmp_path):
    with pytest.raises(RunNotFoundError, match="no runs"):
        catalog.resolve_run("latest", tmp_path)


def test_previous_is_the_run_before_latest_by_the_mtime_of_run_json(tmp_path):
    for name in ("old", "new"):
        RunWriter(tmp_path / name, {"run_id": name})
    os.utime(tmp_path / "new" / "run.json", (time.time() + 100, time.time() + 100))
    assert catalog.runs_by_age(tmp_path) == [tmp_path / "old", tmp_path / "new"]
    assert catalog.resolve_run("previous", tmp_path) == tmp_path / "old"
    assert catalog.resolve_run("latest", tmp_path) == tmp_path / "new"


def test_previous_needs_two_runs(tmp_path):
    RunWriter(tmp_path / "only", {"run_id": "only"})
    with pytest.raises(RunNotFoundError, match="`previous` needs two runs .* found 1"):
        catalog.resolve_run("previous", tmp_path)


def test_run_folders_lists_visible_folders_by_name_and_refuses_a_missing_reports_folder(tmp_path):
    for name in ("b", "a", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert catalog.run_folders(tmp_path) == (tmp_path / "a", tmp_path / "b")
    with pytest.raises(catalog.NoRunsError, match="no folder"):
        catalog.run_folders(tmp_path / "none")
