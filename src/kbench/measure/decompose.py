"""Where the time goes: each Keras path's median split into the kernel, the conversions and the framework around them.

Every cell times, beside its call paths and in the same interleaved :class:`kbench.measure.timer.Timer` run (so they share
the machine's drift and the switch warm-up), a few **reference callables**. They are not call paths: they are not
parity-checked, never recommended, and never become result rows. Per backend:

=============  ===========================================================================================
reference      what one timed call runs
=============  ===========================================================================================
``kernel``     the *kernel floor*: the model's computation compiled by the backend, on inputs already resident
               in the backend, the output synchronised but not converted. TensorFlow: the ``tf.function`` of
               the model (the ``compiled`` path's own signature) on ``tf.constant`` inputs; JAX:
               ``jax.jit(stateless_call)`` on ``device_put`` arrays, ``block_until_ready``; torch: the model
               traced by ``torch.jit.trace`` (TorchScript runs its ops without Keras' Python), its no-op casts
               dropped and its weights frozen, called through ``forward`` on tensors on the cell's device;
               ``torch.compile(model)`` (``kernel_compile``) if tracing fails.
``kernel_xla`` TensorFlow only, when the ``xla`` path runs: the same with ``jit_compile=True``; ``xla``'s floor.
``to_backend`` NumPy -> backend for every input: TF ``tf.convert_to_tensor(x)``; torch
               ``torch.from_numpy(x).to(device)`` (the ``h2d`` hook); JAX: a jitted touch of every input
               (``keep_unused``) on the NumPy inputs, minus ``to_backend_base``, the same on resident ones.
``to_numpy``   backend -> NumPy for a result of the output's shape: TF ``y.numpy()`` (a copy every call); torch
               ``y.cpu().numpy()`` (the ``d2h`` hook); JAX: ``np.asarray`` of a fresh jitted result (``-y``: JAX
               caches an array's host copy, and forwards an identity's input), minus ``to_numpy_base``, the same
               result only synchronised. JAX converts inside its C++ dispatch far more cheaply than
               ``jax.device_put`` does alone, hence the differences.
``dispatch``   TF: an identity ``tf.function`` with the floor's signature on the same tensors; JAX uses
               ``to_backend_base``: the backend's own per-call cost, part of the floor (``dispatch_s``).
=============  ===========================================================================================

**Synchronisation.** TensorFlow runs eager ops and function calls synchronously on the CPU, so the floor's output
is complete when the call returns and nothing is added; on a GPU the floor ends with
``tf.test.experimental.sync_devices()`` (≈ 25 µs on this project's 2-core VM, which is why it is not used on the
CPU). JAX's ``block_until_ready`` and torch's ``torch.cuda.synchronize`` (a no-op on the CPU) are the backends' own.

**On a GPU** (JAX, torch) the conversions *are* the host <-> device copies, through the same backend hooks as the
``h2d`` and ``d2h`` transfer rows: ``conversion_in_s`` and ``conversion_out_s`` give every Keras row of the cell the
transfer cost in one number (the ``h2d``/``d2h`` rows stay, for ``--resident`` runs). On the CPU they degenerate
honestly: torch's ``from_numpy``/``.numpy()`` share memory (≈ 1 µs), JAX's may alias.

**The arithmetic** (:func:`decompose`): ``overhead = path - kernel - conversion_in - conversion_out`` (each a pooled
median). Its uncertainty comes from the medians' 95% CIs: each CI side is read as ~1.96 standard errors and the
sides that push the overhead the same way are added in quadrature, so ``overhead_low`` uses the path's low side
and the references' high sides. An overhead below zero is only shown as "within noise" when ``overhead_high`` is
still >= 0; the parts then add up to the path by construction.

The worker side (:func:`reference_fns`) imports the backend inside its functions; the rest is pure arithmetic and
text, cheap to import in the parent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

KERNEL, KERNEL_XLA, TO_BACKEND, TO_NUMPY = "kernel", "kernel_xla", "to_backend", "to_numpy"
KERNEL_COMPILE = "kernel_compile"  # torch's floor when the model cannot be traced: torch.compile of it
DISPATCH = "dispatch"  # a trivial compiled call on resident inputs: the backend's own per-call cost, inside the floor
BASE = "_base"  # "to_backend_base": what to subtract from "to_backend" when the conversion is timed as a difference
REFERENCE_WEIGHT = 0.5  # a reference's share of the cell's sampling budget, relative to a path's 1
COLUMNS = ("kernel_s", "kernel_floor", "conversion_in_s", "conversion_out_s", "overhead_s", "overhead_low_s",
           "overhead_high_s", "dispatch_s")  # fmt: skip
_PARTS = ("median_s", "kernel_s", "conversion_in_s", "conversion_out_s", "overhead_s", "overhead_low_s",
          "overhead_high_s")  # fmt: skip  (a Decomposition's fields, in order)
FLOOR_NAMES = {"tensorflow": "tf.function", "jax": "jax.jit", "torch": "torch.jit.trace", KERNEL_COMPILE: "torch.compile"}


# -- the arithmetic ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A median with its 95% CI, in seconds."""

    median: float
    low: float
    high: float

    @property
    def below(self) -> float:
        return max(self.median - self.low, 0.0)

    @property
    def above(self) -> float:
        return max(self.high - self.median, 0.0)


