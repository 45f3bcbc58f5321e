"""Planning: size lists, path selection, dtype and option checks, the cell grid, the memory guard, Plan JSON."""

from __future__ import annotations

import json

import pytest

from kbench.core.errors import (
    BadOptionError,
    BadSizeError,
    DtypeError,
    MemoryLimitError,
    UnknownPathError,
    UsageError,
)
from kbench.measure.callpaths import BASELINE, PATHS
from kbench.orchestrate.planning import (
    MAX_SIZE,
    MEMORY_SHARE,
    check_dtype,
    estimate_bytes,
    make_cells,
    parse_options,
    parse_paths,
    parse_size_list,
    reproduce_command,
)
from kbench.model.loader import load_model
from kbench.measure.timer import TimerConfig

BIG = 2**50  # plenty of memory, so the guard never trips unless a test wants it to


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    assert isinstance(err, UsageError) and err.exit_code == 2
    return text


# ---------------------------------------------------------------------------------------------- parse_size_list


@pytest.mark.parametrize(
    "text, expect",
    [
        ("1,32,1024", (1, 32, 1024)),
        ("1024,32,1,32", (1, 32, 1024)),
        (" 8 , 2 ", (2, 8)),
        ("5", (5,)),
        (7, (7,)),
        ([3, 1, 3], (1, 3)),
        (["4,2", "1"], (1, 2, 4)),
        (str(MAX_SIZE), (MAX_SIZE,)),
    ],
)
def test_parse_size_list(text, expect):
    got = parse_size_list("batch", text)
    assert got == expect
    assert isinstance(got, tuple) and all(type(v) is int for v in got)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("0", "must be positive"),
        ("-3", "must be positive"),
        ("1,0", "must be positive"),
        ("1.5", "is not an integer"),
        ("abc", "is not an integer"),
        ("", "--batch"),
        ("1,,2", "has an empty entry"),
        ("1;2", "is not an integer"),
        (str(MAX_SIZE + 1), "over 2**40"),
        (str(10**30), "over 2**40"),
        ([], "is empty"),
        (True, "is not an integer"),
    ],
)
def test_parse_size_list_rejects(text, needle):
    with pytest.raises(BadSizeError) as ei:
        parse_size_list("batch", text)
    msg = one_line(ei.value)
    assert "--batch" in msg
    assert needle in msg


def test_parse_size_list_names_the_flag():
    with pytest.raises(BadSizeError, match="--features"):
        parse_size_list("features", "x")


# ---------------------------------------------------------------------------------------------- parse_paths


def test_parse_paths_none_or_empty_means_all_but_the_serving_runtimes():
    runtimes = {"onnxruntime", "litert", "openvino"}
    assert parse_paths(None) == tuple(p for p in PATHS if p not in runtimes)
    assert parse_paths([]) == tuple(p for p in PATHS if p not in runtimes)
    assert parse_paths(None)[0] == BASELINE == "numpy"


def test_parse_paths_adds_baseline_and_keeps_registry_order():
    assert parse_paths(["call"]) == ("numpy", "call")
    assert parse_paths(["xla,predict", " call "]) == ("numpy", "predict", "call", "xla")
    assert parse_paths(["xla", "xla", "numpy"]) == ("numpy", "xla")
    order = list(PATHS)
    got = parse_paths(["compiled,predict_on_batch"])
    assert list(got) == sorted(got, key=order.index)


@pytest.mark.parametrize("name, hint", [("cal", "'call'"), ("predic", "'predict'"), ("compile", "'compiled'")])
def test_parse_paths_unknown_suggests(name, hint):
    with pytest.raises(UnknownPathError) as ei:
        parse_paths(["numpy", name])
    msg = one_line(ei.value)
    assert f"unknown path {name!r}" in msg
    assert "did you mean" in msg and hint in msg
    assert "known paths: " + ", ".join(PATHS) in msg


def test_parse_paths_unknown_without_hint():
    with pytest.raises(UnknownPathError) as ei:
        parse_paths(["zzzzzz"])
    msg = one_line(ei.value)
    assert "did you mean" not in msg and "known paths" in msg


