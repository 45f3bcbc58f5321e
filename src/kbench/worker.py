"""The backend worker: ``python -m kbench.worker`` with a JSON plan on stdin, one JSON line per event on stdout.

One worker process per Keras backend: ``KERAS_BACKEND`` is set by the parent before this process imports Keras,
and the parent never imports the backend itself. The worker's first act is to time its own imports (NumPy, then
Keras with its backend) in this fresh process. It then streams one ``cell`` line per finished cell, so a crash
loses only the cells that were not finished.

Per cell, per path (paths in a shuffled order, each on a fresh model instance so no path warms another's caches):

1. ``build``   construct the Keras model from the shared weights and wrap it for the path (no call);
2. ``first``   the first call at the cell's sizes (tracing / compilation happen here), output kept for parity;
3. parity of that output against the float64 reference and the NumPy twin;
4. steady state of all paths together, interleaved (:class:`kbench.timer.Timer`);
5. ``retrace`` the first call at batch+1 after the steady state (models with a ``batch`` size only).

Before the first cell, one throwaway pass over every path on a throwaway model pays the process-wide lazy set-up
(op registration, oneDNN primitive caches, the tracing machinery) and is reported as ``runtime_init_s``, so it is
not charged to whichever path happens to run first.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
import traceback


def _emitter(stream):
    def emit(event: str, **fields) -> None:
        stream.write(json.dumps({"event": event, **fields}, default=_json_default) + "\n")
        stream.flush()

    return emit


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def main() -> int:
    started = time.perf_counter()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us and keeps results
    faulthandler.enable()  # a segfault leaves a Python traceback in worker.log
    # Keep the protocol stream clean: anything printed by TensorFlow, Keras or a model file goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    emit = _emitter(proto)
    plan_text = sys.stdin.read()

    t0 = time.perf_counter()
    import numpy  # noqa: F401  (timed: the baseline's import cost)

    t1 = time.perf_counter()
    import keras  # noqa: F401  (timed: Keras plus its backend, KERAS_BACKEND chosen by the parent)

    t2 = time.perf_counter()

    from kbench.envinfo import backend_fingerprint
    from kbench.errors import KbenchError, one_line
    from kbench.plan import Plan

    plan = Plan.from_json(plan_text)
    try:
        device, precision = setup_device(plan)
    except KbenchError as exc:
        emit("error", index=0, kind=type(exc).__name__, message=one_line(exc), user=exc.exit_code == 2)
        return 0
    env = {**backend_fingerprint(), "device": device, "matmul_precision": precision}
    emit("import", numpy_import_s=t1 - t0, backend_import_s=t2 - t1, env=env, pid=os.getpid())
    if plan.mode == "env":
        emit("done")
        return 0
    global _DEVICE, _PRECISION
    _DEVICE, _PRECISION = device, precision
    history: dict | None = None
    for index, cell in enumerate(plan.cells):
        try:
            budget_s, skip = cell_budget(plan, index, time.perf_counter() - started, history)
            if skip:
                emit("skip", index=index, reason=skip)
                continue
            t0 = time.perf_counter()
            payload = run_cell(plan, index, cell, emit, budget_s)
            flops = _spec(cell.model_file).flops(cell.sizes_dict)
            history = _history(history, cell.model, payload, time.perf_counter() - t0, flops)
            emit("cell", index=index, **payload)
        except KbenchError as exc:
            emit("error", index=index, kind=type(exc).__name__, message=one_line(exc), user=exc.exit_code == 2)
            return 0
        except Exception as exc:  # a backend failure: report it, keep what was finished
            emit(
                "error",
                index=index,
                kind=type(exc).__name__,
                message=f"{type(exc).__name__}: {one_line(exc)}",
                user=False,
                traceback=traceback.format_exc(),
            )
            return 0
    emit("done")
    return 0


_SPECS: dict = {}
_RUNTIME_WARM = False
_DEVICE, _PRECISION = "cpu", "float32"


def setup_device(plan) -> tuple[str, str]:
    """(device in use, matmul precision in effect) after applying ``--precision``; ``--device gpu`` with no GPU
    visible is the user's error, never a silent CPU run."""
    from kbench.errors import DeviceError

    backend = plan.backend
    if backend == "tensorflow":
        import tensorflow as tf

        gpu = bool(tf.config.list_physical_devices("GPU"))
        if plan.precision == "highest":
            tf.config.experimental.enable_tensor_float_32_execution(False)
        tf32 = gpu and tf.config.experimental.tensor_float_32_execution_enabled()
    elif backend == "jax":
        import jax

        gpu = jax.devices()[0].platform == "gpu"
        if plan.precision == "highest":
            jax.config.update("jax_default_matmul_precision", "highest")
        tf32 = gpu and jax.config.jax_default_matmul_precision in (None, "default", "bfloat16_3x", "tensorfloat32")
    else:
        import torch

        gpu = torch.cuda.is_available()
        if plan.precision == "highest":
            torch.set_float32_matmul_precision("highest")
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        tf32 = gpu and (torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest")
    if plan.device == "gpu" and not gpu:
        raise DeviceError(f"--device gpu, but no GPU is visible to the {backend} backend; use --device cpu or auto")
    return ("gpu" if gpu else "cpu"), ("tf32" if tf32 else "float32")


def _to_host(out):
    """A path's output as a NumPy array, for parity only (outside every timed region)."""
    import numpy as np

    if hasattr(out, "detach"):  # a torch tensor, possibly on a GPU
        return out.detach().cpu().numpy()
    return np.asarray(out)


def _spec(model_file: str):
    from kbench.spec import load_model_file

    if model_file not in _SPECS:
        _SPECS[model_file] = load_model_file(model_file)
    return _SPECS[model_file]


def _history(previous: dict | None, model: str, payload: dict, wall_s: float, flops: int) -> dict:
    """What the next cell's cost is predicted from: per path, the (FLOPs, median) points of this model so far, and
    the time the last cell spent outside sampling."""
    import statistics

    points = dict(previous["points"]) if previous and previous["model"] == model else {}
    for r in payload["rows"]:
        if r.get("samples"):
            points[r["path"]] = [*points.get(r["path"], []), (max(flops, 1), statistics.median(r["samples"]))]
    sampling = sum(sum(r["samples"]) * r["loops"] for r in payload["rows"] if r.get("samples"))
    return {"model": model, "points": points, "cold_s": max(wall_s - sampling, 0.0)}


def _predict_call(points: list[tuple[int, float]], flops: int) -> float:
    """Per-call time at ``flops``: extrapolated along the last two measured points (time grows with work, never
    shrinks); from a single point, conservatively in proportion to the FLOPs."""
    f1, t1 = points[-1]
    if len(points) >= 2 and points[-2][0] < f1:
        f0, t0 = points[-2]
        return t1 + max(0.0, (t1 - t0) / (f1 - f0)) * max(0, flops - f1)
    return t1 * max(1.0, flops / f1)


def cell_budget(plan, index: int, elapsed_s: float, history: dict | None) -> tuple[float, str]:
    """(steady-state budget for this cell, skip reason). Without a run budget every cell gets ``plan.timer.budget_s``.

    With one, the time left is shared equally by the cells left, less the cold-start time the last cell took; a
    cell whose *minimum* cost (``min_samples`` samples of every path, plus warm-up, first call and retrace, each
    path's per-call time extrapolated from the model's earlier cells, see :func:`_predict_call`) exceeds the time
    left is skipped, with that reason."""
    cfg = plan.timer
    if plan.run_budget_s is None or plan.mode != "run":
        return cfg.budget_s, ""
    left = plan.run_budget_s - elapsed_s
    cells_left = len(plan.cells) - index
    if history is None:
        if left <= 0:
            return 0.0, f"the run budget was spent ({plan.run_budget_s:g} s, of which the backend import took part)"
        return max(0.05, min(cfg.budget_s, left / cells_left)), ""
    cell = plan.cells[index]
    flops = _spec(cell.model_file).flops(cell.sizes_dict)
    per_call = [_predict_call(pts, flops) for pts in history["points"].values()]
    minimum = sum(cfg.min_samples * max(cfg.min_sample_s, t) + 4 * t for t in per_call) + history["cold_s"]
    if minimum > left:
        return 0.0, (f"predicted to need at least {minimum:.1f} s ({cfg.min_samples} samples of every path plus cold "
                     f"start), {max(left, 0):.1f} s of the {plan.run_budget_s:g} s run budget left")  # fmt: skip
    return max(0.05, min(cfg.budget_s, left / cells_left - history["cold_s"])), ""


def run_cell(plan, index: int, cell, emit, budget_s: float | None = None) -> dict:
    import random

    import keras
    import numpy as np

    from kbench import parity
    from kbench.errors import ModelShapeError
    from kbench.paths import PATHS, PathContext, paths_for
    from kbench.timer import Timer, TimerConfig, time_once
    from kbench.weights import make_inputs, make_weights

    global _RUNTIME_WARM
    spec = _spec(cell.model_file)
    sizes, options, dtype = cell.sizes_dict, cell.options_dict, cell.dtype
    weights = make_weights(spec, sizes, dtype, plan.seed)
    inputs = make_inputs(spec, sizes, dtype, plan.seed)
    declared = spec.output_shape(sizes)
    ref = parity.reference(spec, weights, inputs, options)
    magnitudes = parity.magnitude(spec, weights, inputs, options)
    twin = np.asarray(spec.forward(weights, inputs, **options))
    if twin.shape != declared:
        raise ModelShapeError(
            f"model {spec.name!r}: the NumPy forward returns shape {twin.shape} but MODEL.output declares "
            f"{declared} at {cell.label}; fix forward() or MODEL.output"
        )
    tol = parity.tolerance(dtype, spec.reduction(sizes), _PRECISION)
    ctx = PathContext(spec, weights, sizes, options, dtype)
    resident = plan.resident if plan.resident is not None else _DEVICE == "gpu"
    paths = [PATHS[p] for p in paths_for(plan.backend, plan.paths, resident)]

    def build(path):
        if not path.uses_keras:
            return path.prepare(ctx, None, plan.backend)
        return path.prepare(ctx, spec.build_keras(keras, weights, sizes, dtype, **options), plan.backend)

    if plan.mode == "run" and not _RUNTIME_WARM:
        emit("phase", index=index, phase="runtime init")
        t = time.perf_counter()
        for path in paths:
            build(path)(inputs)()
        emit("init", runtime_init_s=time.perf_counter() - t)
        _RUNTIME_WARM = True

    rng = random.Random(f"{plan.seed}:{index}")
    order = paths[:]
    rng.shuffle(order)
    rows: dict[str, dict] = {}
    fns = {}
    binds = {}
    for path in order:
        emit("phase", index=index, phase=f"cold start: {path.name}")
        build_s, bind = time_once(lambda: build(path))
        fn = bind(inputs)
        first_s, out = time_once(fn)
        if path.transfer:  # a copy, not the model: nothing to compare
            p = parity.ParityResult(path.name, True, tol, float("nan"), float("nan"), float("nan"), "transfer: no parity")
        else:
            out = _to_host(out)
            if out.shape != declared:
                raise ModelShapeError(
                    f"model {spec.name!r}: path {path.name!r} returns shape {out.shape} but the NumPy twin returns "
                    f"{declared} at {cell.label}; make build_keras() and forward() compute the same thing"
                )
            p = parity.check(path.name, out, ref, twin, tol, magnitudes)
        rows[path.name] = {
            "path": path.name,
            "build_s": build_s if path.uses_keras else None,
            "first_call_s": first_s,
            "parity_ok": p.ok,
            "parity_tol": p.tol,
            "parity_max_abs_err": p.max_abs_err,
            "parity_max_rel_err": p.max_rel_err,
            "parity_twin_max_abs_err": p.twin_max_abs_err,
            "parity_message": p.message,
            "order": len(rows),
            "device": _DEVICE if path.uses_keras or path.transfer else "cpu",
            "placement": path.placement,
            "precision": _PRECISION if path.uses_keras else "float32",
        }
        fns[path.name] = fn
        binds[path.name] = bind
    if plan.mode == "parity":
        return {"rows": list(rows.values()), "cold_order": [p.name for p in order]}

    emit("phase", index=index, phase="steady state")
    config = TimerConfig(**{**plan.timer.__dict__, "seed": rng.randrange(2**31),
                            "budget_s": plan.timer.budget_s if budget_s is None else budget_s})  # fmt: skip
    measurements = Timer(config).run(fns)
    for name, m in measurements.items():
        rows[name].update(
            samples=list(m.samples),
            loops=m.loops,
            stop_reason=m.stop_reason,
            loop_overhead_s=m.per_loop_overhead_s,
            fixed_overhead_s=m.fixed_overhead_s,
        )

    if spec.has_batch:
        emit("phase", index=index, phase="retrace")
        new_sizes = {**sizes, "batch": sizes["batch"] + 1}
        new_inputs = make_inputs(spec, new_sizes, dtype, plan.seed)
        for path in order:
            retrace_s, _ = time_once(binds[path.name](new_inputs))
            rows[path.name].update(retrace_s=retrace_s, retrace_batch=new_sizes["batch"])
    return {"rows": list(rows.values()), "cold_order": [p.name for p in order]}


if __name__ == "__main__":
    sys.exit(main())