@dataclass(frozen=True)
class Decomposition:
    """One path's median as kernel + conversion in + conversion out + overhead (seconds)."""

    path_s: float
    kernel_s: float
    conversion_in_s: float
    conversion_out_s: float
    overhead_s: float
    overhead_low_s: float
    overhead_high_s: float
    dispatch_s: float = math.nan  # the part of kernel_s a trivial compiled call costs (nan: not measured)

    @property
    def conversion_s(self) -> float:
        return self.conversion_in_s + self.conversion_out_s

    @property
    def within_noise(self) -> bool:
        """The overhead's CI reaches zero: it cannot be told apart from none."""
        return self.overhead_low_s <= 0.0 <= self.overhead_high_s

    def shares(self) -> dict[str, float]:
        """Each part as a share of the path's median; an overhead below zero (within noise) counts as none, and the
        shares are then of the kernel and the conversion together, so they never pass 100%."""
        parts = {"kernel": self.kernel_s, "conversion": max(self.conversion_s, 0.0),
                 "overhead": max(self.overhead_s, 0.0)}  # fmt: skip
        total = sum(parts.values())
        return {k: v / total if total > 0 else math.nan for k, v in parts.items()}


def minus(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with each CI side added in quadrature (a conversion timed as the difference of two calls)."""
    median = a.median - b.median
    return Estimate(median, median - math.hypot(a.below, b.above), median + math.hypot(a.above, b.below))


def conversion(refs: Mapping[str, Estimate], name: str) -> Estimate | None:
    """A conversion's estimate: the reference itself, or minus its ``_base`` when the backend times it as a
    difference (JAX); None when it was not measured."""
    if name not in refs:
        return None
    return minus(refs[name], refs[name + BASE]) if name + BASE in refs else refs[name]


def decompose(path: Estimate, kernel: Estimate, conversion_in: Estimate, conversion_out: Estimate) -> Decomposition:
    """The path's median minus the kernel floor and the two conversions, with the CI propagated (module docstring)."""
    refs = (kernel, conversion_in, conversion_out)
    overhead = path.median - sum(r.median for r in refs)
    down = math.sqrt(path.below**2 + sum(r.above**2 for r in refs))
    up = math.sqrt(path.above**2 + sum(r.below**2 for r in refs))
    return Decomposition(path.median, kernel.median, conversion_in.median, conversion_out.median, overhead,
                         overhead - down, overhead + up)  # fmt: skip


def floor_of(backend: str, path: str) -> str:
    """Which reference is the path's kernel floor: ``kernel_xla`` for TensorFlow's ``xla``, else ``kernel``."""
    return KERNEL_XLA if backend == "tensorflow" and path == "xla" else KERNEL


def floor_label(backend: str, path: str) -> str:
    """The floor as the ``kernel_floor`` column names it: ``tf.function``, ``xla``, ``jax.jit``, ``torch.compile``."""
    return "xla" if floor_of(backend, path) == KERNEL_XLA else FLOOR_NAMES.get(backend, backend)


def decomposable(path: Any) -> bool:
    """A :class:`kbench.measure.callpaths.CallPath` whose median can be decomposed: a Keras host round trip."""
    return bool(path.uses_keras) and path.placement == "host" and not path.transfer


def row_columns(backend: str, path: str, measured: Estimate, refs: Mapping[str, Estimate]) -> dict[str, Any]:
    """The decomposition columns of one Keras row; empty when a reference it needs was not measured."""
    floor = floor_of(backend, path)
    floor = KERNEL_COMPILE if floor not in refs and KERNEL_COMPILE in refs else floor
    cin, cout = conversion(refs, TO_BACKEND), conversion(refs, TO_NUMPY)
    if floor not in refs or cin is None or cout is None:
        return {}
    d = decompose(measured, refs[floor], cin, cout)
    dispatch = refs.get(DISPATCH) or refs.get(TO_BACKEND + BASE)  # JAX's: the touch on resident inputs
    label = FLOOR_NAMES[KERNEL_COMPILE] if floor == KERNEL_COMPILE else floor_label(backend, path)
    return {"kernel_s": d.kernel_s, "kernel_floor": label, "conversion_in_s": d.conversion_in_s,
            "conversion_out_s": d.conversion_out_s, "overhead_s": d.overhead_s, "overhead_low_s": d.overhead_low_s,
            "overhead_high_s": d.overhead_high_s, "dispatch_s": dispatch.median if dispatch else math.nan}  # fmt: skip


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def from_row(row: Mapping[str, Any]) -> Decomposition | None:
    """A result row's decomposition, or None when it has none (NumPy, transfers, an older run)."""
    values = [_number(row.get(c)) for c in _PARTS]
    if any(math.isnan(v) for v in values):
        return None
    return Decomposition(*values, dispatch_s=_number(row.get("dispatch_s")))


# -- the presentation ----------------------------------------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _largest(d: Decomposition) -> tuple[str, float]:
    shares = d.shares()
    name = max(shares, key=lambda k: shares[k])
    return {"overhead": "framework overhead"}.get(name, name), shares[name]


def cell_sentence(where: str, decomps: Mapping[str, Decomposition], numpy_s: float = math.nan) -> str:
    """One sentence per cell about its fastest Keras path: where the largest share goes, the three shares, and the
    kernel alone against NumPy, e.g. "At n=1024, 48% of compiled goes to the kernel (kernel 48%, conversion 25%,
    framework overhead 27%); the kernel alone takes 0.65× NumPy's time"."""
    if not decomps:
        return ""
    path, d = min(decomps.items(), key=lambda kv: kv[1].path_s)
    name, share = _largest(d)
    shares = d.shares()
    split = ", ".join(f"{k} {_pct(shares[k])}" for k in ("kernel", "conversion", "overhead"))
    noise = "; the overhead is within noise" if d.within_noise else ""
    if d.overhead_high_s < 0:
        noise = "; the references exceed the path beyond their noise, so read these shares with care"
    if d.dispatch_s > 0 and d.path_s > 0:
        dispatch = min(d.dispatch_s, d.kernel_s) / d.path_s  # within the floor: never more of the path than it
        noise += f"; a trivial compiled call alone, the backend's dispatch, is {_pct(max(dispatch, 0.0))}"
    kernel_vs = ""
    if numpy_s > 0:
        kernel_vs = (f"; the kernel alone takes {d.kernel_s / numpy_s:.3g}× NumPy's time, "
                     f"the path {d.path_s / numpy_s:.3g}×")  # fmt: skip
    return f"At {where}, {_pct(share)} of {path} (the fastest Keras path) is {name} ({split}{noise}){kernel_vs}."


def text_bar(d: Decomposition, width: int = 8) -> str:
    """The path's time as a stacked bar of ``width`` characters: ``█`` kernel, ``▒`` conversion, ``░`` overhead
    (shares of the path's own median: paths 10,000× apart still show their split)."""
    shares = d.shares()
    if any(math.isnan(v) for v in shares.values()):
        return ""
    kernel, conv = round(shares["kernel"] * width), round(shares["conversion"] * width)
    rest = max(width - kernel - conv, 0) if shares["overhead"] > 0 else 0  # the bar always spans its width
    return "█" * kernel + "▒" * conv + "░" * rest


def signed_time(seconds: float, fmt: Callable[[float], str]) -> str:
    """``fmt`` for a time that may be negative (an overhead within noise): ``"−12 µs"``."""
    return f"−{fmt(-seconds)}" if seconds < 0 else fmt(seconds)


def overhead_text(d: Decomposition, fmt: Callable[[float], str]) -> tuple[str, str]:
    """(the overhead, its 95% interval); a negative overhead is always said to be within noise (or, when its whole
    interval is below zero, that the references exceed the path)."""
    span = f"{signed_time(d.overhead_low_s, fmt)}…{signed_time(d.overhead_high_s, fmt)}"
    if d.overhead_s >= 0:
        return fmt(d.overhead_s), span
    if d.within_noise:
        return "≈0 (noise)", span
    return f"{signed_time(d.overhead_s, fmt)} (refs > path)", span


@dataclass(frozen=True)
class PartsRow:
    """One Keras path's decomposition, as shown."""

    path: str
    total: str
    kernel: str
    floor: str
    conversion: str  # in + out
    overhead: str  # "≈0 (noise)" when below zero within noise
    overhead_ci: str
    bar: str


@dataclass(frozen=True)
class Breakdown:
    """One cell's "where the time goes": a row per Keras path, NumPy's time beside them, and one sentence."""

    numpy: str
    rows: tuple[PartsRow, ...] = ()
    sentence: str = ""
    model: str = ""  # the cell's model label (by backend when several ran), to place the sentence in the report


def breakdown(rows: Sequence[Mapping[str, Any]], where: str, baseline: str = "numpy", model: str = "") -> Breakdown:
    """The breakdown of one cell's result rows (``where``: its sizes label, for the sentence)."""
    from kbench.core.fmt import fmt_time, visible

    decomps = {str(r["path"]): d for r in rows if (d := from_row(r)) is not None}
    if not decomps:
        return Breakdown("", model=visible(model))
    numpy_s = next((float(r["median_s"]) for r in rows if r["path"] == baseline), math.nan)
    floors = {str(r["path"]): visible(r.get("kernel_floor")) for r in rows}
    shown = tuple(PartsRow(visible(p), fmt_time(d.path_s), fmt_time(d.kernel_s), floors.get(p, ""),
                           signed_time(d.conversion_s, fmt_time), *overhead_text(d, fmt_time), text_bar(d))
                  for p, d in decomps.items())  # fmt: skip
    return Breakdown(fmt_time(numpy_s), shown, visible(cell_sentence(where, decomps, numpy_s)), visible(model))


def cell_breakdowns(df: Any, keys: Sequence[str]) -> tuple[Breakdown, ...]:
    """One :class:`Breakdown` per cell of a results DataFrame, grouped and ordered as the cell tables are."""
    out = []
    for _, g in df.groupby(list(keys), sort=False, dropna=False):
        records = g.to_dict("records")
        first = records[0]
        out.append(breakdown(records, str(first.get("sizes", "")), model=str(first.get("model", ""))))
    return tuple(out)


# -- the worker side: the reference callables ----------------------------------------------------------------------


Fn = Callable[[], Any]


def reference_fns(backend: str, ctx: Any, build_model: Callable[[], Any], inputs: Sequence[np.ndarray],
                  output: np.ndarray, with_xla: bool) -> dict[str, Fn]:  # fmt: skip
    """The cell's reference callables (worker only; each model is a fresh one from ``build_model``)."""
    if backend == "tensorflow":
        return _tensorflow_refs(ctx, build_model, inputs, output, with_xla)
    if backend == "jax":
        return _jax_refs(ctx, build_model, inputs, output)
    from kbench import backends

    entry = backends.find(backend)
    if entry is None or entry.resident is None:
        return {}
    ops = entry.resident.open()
    xs, y = ops.place(list(inputs)), ops.place([output])[0]
    floor, call = _torch_floor(ctx, build_model(), xs) if backend == "torch" else (KERNEL, None)
    call = call or _resident_call(backend, ctx, build_model())
    sync, place, to_host = ops.sync, ops.place, ops.to_host
    return {floor: lambda: sync(call(xs)), TO_BACKEND: lambda: sync(place(inputs)[-1]), TO_NUMPY: lambda: to_host(y)}


def _torch_floor(ctx: Any, model: Any, xs: list[Any]) -> tuple[str, Callable[[list[Any]], Any]]:
    """torch's floor: the model traced by TorchScript (``torch.jit.trace`` under ``no_grad``), which runs the ops
    without Keras' Python around them, its no-op casts dropped (:func:`_drop_noop_casts`) and its weights frozen
    into constants (``torch.jit.freeze``, numerics untouched), called through its ``forward`` method: no
    ``nn.Module.__call__`` and no ``no_grad`` context around each call, as a bare traced op is called. Frozen
    constants do not require grad; a floor whose output still would is wrapped in ``no_grad``. ``torch.compile`` of
    the model (its Dynamo guards included) when tracing fails (a model whose ops branch in Python)."""
    import torch

    multi = len(xs) > 1

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *a: Any) -> Any:
            return self.model(list(a) if multi else a[0], training=False)

    try:
        with torch.no_grad():
            traced = torch.jit.trace(Traced(), tuple(xs), check_trace=False)
    except Exception:  # any tracing failure: fall back to the compiled floor, named as such in the rows
        return KERNEL_COMPILE, _resident_call("torch", ctx, model)
    forward = _frozen_forward(torch, traced)
    if getattr(forward(*xs), "requires_grad", True):
        return KERNEL, torch.no_grad()(lambda ts: forward(*ts))
    return KERNEL, lambda ts: forward(*ts)


