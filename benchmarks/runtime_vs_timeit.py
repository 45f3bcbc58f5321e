"""Does kbench time a serving runtime as the runtime times alone? Each runtime row of a real run against the same call
under timeit in another process (issue 23).

    python benchmarks/runtime_vs_timeit.py                                  # dense, batch 1/32/1024, 3 rounds
    python benchmarks/runtime_vs_timeit.py --rounds 5 -- --model conv1d     # after ``--``: passed to ``kbench run``
    python benchmarks/runtime_vs_timeit.py --rounds 1 --repeat 1 -- --batch 1 --quick --processes 1   # a smoke run

The protocol is ``benchmarks/run_vs_timeit.py``'s (paired rounds: a ``kbench run``, then a timeit pass over its
rows; each run against the geometric mean of the passes just before and after it; targets 0.95-1.05), restricted to
the runtime rows of ``kbench run --model dense --runtime all --path numpy`` (plus anything after ``--``). What
differs is the timeit side: it does not reuse kbench's runtime code. For each row it builds the cell's Keras model on
kbench's seeded weights (``kbench.measure.cellinputs``), exports it with ``model.export`` itself, and loads the file
the way the runtime's documentation does, with the settings the row recorded (``runtime_options``):

- onnxruntime: ``InferenceSession(file, options, providers=["CPUExecutionProvider"])``, timed
  ``session.run(None, feed)[0]``;
- litert: ``Interpreter(model_path=file, num_threads=n)``, resized to the batch, timed ``set_tensor``, ``invoke``,
  ``get_tensor``;
- openvino: ``Core().compile_model(file, "CPU", config)``, timed ``request.infer({0: x})[output]``.

Each call is the one kbench times and documents for the row (``kbench.backends.runtimes``), output taken included:
on OpenVINO, indexing the result by its output port costs ~2 µs, 6% of a dense batch-1 call.

Each runtime is timed in timeit processes of its own (``--processes`` fresh ones a round), as kbench times it in
worker processes of its own: in one process, importing ONNX Runtime doubled OpenVINO's ``infer(feed)``.

Single-input models only (dense, mlp, conv1d). Exit status as ``run_vs_timeit.py``'s.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_vs_timeit as base  # noqa: E402  (the paired-rounds machinery, shared)

RUNTIMES = ("onnxruntime", "litert", "openvino")
FORMATS = {"onnxruntime": ("onnx", ".onnx"), "litert": ("litert", ".tflite"), "openvino": ("openvino", ".xml")}


def exported(row: dict, seed: int, folder: str) -> tuple[str, object]:
    """The row's Keras model on kbench's seeded weights, exported by ``model.export``; (file, the input array)."""
    import tensorflow as tf

    from kbench.measure.cellinputs import prepare
    from kbench.measure.protocol import Cell
    from kbench.model.loader import load_model

    spec = load_model(row["model"])
    sizes = tuple((k, int(v)) for k, v in (kv.split("=") for kv in row["sizes"].split()))
    inputs = prepare(Cell(row["model"], "", sizes, tuple(row["options"].items()), row["dtype"]), spec, seed, "float32")
    (name, x), = inputs.inputs.items()
    fmt, suffix = FORMATS[row["path"]]
    file = os.path.join(folder, row["path"] + suffix)
    sig = [tf.TensorSpec((None, *x.shape[1:]), x.dtype, name=name)]
    inputs.build_keras().export(file, format=fmt, verbose=False, input_signature=sig)
    return file, x


def onnxruntime_call(file: str, x, opts: dict):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = opts["intra_op_threads"]
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, opts["graph_optimization_level"])
    session = ort.InferenceSession(file, so, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)[0]


def litert_call(file: str, x, opts: dict):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    it = Interpreter(model_path=file, num_threads=opts["intra_op_threads"])
    index, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    it.resize_tensor_input(index, x.shape)
    it.allocate_tensors()

    def call():
        it.set_tensor(index, x)
        it.invoke()
        return it.get_tensor(out)

    return call


def openvino_call(file: str, x, opts: dict):
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": opts["intra_op_threads"], "INFERENCE_PRECISION_HINT":
              opts["inference_precision_hint"], "PERFORMANCE_HINT": opts["performance_hint"]}  # fmt: skip
    compiled = ov.Core().compile_model(file, "CPU", config)
    request, output, feed = compiled.create_infer_request(), compiled.outputs[0], {0: x}
    return lambda: request.infer(feed)[output]


CALLS = {"onnxruntime": onnxruntime_call, "litert": litert_call, "openvino": openvino_call}


def build_rows(first: dict) -> dict:
    """Each row's call, built here from its own export, apart from kbench's runtime code; first call made."""
    folder = tempfile.mkdtemp(prefix="kbench-runtime-timeit-")
    fns = {}
    for key, row in first["rows"].items():
        file, x = exported(row, first["seed"], folder)
        fns[key] = CALLS[row["path"]](file, x, row["runtime_options"])
        fns[key]()  # first call outside the timing
    return fns


class RuntimeTimeit(base.TimeitProcess):
    SCRIPT = os.path.abspath(__file__)


class RuntimeCheck(base.Check):
    OTHER = RuntimeTimeit

    def keep(self, row: dict) -> bool:
        return row["path"] in RUNTIMES

    def group(self, row: dict) -> str:
        """Each runtime in timeit processes of its own, as kbench times it (and as a server would load it)."""
        return row["path"]


def main(argv: list[str] | None = None) -> int:
    args = base.parse_args(argv)
    if args.timeit_server:
        return base.serve_timeit(args.repeat, build_rows)
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    extra = list(args.kbench_args)
    extra += [] if "--runtime" in extra else ["--runtime", "all"]
    extra += [] if {"--path", "-p"} & set(extra) else ["--path", "numpy"]
    peak_line, _ = base.kbench_peak(args.refresh_peak)
    with tempfile.TemporaryDirectory(prefix="kbench-runtime-vs-timeit-") as tmp:
        check = RuntimeCheck(extra, args.keep if args.keep is not None else Path(tmp), args.repeat, args.processes)
        try:
            for i in range(args.rounds):
                check.round(i)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            check.close()
    if not check.rows:
        print("no runtime row was timed (not installed? see kbench's skip lines)", file=sys.stderr)
        return 2
    base.print_setting(check, peak_line)
    within, total = base.report(check)
    print(f"\n{within} of {total} runtime rows within target")
    return 1 if within < total and not args.no_gate else 0


if __name__ == "__main__":
    sys.exit(main())