# ---------------------------------------------------------------------------------------------- check_dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_dtype_ok(dtype):
    assert check_dtype(dtype) == dtype


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int32", "Float32", "", "f4"])
def test_check_dtype_rejects(dtype):
    with pytest.raises(DtypeError) as ei:
        check_dtype(dtype)
    msg = one_line(ei.value)
    assert repr(dtype) in msg and "float32, float64" in msg


# ---------------------------------------------------------------------------------------------- parse_options


def test_parse_options_defaults(dense, dot, matmul):
    assert parse_options([dense, dot, matmul], {}) == {
        "dense": {"activation": "linear"},
        "dot": {"normalize": False},
        "matmul": {},
    }


@pytest.mark.parametrize("text", ["relu", "RELU", " Relu "])
def test_parse_options_case_insensitive(dense, text):
    assert parse_options([dense], {"activation": text}) == {"dense": {"activation": "relu"}}


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False)])
def test_parse_options_typed_values(dot, text, value):
    got = parse_options([dot], {"normalize": text})["dot"]["normalize"]
    assert got is value


def test_parse_options_apply_only_to_models_that_have_them(dense, dot, matmul):
    got = parse_options([dense, dot, matmul], {"normalize": "true"})
    assert got == {"dense": {"activation": "linear"}, "dot": {"normalize": True}, "matmul": {}}


def test_parse_options_unknown_key(dense, dot):
    with pytest.raises(BadOptionError) as ei:
        parse_options([dense, dot], {"units": "3"})
    msg = one_line(ei.value)
    assert "'units'" in msg and "activation, normalize" in msg


def test_parse_options_unknown_key_no_options(matmul):
    with pytest.raises(BadOptionError) as ei:
        parse_options([matmul], {"activation": "relu"})
    assert "options: none" in one_line(ei.value)


@pytest.mark.parametrize("spec_name, key, text", [("dense", "activation", "tanh"), ("dot", "normalize", "yes"),
                                                  ("dot", "normalize", "1"), ("dense", "activation", "")])
def test_parse_options_disallowed_value(spec_name, key, text):
    spec = load_model(spec_name)
    with pytest.raises(BadOptionError) as ei:
        parse_options([spec], {key: text})
    msg = one_line(ei.value)
    assert f"{key}={text!r}" in msg and f"model {spec_name!r}" in msg
    assert ", ".join(map(str, spec.options[key])) in msg


def test_parse_options_multiline_value_gives_one_line_error(dense):
    with pytest.raises(BadOptionError) as ei:
        parse_options([dense], {"activation": "re\nlu"})
    one_line(ei.value)


# ---------------------------------------------------------------------------------------------- make_cells


def test_make_cells_default_dense_grid(dense):
    cells, _ = make_cells([dense], {}, {}, "float32", 6, mem_available=BIG)
    assert len(cells) == 3
    assert [c.sizes_dict["batch"] for c in cells] == [1, 32, 1024]
    for c in cells:
        assert c.model == "dense" and c.model_file == dense.source and c.dtype == "float32"
        assert c.sizes_dict == {"batch": c.sizes_dict["batch"], "features": 128, "units": 128}
        assert c.options_dict == {"activation": "linear"}
    assert cells[0].label == "batch=1 features=128 units=128"
    assert cells[0].sizes == (("batch", 1), ("features", 128), ("units", 128))


def test_make_cells_sizes_and_options(dense):
    cells, _ = make_cells([dense], {"batch": (2, 8), "units": (3, 5)}, {"activation": "ReLU"}, "float64", 1,
                       mem_available=BIG)
    assert [(c.sizes_dict["batch"], c.sizes_dict["units"]) for c in cells] == [(2, 3), (2, 5), (8, 3), (8, 5)]
    assert all(c.options == (("activation", "relu"),) and c.dtype == "float64" for c in cells)


def test_make_cells_unknown_size(dense, dot):
    with pytest.raises(BadSizeError) as ei:
        make_cells([dense, dot], {"n": (4,)}, {}, "float32", 1, mem_available=BIG)
    msg = one_line(ei.value)
    assert "'n'" in msg and "--n" in msg
    assert "dense: batch, features, units" in msg and "dot: batch, features" in msg