def _frozen_forward(torch: Any, traced: Any) -> Callable[..., Any]:
    """The traced module's ``forward`` with no-op casts dropped and weights frozen; the traced ``forward`` as it is
    where either pass fails (a graph TorchScript cannot freeze is still the model's computation, only with
    ``GetAttr`` reads of its weights)."""
    try:
        with torch.no_grad():
            _drop_noop_casts(torch, traced.graph)
            return torch.jit.freeze(traced.eval(), optimize_numerics=False).forward
    except Exception:
        return traced.forward


def _drop_noop_casts(torch: Any, graph: Any) -> int:
    """Remove from a traced graph every ``aten::to`` that returns its input: ``copy=False`` and the traced input's
    dtype, device, sizes and strides unchanged. Keras' ``convert_to_tensor`` traces to one or two per tensor
    (six around a matmul of two inputs, ~0.7 µs each here); TensorFlow and JAX drop such casts when they trace, so
    the floor of every backend is the computation alone. Returns how many were dropped."""
    torch._C._jit_pass_inline(graph)
    dropped = 0
    for node in list(graph.nodes()):
        if node.kind() != "aten::to" or not _returns_input(node):
            continue
        node.output().replaceAllUsesWith(node.inputsAt(0))
        node.destroy()
        dropped += 1
    torch._C._jit_pass_dce(graph)
    return dropped


