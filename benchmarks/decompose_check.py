"""Is kbench's kernel floor the backend's raw op? matmul's ``kernel_s`` against the bare op timed apart.

    python benchmarks/decompose_check.py                       # n = 100 and 1024, tensorflow, jax, torch; ~6 min
    python benchmarks/decompose_check.py --backend tensorflow --n 1024

For each backend, ``kbench.run`` measures the matmul model (``keras.ops.matmul`` of two (n, n) float32 matrices)
with its references, nothing written; fresh child processes time the raw op with ``timeit`` on inputs already
resident in the backend, output synchronised, not converted:

- tensorflow: ``tf.function(lambda p, q: tf.matmul(p, q))(a, b)`` with the floor's relaxed ``input_signature`` on
  ``tf.constant`` inputs (no sync needed on the CPU). Not ``tf.function(tf.matmul)``: binding a call to
  ``tf.matmul``'s ten keyword parameters costs that function ~350 µs a call here (650 against 297 µs at n = 100),
  a cost no model's function pays;
- jax: ``jax.jit(jnp.matmul)(a, b).block_until_ready()`` on ``device_put`` arrays;
- torch: ``torch.jit.trace(torch.matmul)(a, b)`` on tensors under ``no_grad``: through TorchScript's interpreter,
  as kbench's floor (the traced model) runs; the bare ``torch.matmul`` skips the interpreter's few µs a call.

``timeit``: calls per repeat from ``autorange`` (>= 0.2 s), 15 repeats, the median per call, in ``--processes`` (3)
fresh processes before and as many after the backend's kbench run (itself ``--processes`` worker processes); the
check passes when the floor lies within ±10% of the mean of the before and after medians. One process's median
of a TensorFlow or torch call moves by ±10% from process to process on this VM, so one process on each side
cannot settle ±10%.

Two runs on the shared 2-core VM (AMD EPYC, load ~1, 2026-11-26), with the timer's quiesce (below); the second:

    backend         n       floor raw before  raw after  floor/raw    compiled  floor         within ±10%
    tensorflow    100      312 µs     316 µs     320 µs     0.980×      418 µs  tf.function   yes
    tensorflow   1024     11.9 ms    11.1 ms    10.9 ms     1.080×     13.4 ms  tf.function   yes
    jax           100     58.2 µs    65.1 µs      68 µs     0.875×      101 µs  jax.jit       NO
    jax          1024     10.1 ms    10.7 ms    10.6 ms     0.947×       11 ms  jax.jit       yes
    torch         100     32.7 µs    20.2 µs    21.4 µs     1.574×      185 µs  torch.jit.trace NO
    torch        1024       14 ms    12.4 ms      12 ms     1.146×       15 ms  torch.jit.trace NO

and the first: tensorflow 0.958x / 0.997x, jax 1.173x / 0.983x, torch 1.043x / 1.088x (n = 100 / 1024). torch's
floor is the Keras model traced: six ``aten::to`` casts (Keras' ``convert_to_tensor``) run before its
``aten::matmul``, a few µs the bare op does not pay; that run's torch cell was slow throughout (``compiled`` 185 µs
against 101-114 µs in the other runs).

Before the quiesce, n = 1024 read 1.75x (TensorFlow), 1.79x (JAX) and 2.07x (torch): NumPy's OpenBLAS threads spin
~0.1 s after the twin's multithreaded GEMM, and a backend matmul started in that window on 2 cores took twice its
time (untimed calls after the switch did not help, a 200 ms pause or ``OPENBLAS_THREAD_TIMEOUT=4`` did). The timer
now waits for the process's other threads to go idle after a visit that kept them busy (``kbench.timer.quiesce``).

TensorFlow's raw op was ``tf.function(tf.matmul)`` until that same day: it read 0.48x at n = 100, because binding
``tf.matmul``'s keyword parameters costs that function ~350 µs a call here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import kbench
from kbench.fmt import fmt_time

RAW = {
    "tensorflow": """
