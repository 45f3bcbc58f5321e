"""Where the time goes, the worker side: the reference callables each cell times beside its call paths.

Every cell times, beside its call paths and in the same interleaved :class:`kbench.measure.timer.Timer` run (so they
share the machine's drift and the switch warm-up), a few **reference callables**. They are not call paths: they are
not parity-checked, never recommended, and never become result rows; each gets :data:`REFERENCE_WEIGHT` of a path's
share of the sampling budget. Per backend:

=============  ===========================================================================================
reference      what one timed call runs
=============  ===========================================================================================
``kernel``     the *floor*: the model's computation compiled by the backend, on inputs already resident
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
``dispatch``   TF: the floor's own ``tf.function`` on an empty batch (an identity ``tf.function`` where the
               model takes none: ``kbench.backends.tensorflow.dispatch_of``); JAX uses ``to_backend_base``:
               the backend's own per-call cost, part of the floor (``dispatch_s``); the floor less it is the
               row's ``compute_s`` without a profiler. Beside ``kernel_xla``, ``dispatch_xla`` is the same for
               the ``xla`` floor (an XLA call dispatches more cheaply than a plain function). torch has none.
=============  ===========================================================================================

**Synchronisation.** TensorFlow runs eager ops and function calls synchronously on the CPU, so the floor's output
is complete when the call returns and nothing is added; on a GPU the floor ends with
``tf.test.experimental.sync_devices()`` (≈ 25 µs on this project's 2-core VM, which is why it is not used on the
CPU). JAX's ``block_until_ready`` and torch's ``torch.cuda.synchronize`` (a no-op on the CPU) are the backends' own.

**On a GPU** (JAX, torch) the conversions *are* the host <-> device copies, through the same backend hooks as the
``h2d`` and ``d2h`` transfer rows. On the CPU they degenerate honestly: torch's ``from_numpy``/``.numpy()`` share
memory (≈ 1 µs), JAX's may alias.

**Profiled floors.** After the steady state, a backend with a profiler (TensorFlow's ``tf.profiler``) runs each floor in
:data:`PROFILE_SESSIONS` short sessions, each after the threads left spinning went idle and an unprofiled warm-up: the
union of its kernel op events per call is the row's ``compute_s`` (``compute_from`` ``profiler``). Wall clocks alone
(the floor minus an identity call) put TensorFlow's compute for a Dense layer at batch 1 and 32 at 1.7-3.5x the
profiler's kernels: a Keras model's function also reads its variables and runs more ops than an identity, which is
dispatch, not arithmetic; minus the floor on an empty batch, 1.2-1.5x.

Each backend builds its own references (``Backend.references`` in :mod:`kbench.backends.tensorflow`,
:mod:`kbench.backends.jax`, :mod:`kbench.backends.torch`); a backend without them has no decomposition. The parent
splits each Keras row's median into these parts (:mod:`kbench.analysis.decompose`) and shows them
(:mod:`kbench.present.decompose`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kbench import backends
from kbench.backends.base import Fn

REFERENCE_WEIGHT = 0.5  # a reference's share of the cell's sampling budget, relative to a path's 1
PROFILE_SESSIONS = 3  # profiler sessions per floor and process: their per-call kernel times are the samples
PROFILE_SESSION_S = 0.03  # the calls of one session last about this long (3 to 50 calls)
PROFILE_QUIESCE_MAX_S = 0.5  # before each session, wait at most this long for threads left spinning


def decomposable(path: Any) -> bool:
    """A :class:`kbench.measure.callpaths.CallPath` whose median can be decomposed: a Keras host round trip (not a
    serving runtime: the backend's floor is not what it runs)."""
    runtime = getattr(path, "runtime", False)
    return bool(path.uses_keras) and path.placement == "host" and not path.transfer and not runtime


def reference_fns(backend: str, ctx: Any, build_model: Callable[[], Any], inputs: Sequence[np.ndarray],
                  output: np.ndarray, with_xla: bool) -> dict[str, Fn]:  # fmt: skip
    """The cell's reference callables, built by the backend's ``references`` (worker only; each model is a fresh
    one from ``build_model``); none for a backend without them."""
    entry = backends.find(backend)
    if entry is None or entry.references is None:
        return {}
    return entry.references(ctx, build_model, inputs, output, with_xla)


def _session(profile: Callable[[Fn, int], float], fn: Fn, calls: int) -> float:
    """One profiler session, once the threads the work before left spinning are idle
    (:func:`kbench.measure.timer.wait_quiet`) and ``fn`` has run ``calls`` times unprofiled (the switch warm-up of
    :mod:`kbench.measure.timer`): right after a NumPy GEMM's visit, OpenBLAS's spinning threads made a matmul's
    kernels at n = 1024 read 11.4 ms per call under the profiler against 7.0 ms in a fresh process."""
    from kbench.measure.timer import wait_quiet

    wait_quiet(PROFILE_QUIESCE_MAX_S)
    for _ in range(calls):
        fn()
    return profile(fn, calls)


def profiled(backend: str, refs: Mapping[str, Fn], medians: Mapping[str, float]) -> tuple[Any, ...]:
    """Each floor's kernel time under the backend's profiler (``profiled_<floor>`` references: one sample per
    session, seconds per call), after the steady state so the profiler never disturbs a timed sample; none for a
    backend without a profiler or a session that yields nothing. ``medians``: each floor's steady-state median,
    which sizes the sessions."""
    from kbench.backends.base import FLOORS, PROFILED
    from kbench.measure.protocol import Reference

    entry = backends.find(backend)
    if entry is None or entry.profile is None:
        return ()
    out = []
    for name in (n for n in FLOORS if n in refs and medians.get(n, 0) > 0):
        calls = int(min(max(PROFILE_SESSION_S / medians[name], 3), 50))
        sessions = (_session(entry.profile, refs[name], calls) for _ in range(PROFILE_SESSIONS))
        seconds = tuple(s for s in sessions if s > 0)
        if seconds:
            out.append(Reference(PROFILED + name, seconds, calls))
    return tuple(out)