def _returns_input(node: Any) -> bool:
    """An ``aten::to`` node (any overload) with ``copy=False`` whose traced output type equals its input's."""
    try:
        copy = node.namedInput("copy")
    except RuntimeError:  # an overload without a copy argument
        return False
    if copy.node().kind() != "prim::Constant" or copy.toIValue() is not False:
        return False
    a, b = node.inputsAt(0).type(), node.output().type()
    try:
        same = [a.scalarType(), a.device(), a.sizes(), a.strides()] == [b.scalarType(), b.device(), b.sizes(), b.strides()]
    except (AttributeError, RuntimeError):  # not a tensor type, or an incomplete one
        return False
    return same and a.scalarType() is not None


def _jax_refs(ctx: Any, build_model: Callable[[], Any], inputs: Sequence[np.ndarray],
              output: np.ndarray) -> dict[str, Fn]:  # fmt: skip
    """JAX converts inside its C++ dispatch far more cheaply than the ``jax.device_put`` API does alone (≈ 30 µs
    per array here, more than a whole n=100 ``compiled`` call), so each conversion is timed as a difference: a
    jitted function that touches every input (``keep_unused``) on NumPy inputs minus the same on resident ones;
    ``np.asarray`` of a fresh jitted result minus the same result only synchronised."""
    import jax

    from kbench.backends.jax import open_device

    ops = open_device()
    jitted = _resident_call("jax", ctx, build_model())
    xs, y = ops.place(list(inputs)), ops.place([output])[0]
    touch = jax.jit(lambda *a: a[0].ravel()[0], keep_unused=True)
    fresh = jax.jit(lambda a: -a)  # a new array each call (an identity would be forwarded, its host copy cached)
    return {
        KERNEL: lambda: jitted(xs).block_until_ready(),
        TO_BACKEND: lambda: touch(*inputs).block_until_ready(),
        TO_BACKEND + BASE: lambda: touch(*xs).block_until_ready(),
        TO_NUMPY: lambda: np.asarray(fresh(y)),
        TO_NUMPY + BASE: lambda: fresh(y).block_until_ready(),
    }


