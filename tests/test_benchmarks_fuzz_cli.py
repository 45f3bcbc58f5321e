"""benchmarks/fuzz_cli.py without Keras or the CLI: how an outcome is judged, how deep nesting is written, and that a
file's mutations are a function of (seed, index) alone, on a hand-written base model."""

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("fuzz_cli", ROOT / "benchmarks" / "fuzz_cli.py")
fz = sys.modules.setdefault("fuzz_cli", importlib.util.module_from_spec(SPEC))  # dataclasses look it up there
SPEC.loader.exec_module(fz)

REFUSED = "kbench: error: m.keras: config.json is damaged\n"


@pytest.mark.parametrize("code,out,err,finding", [
    (0, "table", "", ""),
    (2, "", REFUSED, ""),
    (1, "kbench: parity FAILED: call at batch=1", "", ""),
    (None, "", "", "over the time cap"),
    (1, "", "Traceback (most recent call last):\n  ...\nValueError: x\n", "a traceback"),
    (2, "", REFUSED + "and a second line\n", "exit 2 with 2 error lines"),
    (2, "", "ValueError: x\n", "exit 2 with 1 error lines"),
    (1, "kbench: worker failure: tensorflow: ValueError", "", "a worker failure"),
    (1, "table", "", "exit 1 without a parity failure"),
    (0, "\x1b[31mred", "", "a raw escape character"),
    (139, "", "", "exit 139"),
    (0, "table", "a warning\n", "exit 0 with 1 error line(s)"),
])  # fmt: skip
def test_judge(code, out, err, finding):
    assert fz.judge(code, out, err).startswith(finding) and bool(fz.judge(code, out, err)) == bool(finding)


def test_deep_nesting_is_written_into_the_json_text_not_built():
    text = fz._deep_json(json.dumps({"a": fz._nested(10_000, "list"), "b": fz._nested(3, "dict")}))
    assert text.startswith('{"a": ' + "[" * 10_000 + "1" + "]" * 10_000)
    assert text.endswith('"b": {"k": {"k": {"k": 1}}}}')


def test_a_file_is_a_function_of_the_seed_and_its_index(tmp_path, monkeypatch):
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "config": {"name": "x", "batch_shape": [None, 4]}},
              {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": 3}}]  # fmt: skip
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": layers}}
    base = {"config.json": json.dumps(config).encode(), "metadata.json": b"{}", "model.weights.h5": b"h5"}
    monkeypatch.setattr(fz, "BASE_FILES", {name: base for name in fz.BASES})
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = ([fz.make_mutant(i, 3, tmp_path / d) for i in range(40)] for d in "ab")
    assert [m.mutations for m in first] == [m.mutations for m in second]
    assert [m.path.read_bytes() for m in first] == [m.path.read_bytes() for m in second]
    assert len({m.mutations for m in first}) > 30  # and they differ from file to file
    with zipfile.ZipFile(first[0].path) as z:
        assert "config.json" in z.namelist()
