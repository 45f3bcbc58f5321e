"""``kbench new-model``: the scaffold loads, computes, and passes a real parity run as written; refusals are one
line and exit code 2."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import run_cli
from kbench.measure import parity
from kbench.cli.app import app
from kbench.model.scaffold import ScaffoldError, new_model, render
from kbench.model.loader import load_model
from kbench.model.weights import make_inputs, make_weights

runner = CliRunner()


def test_scaffold_is_a_valid_model_whose_twin_flops_and_reduction_work(tmp_path):
    made = new_model("mymodel", tmp_path / "models_user")
    assert made.path == tmp_path / "models_user" / "mymodel.py" and not made.overwrote
    spec = load_model("mymodel", (tmp_path / "models_user",))
    assert spec.name == "mymodel" and spec.sweep
    sizes = {"batch": 3, "features": 5, "units": 2}
    w, x = make_weights(spec, sizes, "float64", 0), make_inputs(spec, sizes, "float64", 0)
    np.testing.assert_allclose(spec.forward(w, x), np.einsum("bf,fu->bu", x["x"], w["kernel"]) + w["bias"])
    assert spec.output_shape(sizes) == (3, 2)
    assert spec.flops(sizes) == 2 * 3 * 5 * 2 + 3 * 2 and spec.reduction(sizes) == 5
    assert parity.magnitude(spec, w, x, {}).shape == (3, 2)


def test_scaffold_text_is_marked_for_editing_and_holds_no_absolute_path(tmp_path):
    text = new_model("m2", tmp_path).path.read_text()
    assert text == render("m2")
    assert [f"EDIT {i}" in text for i in range(1, 5)] == [True] * 4
    assert str(tmp_path) not in text and "import keras" not in text


def test_cli_creates_the_file_in_models_user_by_default(tmp_path):
    proc = run_cli("new-model", "mymodel", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "models_user" / "mymodel.py").is_file()
    assert "kbench parity --model mymodel --models-dir models_user" in proc.stdout


@pytest.mark.parametrize("name, needle", [
    ("1model", "model name '1model' is not usable"),
    ("my-model", "model name 'my-model' is not usable"),
    ("_hidden", "model name '_hidden' is not usable"),
    ("class", "model name 'class' is not usable"),
    ("dense", "'dense' is a built-in model"),
    ("attention", "'attention' is a built-in model"),
])  # fmt: skip
def test_cli_refuses_bad_names_in_one_line(tmp_path, name, needle):
    result = runner.invoke(app, ["new-model", name, "--dir", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_existing_file_is_refused_unless_force(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("# my work\n")
    result = runner.invoke(app, ["new-model", "mine", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "already exists" in result.stderr and "--force" in result.stderr
    assert path.read_text() == "# my work\n"
    result = runner.invoke(app, ["new-model", "mine", "--dir", str(tmp_path), "--force"])
    assert result.exit_code == 0 and result.stdout.startswith("overwrote") and path.read_text() == render("mine")


def test_force_shadows_a_builtin_on_purpose(tmp_path):
    made = new_model("dense", tmp_path, force=True)
    assert load_model("dense", (tmp_path,)).source == str(made.path.resolve())


@pytest.mark.parametrize("make_dir, needle", [
    (lambda p: (p / "f").write_text("x") and p / "f", "is a file, not a folder"),
    (lambda p: (p / "f").write_text("x") and p / "f" / "sub", "cannot be created"),
])  # fmt: skip
def test_unusable_folder_is_refused(tmp_path, make_dir, needle):
    folder = make_dir(tmp_path)
    with pytest.raises(ScaffoldError, match=needle):
        new_model("ok", folder)
    result = runner.invoke(app, ["new-model", "ok", "--dir", str(folder)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_scaffold_passes_parity_right_after_creation(tmp_path):
    """One real worker run per installed backend, through the command a user types."""
    assert run_cli("new-model", "mymodel", cwd=tmp_path).returncode == 0
    backends = ",".join(b for b in ("tensorflow", "jax", "torch") if b == "tensorflow" or importlib.util.find_spec(b))
    proc = run_cli("parity", "--model", "mymodel", "--models-dir", "models_user", "--backend", backends,
                   "--batch", "1,8", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "✓" in proc.stdout and "✗" not in proc.stdout
    assert proc.stdout.count("mymodel ·") == 2 * len(backends.split(","))