def _resident_call(backend: str, ctx: Any, model: Any) -> Callable[[list[Any]], Any]:
    from kbench.measure import callpaths

    if backend == "jax":
        jitted = callpaths._jax_jitted(ctx, model)
        return lambda xs: jitted(*xs)
    if backend == "torch":
        return callpaths._torch_callable(ctx, model, compiled=True)
    raise ValueError(f"no kernel floor for backend {backend!r}")


def _tensorflow_refs(ctx: Any, build_model: Callable[[], Any], inputs: Sequence[np.ndarray], output: np.ndarray,
                     with_xla: bool) -> dict[str, Fn]:  # fmt: skip
    import tensorflow as tf

    sync = _tf_sync(tf)
    ts = [tf.constant(x) for x in inputs]
    y = tf.constant(output)
    multi = len(ts) > 1
    refs: dict[str, Fn] = {
        KERNEL: _tf_floor(tf, ctx, build_model(), ts, sync, jit_compile=False),
        DISPATCH: _tf_floor(tf, ctx, lambda x, training: tf.identity(x[0] if multi else x), ts, sync, False),
        TO_BACKEND: lambda: [tf.convert_to_tensor(x) for x in inputs],
        TO_NUMPY: lambda: y.numpy(),
    }
    if with_xla:
        refs[KERNEL_XLA] = _tf_floor(tf, ctx, build_model(), ts, sync, jit_compile=True)
    return refs


