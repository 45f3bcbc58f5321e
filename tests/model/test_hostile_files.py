"""Broken and hostile ``.keras`` files are refused in the parent, in one line, before any worker: one test per class
of finding of ``benchmarks/fuzz_cli.py`` (issue 21). No Keras, no worker: configs are written by hand."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from kbench.core.errors import MemoryLimitError, UsageError
from kbench.model import autotwin, keras_checks, keras_file, keras_spec
from kbench.orchestrate.request import RunRequest, make_plan

POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}
HOSTILE = "\x1b[31mred\x1b[0m [bold]x[red] <script>alert(1)<\\script> \"'\n`|` **md**"  # no '/': Keras refuses it


def _input(name="x", shape=(None, 4), **extra):
    return {"module": "keras.layers", "class_name": "InputLayer", "name": name, "inbound_nodes": [],
            "config": {"batch_shape": list(shape), "dtype": "float32", "name": name, **extra}}  # fmt: skip


def _layer(cls, name, reads=None, **config):
    layer = {"module": "keras.layers", "class_name": cls, "name": name,
             "config": {"name": name, "dtype": POLICY, **config}}  # fmt: skip
    if reads is not None:
        tensor = {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "keras_history": [reads, 0, 0]}}
        layer["inbound_nodes"] = [{"args": [tensor], "kwargs": {}}]
    return layer


def _dense(name="d", units=3, reads=None, **config):
    return _layer("Dense", name, reads, **{"units": units, "activation": "relu", "use_bias": True, **config})


def sequential(*layers) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": list(layers)}}


def functional(*layers, inputs=("x",), output="d") -> dict:
    body = {"name": "f", "layers": list(layers), "input_layers": [[i, 0, 0] for i in inputs],
            "output_layers": [[output, 0, 0]]}  # fmt: skip
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": body}


def write(path: Path, config: dict | str, weights: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        z.writestr("metadata.json", "{}")
        z.writestr(keras_checks.WEIGHTS_FILE, weights)
    return path


def refused(path: Path, *expected: str) -> str:
    """``load_spec`` refuses the file with a usage error (exit 2) of one printable line holding ``expected``."""
    with pytest.raises(UsageError) as info:
        keras_spec.load_spec(path)
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message and "\x1b" not in message, message
    for text in expected:
        assert text in message, message
    return message


# -- config.json that no model has: deep nesting, damaged structure ---------------------------------------------------


@pytest.mark.parametrize("depth", [100, 10_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting_is_refused_without_recursion(tmp_path, depth, kind):
    deep = ("[" * depth + "1" + "]" * depth) if kind == "list" else ('{"k": ' * depth + "1" + "}" * depth)
    text = json.dumps(sequential(_input(), _dense(zzz="DEEP"))).replace('"DEEP"', deep)
    refused(write(tmp_path / "deep.keras", text), "levels deep")


@pytest.mark.parametrize("mutate,expected", [
    (lambda c: c.update(config=[1, 2]), "the model's config is a list"),
    (lambda c: c["config"].update(layers=float("nan")), "its layers are a float"),
    (lambda c: c["config"].update(layers=None), "its layers are null"),
    (lambda c: c["config"]["layers"][1].pop("config"), "layer 1 ('Dense') has no config object"),
    (lambda c: c["config"]["layers"][1].update(class_name=None), "layer 1 is a dict without a class name"),
    (lambda c: c["config"]["layers"].append(copy.deepcopy(c["config"]["layers"][1])), "two layers are named 'd'"),
    (lambda c: c["config"]["layers"][1]["config"].update(name="a/b"), "without '/'"),
    (lambda c: [c["config"]["layers"][1].update(name=3), c["config"]["layers"][1]["config"].update(name=3)],
     "is named 3"),
    (lambda c: c["config"]["layers"][0]["config"].update(dtype={"config": "x"}), "has dtype 'float32'"),
    (lambda c: c["config"]["layers"][0]["config"].update(dtype={"config": {"name": [1]}}), "has dtype [1]"),
    (lambda c: c["config"]["layers"][0]["config"].update(dtype="float16"), "has dtype float16; Keras rounds it"),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape="abc"), "shape 'abc', not a list"),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, "4"]), "each dimension"),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, -4]), "each dimension"),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 2**40]), "each dimension"),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 4.5]), "each dimension"),
    (lambda c: c["config"]["layers"][1]["config"].update(dtype={"class_name": "DTypePolicy", "config": 5}),
     "has dtype 'float32'"),
    (lambda c: c["config"]["layers"][1]["config"].update(dtype=3), "layer 'd''s dtype is 3"),
])  # fmt: skip
def test_a_damaged_sequential_config_is_one_line(tmp_path, mutate, expected):
    config = sequential(_input(), _dense())
    mutate(config)
    if "has dtype 'float32'" in expected:  # a policy without a name reads as float32: the file is fine
        keras_spec.load_spec(write(tmp_path / "m.keras", config))
        return
    refused(write(tmp_path / "m.keras", config), expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda c: c["config"].update(output_layers=[["nowhere", 0, 0]]), "output_layers names 'nowhere'"),
    (lambda c: c["config"]["layers"][1].update(class_name="InputLayer"), "output_layers names 'd', which is no layer"),
    (lambda c: [c["config"]["layers"].insert(0, _input("z")),
                c["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"].update(keras_history=["z", 0, 0])],
     "reads 'z', which is no layer or input"),
    (lambda c: c["config"].update(output_layers={"a": 1}), "not [layer name, node, index] references"),
    (lambda c: c["config"].update(input_layers=[["d", 0, 0]]), "no InputLayer of the model"),
    (lambda c: c["config"]["layers"][1].update(inbound_nodes="x"), "inbound_nodes are not a list of calls"),
    (lambda c: c["config"]["layers"][1]["inbound_nodes"][0]["args"][0]["config"].update(keras_history=None),
     "keras_history is None"),
    (lambda c: c["config"]["layers"][1]["inbound_nodes"][0]["args"][0]["config"].update(keras_history=["y", 0, 0]),
     "reads 'y', which is no layer or input"),
    (lambda c: c["config"]["layers"][1].update(name="other"), "the same in the layer and its config"),
])  # fmt: skip
def test_a_damaged_functional_config_is_one_line(tmp_path, mutate, expected):
    config = functional(_input(), _dense(reads="x"))
    keras_spec.load_spec(write(tmp_path / "ok.keras", config))
    mutate(config)
    refused(write(tmp_path / "m.keras", config), "config.json is damaged", expected)


# -- config values the twin reads: type, range, shape -----------------------------------------------------------------


@pytest.mark.parametrize("layer,expected", [
    (_dense(units=10**30), "units=1000000000000000000000000000000: expected 1 integer(s) from 1 to 2147483647"),
    (_dense(units=-1), "units=-1"),
    (_dense(units="3"), "units='3'"),
    (_dense(units=3.0), "units=3.0"),
    (_dense(units=True), "units=True"),
    (_dense(use_bias="false"), "use_bias='false': expected true or false"),
    (_layer("ReLU", "r", max_value=float("inf")), "max_value=inf: expected a finite number >= 0"),
    (_layer("ReLU", "r", negative_slope=float("nan")), "negative_slope=nan"),
    (_layer("LayerNormalization", "n", epsilon=float("nan")), "epsilon=nan"),
    (_layer("LayerNormalization", "n", center="yes"), "center='yes'"),
    (_layer("BatchNormalization", "n", epsilon=-1), "epsilon=-1: expected a finite number >= 0"),
    (_layer("Softmax", "s", axis="abc"), "axis='abc': expected an integer from -2 to 1"),
    (_layer("Softmax", "s", axis=7), "axis=7"),
    (_layer("Reshape", "r", target_shape=[2, 2.0]), "target_shape=[2, 2.0]"),
    (_layer("Reshape", "r", target_shape=[-1, -1]), "one -1 at most"),
    (_layer("Reshape", "r", target_shape=None), "target_shape=None"),
    (_layer("GRU", "g", units=4), "reads (time steps, features) inputs, not (4,)"),  # a rank Keras refuses too
    (_layer("Conv2D", "c", filters=2, kernel_size=[3, 3]), "takes (*2 spatial axes, channels) inputs, not (4,)"),
    (_layer("Bidirectional", "b", layer={"class_name": "GRU", "config": {"units": 0}}), "its GRU: GRU reads"),
    (_layer("Bidirectional", "b", layer=None), "layer=None: expected a layer (its class_name and config)"),
])  # fmt: skip
def test_a_bad_twin_field_names_the_layer_and_the_field(tmp_path, layer, expected):
    message = refused(write(tmp_path / "m.keras", sequential(_input(), layer)), "has a broken config", expected)
    assert f"layer {layer['config']['name']!r} ({layer['class_name']})" in message


def test_a_value_that_is_no_string_where_a_choice_is_read_is_a_broken_config(tmp_path):
    conv = _layer("Conv1D", "c", filters=2, kernel_size=[3], data_format=[1, 2, 3])
    refused(write(tmp_path / "m.keras", sequential(_input(shape=(None, 8, 2)), conv)), "data_format=[1, 2, 3]")
    pool = _layer("GlobalAveragePooling1D", "p", data_format={"a": 1})
    refused(write(tmp_path / "p.keras", sequential(_input(shape=(None, 8, 2)), pool)), "data_format={'a': 1}")


def test_a_layer_whose_input_no_longer_fits_its_saved_build_is_refused(tmp_path):
    """A size changed upstream (units 1 instead of 8): Keras would refuse the saved weights in the worker."""
    second = {**_dense("d2", 2), "build_config": {"input_shape": [None, 8]}}  # built after a Dense(8)
    message = refused(write(tmp_path / "m.keras", sequential(_input(), _dense("d1", 1), second)),
                      "layer 'd2' (Dense) was saved built for input shape [None, 8]", "[None, 1]")  # fmt: skip
    assert "config and the weights disagree" in message
    second["build_config"]["input_shape"] = [None, 1]
    keras_spec.load_spec(write(tmp_path / "ok.keras", sequential(_input(), _dense("d1", 1), second)))
    second["build_config"]["input_shape"] = [40, 1]  # built with a batch, as Normalization.adapt(data) saves it
    keras_spec.load_spec(write(tmp_path / "batch.keras", sequential(_input(), _dense("d1", 1), second)))


@pytest.mark.parametrize("input_dim", ["50", -1, None, 2**40])
def test_an_embedding_without_a_twin_checks_its_input_dim(tmp_path, input_dim):
    emb = _layer("Embedding", "e", input_dim=input_dim, output_dim=4)
    no_twin = _layer("Conv1DTranspose", "t", filters=2, kernel_size=[3])  # no twin, so nothing else reads input_dim
    path = write(tmp_path / "m.keras", sequential(_input(shape=(None, 6)), no_twin, emb))
    refused(path, "layer 'e' (Embedding)", "input_dim=")


# -- hostile names: verbatim in messages, escaped; in generated code only as a repr in a comment or a key ---------------


def test_a_hostile_name_is_shown_escaped_in_one_line(tmp_path):
    layer = _dense(HOSTILE, units=-1)
    message = refused(write(tmp_path / "m.keras", sequential(_input(), layer)), "units=-1")
    assert "\\x1b[31mred" in message and "[bold]x[red] <script>" in message


def test_a_hostile_name_reaches_the_generated_code_only_as_a_repr(tmp_path):
    config = sequential(_input(HOSTILE + "in"), _dense(HOSTILE, units=2))
    config["config"]["name"] = HOSTILE + "\x00\r"  # the model's name too (a NUL broke compile()'s file name)
    spec_path = write(tmp_path / "m.keras", config)
    twin = autotwin.build(keras_file.read_graph(spec_path))
    assert isinstance(twin, autotwin.Twin)
    for line in twin.source.splitlines():
        if HOSTILE in line or "\x1b" in line:
            raise AssertionError(f"a raw name in the generated code: {line!r}")
    assert f"# layer {HOSTILE!r} (Dense)" in twin.source
    assert f"inputs[{HOSTILE + 'in'!r}]" in twin.source


# -- Keras' own refusal in the worker, and the memory guard before it --------------------------------------------------


def test_a_file_keras_refuses_to_load_is_a_usage_error_of_one_printable_line():
    def load_model(path, **kwargs):
        if "weights" in path:
            raise ValueError("A total of 1 objects could not be loaded. Example error message: Layer 'd' expected 2 "
                             "variables, but received 0 variables during loading. " + "[0.1, 0.2] " * 1000)  # fmt: skip
        raise ValueError("Could not deserialize {'config': {...}}\n" + "x" * 5000 + " Exception encountered: "
                         "Argument `name` must be a string and cannot contain character `/`. \x1b[2J")  # fmt: skip

    keras = SimpleNamespace(saving=SimpleNamespace(load_model=load_model))
    with pytest.raises(keras_checks.KerasLoadError) as info:
        keras_checks.load_keras(keras, "/somewhere/m.keras")
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message and "\x1b" not in message and len(message) < 600
    assert message.startswith("m.keras: Keras cannot load it (ValueError: Argument `name` must be a string")
    with pytest.raises(keras_checks.KerasLoadError) as info:
        keras_checks.load_keras(keras, "weights.keras")
    assert "Layer 'd' expected 2 variables, but received 0" in str(info.value) and len(str(info.value)) < 600


def test_saved_weights_over_the_memory_guard_are_refused_before_loading(tmp_path):
    """A fake small available memory: 4 MiB of saved weights, 9 copies in float64, over half of 32 MiB."""
    path = write(tmp_path / "big.keras", sequential(_input(), _layer("Conv1DTranspose", "t", filters=2)),
                 weights=bytes(4 * 2**20))  # fmt: skip
    assert keras_spec.load_spec(path).stored_bytes == 4 * 2**20
    request = RunRequest(str(path), paths="call", mode="parity", mem_available=32 * 2**20)
    with pytest.raises(MemoryLimitError) as info:
        make_plan(request)
    message = str(info.value)
    assert "its saved weights take 4.0 MiB" in message and "refused before loading it" in message
    assert "--force" in message and "\n" not in message
    assert make_plan(RunRequest(str(path), paths="call", mode="parity", mem_available=32 * 2**20, force=True)).cells
    assert make_plan(RunRequest(str(path), paths="call", mode="parity", mem_available=2**30)).cells
