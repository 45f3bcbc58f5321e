"""kbench.store.listing: run.json and the rows of a folder, never samples.csv; v1 folders migrated."""

import json
import re
from pathlib import Path

import pytest

from kbench.core.errors import SchemaError
from kbench.store import schema
from kbench.store.listing import read_listed
from kbench.store.results import RunWriter

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1-20261126-081219-dense-dot"


def test_a_v1_folder_is_read_and_migrated():
    listed = read_listed(GOLDEN)
    assert listed.source_version == 1 and listed.meta["run_id"] == "20261126-081219-dense-dot"
    assert listed.rows and all(r["n_processes"] == 1 for r in listed.rows)


def test_a_current_folder_without_samples_is_read(tmp_path):
    RunWriter(tmp_path / "r", {"run_id": "r"})
    (tmp_path / "r" / "samples.csv").unlink(missing_ok=True)
    listed = read_listed(tmp_path / "r")
    assert (listed.source_version, listed.rows, listed.meta["run_id"]) == (schema.SCHEMA_VERSION, (), "r")


@pytest.mark.parametrize("meta, message", [
    (None, "not a kbench run (no run.json)"),
    ("{not json", "run.json cannot be read"),
    (json.dumps({"schema_version": 99}), "newer than this kbench reads"),
    (json.dumps({"schema_version": "2"}), "is not one kbench wrote"),
])  # fmt: skip
def test_unreadable_folders_say_why_without_their_name(tmp_path, meta, message):
    run = tmp_path / "x"
    run.mkdir()
    if meta is not None:
        (run / "run.json").write_text(meta)
    with pytest.raises(SchemaError, match=re.escape(message)) as err:
        read_listed(run)
    assert str(run) not in str(err.value)