def _tf_sync(tf: Any) -> Callable[[Any], Any]:
    if not tf.config.list_logical_devices("GPU"):
        return lambda y: y  # eager TensorFlow is synchronous on the CPU

    def sync(y: Any) -> Any:
        tf.test.experimental.sync_devices()
        return y

    return sync


def _tf_floor(tf: Any, ctx: Any, model: Any, ts: list[Any], sync: Callable[[Any], Any], jit_compile: bool) -> Fn:
    signature = [tf.TensorSpec((None, *t.resolve(ctx.sizes)[1:]), dtype=t.dtype_for(ctx.dtype), name=t.name)
                 for t in ctx.spec.inputs]  # fmt: skip
    multi = len(signature) > 1

    def forward(*xs):
        return model(list(xs) if multi else xs[0], training=False)

    fn = tf.function(forward, input_signature=signature, jit_compile=jit_compile)
    return lambda: sync(fn(*ts))



# -- the parent side: result rows ----------------------------------------------------------------------------------


def reference_estimates(per_process: Sequence[Sequence[Any]]) -> dict[str, Estimate]:
    """Each reference's pooled median and 95% CI (:func:`kbench.core.stats.summarize`) from every process's
    :class:`kbench.measure.protocol.Reference` records; a reference some process lacks is left out."""
    from kbench.core import stats

    by_name: dict[str, list[tuple[float, ...]]] = {}
    for refs in per_process:
        for r in refs:
            if r.samples:
                by_name.setdefault(r.name, []).append(tuple(r.samples))
    out = {}
    for name, samples in by_name.items():
        if len(samples) == len(per_process):
            s = stats.summarize(samples)
            out[name] = Estimate(s.median, s.ci_low, s.ci_high)
    return out


def annotate(rows: list[dict], per_process: Sequence[Sequence[Any]], backend: str) -> None:
    """Add the decomposition columns to every Keras host row of one cell (in place)."""
    from kbench.measure.callpaths import PATHS

    refs = reference_estimates(per_process) if per_process else {}
    if not refs:
        return
    for row in rows:
        path = PATHS.get(row["path"])
        median = row.get("median_s")
        if path is None or not decomposable(path) or median is None or not median > 0:
            continue
        row.update(row_columns(backend, row["path"], Estimate(median, row["ci_low_s"], row["ci_high_s"]), refs))
