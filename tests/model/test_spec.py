"""Model specifications: loading built-in and user model files, validation, lookup by name."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest

from kbench.core.errors import ModelLoadError, ModelsDirError, UnknownModelError, UsageError
from kbench.model.loader import (
    available_models,
    builtin_models_dir,
    find_model,
    load_model,
    load_model_file,
    model_dirs,
)
from kbench.model.spec import INITS, ModelSpec, Tensor, validate_spec

BUILTINS = ("dense", "dot", "matmul")


def assert_one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    assert text.strip(), "empty error message"
    return text


# A minimal valid model file; each keyword can be replaced by a test to plant one fault.
DEFAULTS = {
    "name": None,  # the file stem unless a test says otherwise
    "sizes": '{"batch": (1, 4), "features": (3,)}',
    "inputs": '(Tensor("x", ("batch", "features")),)',
    "weights": '(Tensor("w", ("features", 2), init="glorot_uniform"),)',
    "output": '("batch", 2)',
    "options": '{"flag": (False, True)}',
}


def model_source(stem: str, **overrides: str) -> str:
    fields = {**DEFAULTS, **overrides}
    name = fields["name"] if fields["name"] is not None else repr(stem)
    return textwrap.dedent(
        f"""
        from kbench.model.spec import ModelSpec, Tensor

        MODEL = ModelSpec(
            name={name},
            summary="test model",
            sizes={fields["sizes"]},
            inputs={fields["inputs"]},
            weights={fields["weights"]},
            output={fields["output"]},
            options={fields["options"]},
            build_keras=lambda keras, w, sizes, dtype, **o: None,
            forward=lambda w, inputs, **o: inputs["x"] @ w["w"],
            flops=lambda s: 2 * s["batch"] * s["features"] * 2,
            reduction=lambda s: s["features"],
        )
        """
    )


def write_model(folder: Path, stem: str, source: str | None = None, **overrides: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(model_source(stem, **overrides) if source is None else textwrap.dedent(source))
    return path


def make_spec(**overrides) -> ModelSpec:
    fields = dict(
        name="m",
        summary="s",
        sizes={"batch": (1,), "features": (3,)},
        inputs=(Tensor("x", ("batch", "features")),),
        weights=(Tensor("w", ("features", 2)),),
        output=("batch", 2),
        build_keras=lambda *a, **k: None,
        forward=lambda w, inputs, **o: inputs["x"] @ w["w"],
        flops=lambda s: 1,
        reduction=lambda s: s["features"],
    )
    fields.update(overrides)
    return ModelSpec(**fields)


# ---------------------------------------------------------------------------------------------- built-in models


def test_builtin_models_dir_exists_and_has_dense():
    d = builtin_models_dir()
    assert d.is_dir()
    assert (d / "dense.py").is_file()
    for name in BUILTINS:
        assert (d / f"{name}.py").is_file()


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_model_loads_by_name(name):
    spec = load_model(name)
    assert isinstance(spec, ModelSpec)
    assert spec.name == name
    assert spec.summary
    assert spec.inputs and all(isinstance(t, Tensor) for t in spec.inputs)
    assert all(isinstance(t, Tensor) for t in spec.weights)
    assert all(t.init in INITS for t in (*spec.inputs, *spec.weights))
    assert Path(spec.source) == builtin_models_dir().resolve() / f"{name}.py"
    for fn in (spec.build_keras, spec.forward, spec.flops, spec.reduction):
        assert callable(fn)
    for values in spec.sizes.values():
        assert isinstance(values, tuple) and values and all(isinstance(v, int) and v > 0 for v in values)


def test_dense_fields():
    spec = load_model("dense")
    assert dict(spec.sizes) == {"batch": (1, 32, 1024), "features": (128,), "units": (128,)}
    assert dict(spec.options) == {"activation": ("linear", "relu")}
    assert spec.default_options == {"activation": "linear"}
    assert [t.name for t in spec.inputs] == ["x"]
    assert [t.name for t in spec.weights] == ["kernel", "bias"]
    assert spec.weights[0].init == "glorot_uniform"
    assert spec.has_batch
    sizes = {"batch": 2, "features": 5, "units": 3}
    assert spec.output_shape(sizes) == (2, 3)
    assert spec.flops(sizes) == 2 * 2 * 5 * 3 + 2 * 3
    assert spec.reduction(sizes) == 5


def test_dot_and_matmul_fields():
    dot = load_model("dot")
    assert dot.default_options == {"normalize": False}
    assert dot.options["normalize"] == (False, True)
    assert dot.weights == ()
    assert dot.output_shape({"batch": 7, "features": 3}) == (7, 1)
    mm = load_model("matmul")
    assert not mm.has_batch
    assert dict(mm.options) == {} and mm.default_options == {}
    assert mm.output_shape({"n": 4}) == (4, 4)
    assert mm.flops({"n": 10}) == 2000
    assert mm.reduction({"n": 10}) == 10


def test_load_model_file_leaves_no_module_behind(tmp_path):
    path = write_model(tmp_path, "clean")
    before = set(sys.modules)
    spec = load_model_file(path)
    assert spec.source == str(path.resolve())
    assert not {m for m in set(sys.modules) - before if m.startswith("kbench_user_model_")}


def test_source_given_in_file_is_kept(tmp_path):
    src = model_source("withsrc").replace('summary="test model",', 'summary="t", source="somewhere",')
    spec = load_model_file(write_model(tmp_path, "withsrc", source=src))
    assert spec.source == "somewhere"


# ---------------------------------------------------------------------------------------------- find_model


def test_find_model_unknown_suggests_close_name():
    with pytest.raises(UnknownModelError) as ei:
        find_model("dens", model_dirs())
    msg = assert_one_line(ei.value)
    assert "'dens'" in msg
    assert "did you mean 'dense'" in msg
    assert "known models:" in msg and "matmul" in msg
    assert isinstance(ei.value, UsageError) and ei.value.exit_code == 2


def test_load_model_unknown_raises_unknown_model_error():
    with pytest.raises(UnknownModelError) as ei:
        load_model("matmull")
    assert "did you mean 'matmul'" in assert_one_line(ei.value)


def test_find_model_unknown_without_close_name_has_no_hint():
    with pytest.raises(UnknownModelError) as ei:
        find_model("zzzzzzzz", model_dirs())
    msg = assert_one_line(ei.value)
    assert "did you mean" not in msg
    assert "dense" in msg  # still lists the known models


def test_find_model_with_no_models_at_all(tmp_path):
    with pytest.raises(UnknownModelError) as ei:
        find_model("dense", (tmp_path,))
    assert "known models: none" in assert_one_line(ei.value)


# ---------------------------------------------------------------------------------------------- broken model files


def _load_error(path: Path) -> str:
    with pytest.raises(ModelLoadError) as ei:
        load_model_file(path)
    msg = assert_one_line(ei.value)
    assert str(path.resolve()) in msg, f"message does not name the file: {msg}"
    return msg


def test_syntax_error_file(tmp_path):
    path = write_model(tmp_path, "broken", source="MODEL = ModelSpec(\n    name='broken',\n  )) oops\n")
    msg = _load_error(path)
    assert "SyntaxError" in msg


def test_file_raising_at_import(tmp_path):
    path = write_model(tmp_path, "boom", source='raise RuntimeError("first line\\nsecond line")\n')
    msg = _load_error(path)
    assert "RuntimeError" in msg
    assert "first line second line" in msg  # the multi-line message is collapsed


def test_file_calling_sys_exit_at_import(tmp_path):
    path = write_model(tmp_path, "quitter", source="import sys\nsys.exit(3)\n")
    assert "SystemExit" in _load_error(path)


def test_file_importing_missing_module(tmp_path):
    path = write_model(tmp_path, "missingdep", source="import kbench_no_such_module_xyz\n")
    assert "ModuleNotFoundError" in _load_error(path)


def test_file_without_model(tmp_path):
    path = write_model(tmp_path, "nomodel", source="X = 1\n")
    assert "defines no MODEL" in _load_error(path)


def test_model_of_wrong_type(tmp_path):
    path = write_model(tmp_path, "wrongtype", source="MODEL = {'name': 'wrongtype'}\n")
    assert "ModelSpec" in _load_error(path)


def test_model_name_differs_from_file_stem(tmp_path):
    path = write_model(tmp_path, "stem", name='"other"')
    msg = _load_error(path)
    assert "'other'" in msg and "stem.py" in msg


@pytest.mark.parametrize(
    "field, value",
    [
        ("inputs", '(Tensor("x", ("batch", "feature")),)'),  # typo in an input shape
        ("weights", '(Tensor("w", ("features", "units")),)'),  # weight names an undeclared size
        ("output", '("batch", "units")'),  # output names an undeclared size
    ],
)
def test_shape_names_undeclared_size(tmp_path, field, value):
    path = write_model(tmp_path, "undeclared", **{field: value})
    msg = _load_error(path)
    assert "does not declare" in msg


def test_bad_init(tmp_path):
    path = write_model(tmp_path, "badinit", weights='(Tensor("w", ("features", 2), init="he_normal"),)')
    msg = _load_error(path)
    assert "'he_normal'" in msg and "glorot_uniform" in msg


def test_duplicate_tensor_names(tmp_path):
    path = write_model(tmp_path, "dupes", weights='(Tensor("x", ("features", 2)),)')
    msg = _load_error(path)
    assert "unique" in msg


def test_empty_inputs(tmp_path):
    path = write_model(tmp_path, "noinputs", inputs="()")
    assert "inputs is empty" in _load_error(path)


@pytest.mark.parametrize("sizes", ['{"batch": (), "features": (3,)}', '{"batch": (0,), "features": (3,)}',
                                   '{"batch": (-1,), "features": (3,)}', '{"batch": (True,), "features": (3,)}',
                                   '{"batch": (1.5,), "features": (3,)}'])
def test_bad_size_defaults(tmp_path, sizes):
    path = write_model(tmp_path, "badsizes", sizes=sizes)
    assert "positive int" in _load_error(path)


def test_option_without_values(tmp_path):
    path = write_model(tmp_path, "emptyopt", options='{"flag": ()}')
    assert "no allowed values" in _load_error(path)


def test_non_python_file_cannot_be_imported(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("MODEL = None\n")
    _load_error(path)


# ---------------------------------------------------------------------------------------------- validate_spec directly


def test_validate_spec_accepts_a_good_spec(tmp_path):
    spec = make_spec()
    assert validate_spec(spec, tmp_path / "m.py") is spec


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (dict(inputs=("x",)), "must be kbench.model.spec.Tensor"),
        (dict(weights=(Tensor("w", ("features", 2), init="zeros"),)), "has init 'zeros'"),
        (dict(forward=None), "MODEL.forward must be callable"),
        (dict(flops=3), "MODEL.flops must be callable"),
        (dict(reduction="features"), "MODEL.reduction must be callable"),
    ],
)
def test_validate_spec_rejects(tmp_path, overrides, needle):
    path = tmp_path / "m.py"
    with pytest.raises(ModelLoadError) as ei:
        validate_spec(make_spec(**overrides), path)
    msg = assert_one_line(ei.value)
    assert needle in msg and str(path) in msg


# ---------------------------------------------------------------------------------------------- folders


def test_missing_models_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelsDirError) as ei:
        model_dirs((missing,))
    msg = assert_one_line(ei.value)
    assert "--models-dir" in msg and str(missing) in msg
    with pytest.raises(ModelsDirError):
        load_model("dense", (missing,))


def test_models_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file.py"
    f.write_text("")
    with pytest.raises(ModelsDirError):
        model_dirs((str(f),))


def test_model_dirs_user_first_then_builtin(tmp_path):
    dirs = model_dirs((str(tmp_path),))
    assert dirs == (tmp_path.resolve(), builtin_models_dir())


def test_user_folder_shadows_builtin(tmp_path):
    write_model(
        tmp_path,
        "dense",
        sizes='{"batch": (2,), "features": (3,)}',
    )
    spec = load_model("dense", (tmp_path,))
    assert spec.source == str((tmp_path / "dense.py").resolve())
    assert dict(spec.sizes) == {"batch": (2,), "features": (3,)}
    # the other built-ins are still found through the same folder list
    assert load_model("dot", (tmp_path,)).source.endswith("dot.py")
    assert find_model("dense", model_dirs((tmp_path,))) == tmp_path.resolve() / "dense.py"
    # and without the user folder the built-in comes back
    assert load_model("dense").source == str(builtin_models_dir().resolve() / "dense.py")


def test_user_model_loads_by_name(tmp_path):
    write_model(tmp_path, "mine")
    spec = load_model("mine", (str(tmp_path),))
    assert spec.name == "mine"
    assert spec.default_options == {"flag": False}


def test_available_models_skips_underscore_files(tmp_path):
    write_model(tmp_path, "good")
    write_model(tmp_path, "_helper", source="X = 1\n")
    write_model(tmp_path, "__init__", source="")
    (tmp_path / "notes.txt").write_text("not a model")
    found = available_models((tmp_path,))
    assert found == {"good": tmp_path / "good.py"}
    with pytest.raises(UnknownModelError):
        find_model("_helper", (tmp_path,))


def test_available_models_earlier_folder_wins_and_missing_folder_skipped(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_model(a, "m")
    write_model(b, "m")
    write_model(b, "only_b")
    found = available_models((a, tmp_path / "missing", b))
    assert found == {"m": a / "m.py", "only_b": b / "only_b.py"}


def test_available_models_builtin():
    found = available_models((builtin_models_dir(),))
    assert set(BUILTINS) <= set(found)


# ---------------------------------------------------------------------------------------------- Tensor and ModelSpec


def test_tensor_resolve():
    t = Tensor("k", ("features", 3, "units"))
    assert t.resolve({"features": 5, "units": 7, "batch": 99}) == (5, 3, 7)
    assert Tensor("s", ()).resolve({}) == ()
    assert Tensor("f", (4,)).resolve({}) == (4,)
    with pytest.raises(KeyError):
        t.resolve({"features": 5})
    assert Tensor("x", ("batch",)).init == "normal" and Tensor("x", ("batch",)).scale == 1.0


def test_tensor_is_frozen():
    t = Tensor("x", ("batch",))
    with pytest.raises(AttributeError):
        t.name = "y"  # type: ignore[misc]


def test_modelspec_sizes_and_options_are_read_only():
    sizes = {"batch": [1, 2], "features": [3]}
    options = {"flag": [False, True]}
    spec = make_spec(sizes=sizes, options=options)
    assert isinstance(spec.sizes, MappingProxyType)
    assert isinstance(spec.options, MappingProxyType)
    assert spec.sizes["batch"] == (1, 2) and spec.options["flag"] == (False, True)
    with pytest.raises(TypeError):
        spec.sizes["batch"] = (5,)  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.options["flag"] = (True,)  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    # the caller's dicts are copied, not wrapped
    sizes["batch"].append(3)
    sizes["new"] = [1]
    assert spec.sizes["batch"] == (1, 2) and "new" not in spec.sizes


def test_builtin_sizes_are_read_only():
    spec = load_model("dense")
    with pytest.raises(TypeError):
        spec.sizes["batch"] = (1,)  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.options["activation"] = ("relu",)  # type: ignore[index]


def test_default_options_is_a_fresh_dict():
    spec = make_spec(options={"a": ("x", "y")})
    d = spec.default_options
    d["a"] = "y"
    assert spec.default_options == {"a": "x"}


@pytest.mark.parametrize("dim", ["0", "-2", "2.5"])
def test_fixed_dim_must_be_a_positive_int(tmp_path, dim):
    path = write_model(tmp_path, "fixeddim", weights=f'(Tensor("w", ("features", {dim})),)', output='("batch", 2)')
    _load_error(path)