def test_make_cells_sizes_apply_only_to_models_that_have_them(dense, dot, matmul):
    cells, _ = make_cells([dense, dot, matmul], {"batch": (8,), "n": (4, 16)}, {"normalize": "true"}, "float32", 2,
                       mem_available=BIG)
    assert [(c.model, c.label) for c in cells] == [
        ("dense", "batch=8 features=128 units=128"),
        ("dot", "batch=8 features=128"),
        ("matmul", "n=4"),
        ("matmul", "n=16"),
    ]
    assert [c.options_dict for c in cells] == [{"activation": "linear"}, {"normalize": True}, {}, {}]
    # a model without the given size keeps its own defaults
    cells, _ = make_cells([dense, matmul], {"batch": (2,)}, {}, "float32", 2, mem_available=BIG)
    assert [(c.model, c.label) for c in cells] == [("dense", "batch=2 features=128 units=128"), ("matmul", "n=100")]


def test_make_cells_checks_dtype_and_options(dense):
    with pytest.raises(DtypeError):
        make_cells([dense], {}, {}, "float16", 1, mem_available=BIG)
    with pytest.raises(BadOptionError):
        make_cells([dense], {}, {"activation": "gelu"}, "float32", 1, mem_available=BIG)
    with pytest.raises(BadOptionError):
        make_cells([dense], {}, {"normalize": "true"}, "float32", 1, mem_available=BIG)


def test_memory_guard_skips_cells_over_the_limit_and_records_why(dense):
    gib = 2**30
    cells, skipped = make_cells([dense], {"batch": (1, 2**20)}, {}, "float32", 6, mem_available=gib)
    assert [c.sizes_dict["batch"] for c in cells] == [1]
    ((model, sizes, reason),) = skipped
    assert model == "dense" and sizes == "batch=1048576 features=128 units=128" and "GiB" in reason


def test_memory_guard_refuses_when_no_cell_fits(dense):
    gib = 2**30
    with pytest.raises(MemoryLimitError) as ei:
        make_cells([dense], {"batch": (2**20,)}, {}, "float32", 6, mem_available=gib)
    msg = one_line(ei.value)
    need = estimate_bytes(dense, {"batch": 2**20, "features": 128, "units": 128}, 6)
    assert f"about {need / gib:.1f} GiB" in msg
    assert "of the 1.0 GiB available" in msg
    assert "batch=1048576" in msg and "9 copies" in msg and f"{MEMORY_SHARE:.0%}" in msg


def test_memory_guard_boundary(dense):
    point = {"batch": 32, "features": 128, "units": 128}
    need = estimate_bytes(dense, point, 3)
    exact = int(need / MEMORY_SHARE)
    cells, _ = make_cells([dense], {"batch": (32,)}, {}, "float32", 3, mem_available=exact)
    assert len(cells) == 1
    with pytest.raises(MemoryLimitError):
        make_cells([dense], {"batch": (32,)}, {}, "float32", 3, mem_available=exact - 2)


def test_memory_guard_uses_available_memory_by_default(dense, monkeypatch):
    import kbench.orchestrate.planning as plan_mod

    monkeypatch.setattr(plan_mod, "available_memory", lambda: 1024)
    with pytest.raises(MemoryLimitError):
        make_cells([dense], {}, {}, "float32", 1)
    monkeypatch.setattr(plan_mod, "available_memory", lambda: BIG)
    assert len(make_cells([dense], {}, {}, "float32", 1)[0]) == 3


def test_available_memory_is_positive():
    from kbench.orchestrate.planning import available_memory

    assert available_memory() > 0


# ---------------------------------------------------------------------------------------------- estimate_bytes


@pytest.mark.parametrize("batch, features, units, n_paths", [(1, 128, 128, 6), (32, 10, 3, 1), (1024, 128, 128, 2)])
def test_estimate_bytes_dense(dense, batch, features, units, n_paths):
    sizes = {"batch": batch, "features": features, "units": units}
    elements = features * units + units + batch * features + batch * units
    assert estimate_bytes(dense, sizes, n_paths) == elements * 8 * (n_paths + 3)


def test_estimate_bytes_dense_literal(dense):
    # kernel 128*128 + bias 128 + x 1*128 + out 1*128 = 16768 elements; 8 B each; (6 paths + 3) copies
    assert estimate_bytes(dense, {"batch": 1, "features": 128, "units": 128}, 6) == 16768 * 8 * 9