import tensorflow as tf
a, b = tf.constant(x), tf.constant(x.T.copy())
spec = tf.TensorSpec((None, x.shape[1]), tf.float32)  # the floor's relaxed signature: same dispatch path
f = tf.function(lambda p, q: tf.matmul(p, q), input_signature=[spec, spec])  # not tf.function(tf.matmul): below
call = lambda: f(a, b)
""",
    "jax": """
import jax, jax.numpy as jnp
a, b = jax.device_put(x), jax.device_put(x.T.copy())
f = jax.jit(jnp.matmul)
call = lambda: f(a, b).block_until_ready()
""",
    "torch": """
import torch
torch.set_grad_enabled(False)
a, b = torch.from_numpy(x), torch.from_numpy(x.T.copy())
f = torch.jit.trace(torch.matmul, (a, b))  # through TorchScript, as the floor (the traced model) runs
call = lambda: f(a, b)
""",
}
TIMEIT = """
import json, statistics, sys, timeit
import numpy as np
x = np.random.default_rng(0).standard_normal(({n}, {n})).astype(np.float32)
{setup}
for _ in range(20):
    call()
t = timeit.Timer(call)
number = max(1, t.autorange()[0])
runs = t.repeat(repeat=15, number=number)
print(json.dumps({{"median_s": statistics.median(runs) / number, "number": number}}))
"""


def raw_op(backend: str, n: int) -> float:
    """The raw op's median per call, timed in a fresh child process (GPUs hidden, JAX on the CPU)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = TIMEIT.format(n=n, setup=RAW[backend])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["median_s"])


def _raw(backend: str, n: int, processes: int) -> float:
    """The median of the raw op's per-process medians over ``processes`` fresh processes."""
    return statistics.median(raw_op(backend, n) for _ in range(processes))


def _check(backend: str, args: argparse.Namespace) -> list[str]:
    """Raw op (children), kbench run, raw op again: the floor against the mean of the two raw timings."""
    ns = [int(v) for v in args.n.split(",")]
    before = {n: _raw(backend, n, args.processes) for n in ns}
    plan = kbench.plan("matmul", sizes={"n": args.n}, backends=backend, paths="numpy,compiled", quick=True,
                       cell_budget=args.cell_budget, processes=args.processes,
                       command="benchmarks/decompose_check.py")  # fmt: skip
    df = kbench.run(plan, None).results
    after = {n: _raw(backend, n, args.processes) for n in ns}
    lines = []
    for n in ns:
        r = df[(df["path"] == "compiled") & (df["size_n"] == n)].iloc[0]
        raw = (before[n] + after[n]) / 2
        ratio = r["kernel_s"] / raw
        verdict = "yes" if abs(ratio - 1) <= 0.10 else "NO"
        lines.append(f"{backend:<11}{n:>6}{fmt_time(r['kernel_s']):>12}{fmt_time(before[n]):>11}{fmt_time(after[n]):>11}"
                     f"{ratio:>10.3f}×  {fmt_time(r['median_s']):>10}  {r['kernel_floor']:<14}{verdict}")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="tensorflow,jax,torch")
    ap.add_argument("--n", default="100,1024")
    ap.add_argument("--cell-budget", type=float, default=3.0)
    ap.add_argument("--processes", type=int, default=3,
                    help="kbench's worker processes, and fresh processes for the raw op before and after")
    args = ap.parse_args()
    print(f"{'backend':<11}{'n':>6}{'floor':>12}{'raw before':>11}{'raw after':>11}{'floor/raw':>11}  "
          f"{'compiled':>10}  {'floor':<14}within ±10%")  # fmt: skip
    lines = []
    for backend in args.backend.split(","):
        for line in _check(backend, args):
            print(line, flush=True)
            lines.append(line)
    sys.exit(1 if any(line.endswith("NO") for line in lines) else 0)


if __name__ == "__main__":
    main()