def test_estimate_bytes_dot_and_matmul(dot, matmul):
    assert estimate_bytes(dot, {"batch": 4, "features": 10}, 1) == (40 + 40 + 4) * 8 * 4
    assert estimate_bytes(matmul, {"n": 10}, 0) == 300 * 8 * 3


# ---------------------------------------------------------------------------------------------- a worker's Job


def test_a_workers_job_round_trips_through_the_protocol(dense, dot, matmul):
    from kbench.measure import protocol

    cells, _ = make_cells([dense, dot, matmul], {"batch": (1, 8)}, {"normalize": "TRUE", "activation": "relu"},
                       "float64", 3, mem_available=BIG)
    job = protocol.Job(
        cells, parse_paths(["call", "xla"]), "tensorflow", 1234,
        TimerConfig(budget_s=0.5, min_samples=3, max_samples=50, target_ci=0.05, seed=9), mode="parity",
        process=1, processes=2)
    text = protocol.encode(job)
    assert "\n" not in text
    json.loads(text)
    back = protocol.decode_job(text)
    assert back == job
    assert hash(back) == hash(job)
    assert back.cells[2].options_dict == {"normalize": True}
    assert isinstance(back.cells[0].sizes, tuple) and isinstance(back.cells[0].sizes[0], tuple)
    assert protocol.encode(back) == text


def test_reproduce_command():
    assert reproduce_command(["run", "--model", "dense", "--activation", "a b"]) == (
        "kbench run --model dense --activation 'a b'"
    )


def test_max_cells_refuses_with_the_count(dense, dot):
    with pytest.raises(BadSizeError, match="make 30 cells, over --max-cells 20"):
        make_cells([dense, dot], {"batch": tuple(range(1, 16))}, {}, "float32", 1, mem_available=BIG, max_cells=20)


def test_sweep_uses_each_models_preset_and_explicit_sizes_win(dense, matmul):
    cells, _ = make_cells([dense, matmul], {}, {}, "float32", 1, mem_available=BIG, sweep=True)
    assert [c.sizes_dict["batch"] for c in cells if c.model == "dense"] == [2**i for i in range(15)]
    assert [c.sizes_dict["n"] for c in cells if c.model == "matmul"] == [16, 32, 64, 128, 256, 512, 1024]
    cells, _ = make_cells([dense], {"features": (64,)}, {}, "float32", 1, mem_available=BIG, sweep=True)
    assert len(cells) == 15 and {c.sizes_dict["features"] for c in cells} == {64}
    with pytest.raises(BadSizeError, match="--sweep conflicts with --batch 1,4"):
        make_cells([dense], {"batch": (1, 4)}, {}, "float32", 1, mem_available=BIG, sweep=True)


@pytest.mark.parametrize("text, seconds", [("300", 300), ("90s", 90), ("5m", 300), ("1.5h", 5400), (2.5, 2.5)])
def test_parse_duration(text, seconds):
    from kbench.orchestrate.planning import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5m", "5 minutes", "abc", "", "0s"])
def test_parse_duration_rejects(text):
    from kbench.orchestrate.planning import parse_duration

    with pytest.raises(BadSizeError) as ei:
        parse_duration(text)
    assert "--budget" in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("text, values", [("2**0..2**4", (1, 2, 4, 8, 16)), ("8..12", (8, 9, 10, 11, 12)),
                                          ("8..64:8", (8, 16, 24, 32, 40, 48, 56, 64)), ("1,2**3,5..6", (1, 5, 6, 8))])
def test_ranges(text, values):
    assert parse_size_list("batch", text) == values


@pytest.mark.parametrize("text, needle", [("64..8", "is reversed"), ("8..", "empty range"), ("..8", "empty range"),
                                          ("1..100000", "expands to 100000 sizes"), ("2**0..2**70", "exponent up to 64"),
                                          ("8..64:0", "step 0")])
def test_bad_ranges(text, needle):
    with pytest.raises(BadSizeError) as ei:
        parse_size_list("batch", text)
    assert needle in str(ei.value) and "\n" not in str(ei.value)


def test_force_keeps_cells_over_the_memory_guard(dense):
    cells, skipped = make_cells([dense], {"batch": (2**20,)}, {}, "float32", 6, mem_available=2**30, force=True)
    assert len(cells) == 1 and skipped == ()
