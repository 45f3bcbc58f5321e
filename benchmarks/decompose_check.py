"""Is kbench's floor the backend's raw op? matmul's ``floor_s`` against the bare op timed apart.

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
- torch: ``torch.jit.trace(torch.matmul)(a, b)`` on tensors with grad disabled: through TorchScript, as kbench's
  floor (the traced model's ``forward``) runs; the bare ``torch.matmul`` skips the interpreter's few µs a call.

``timeit``: calls per repeat from ``autorange`` (>= 0.2 s), 15 repeats, the median per call. The check runs
``--processes`` (5) rounds, each a fresh raw-op process per n and then one kbench worker process, and compares the
median of the kbench floors with the median of the raw ops: one process's median of a ~60 µs call moves by 10-30%
from process to process on this shared VM (the "spread" columns), and alternating the two keeps a burst of load from
landing on one side only. It passes when every floor lies within ±10% of its raw op.

Two runs on the shared 2-core VM (AMD EPYC, load ~1, 2026-11-26, 5 rounds each, ~6 min); the second:

    backend         n      floor     raw op  floor/raw  spread floor/raw   compiled  floor           within ±10%
    tensorflow    100     395 µs     421 µs     0.939×  -20/+15% / -12/+6%    529 µs  tf.function     yes
    tensorflow   1024    11.3 ms    11.6 ms     0.974×  -4/+14% / -3/+1%    13.7 ms  tf.function     yes
    jax           100    71.8 µs      77 µs     0.932×  -13/+26% / -13/+5%    107 µs  jax.jit         yes
    jax          1024      11 ms    11.3 ms     0.972×  -2/+10% / -1/+7%    11.7 ms  jax.jit         yes
    torch         100    22.4 µs    23.7 µs     0.945×  -4/+24% / -12/+9%    112 µs  torch.jit.trace yes
    torch        1024    13.9 ms    13.1 ms     1.063×  -7/+37% / -13/+6%   14.9 ms  torch.jit.trace yes

and the first: tensorflow 0.926x / 1.045x, jax 0.964x / 1.023x, torch 1.059x / 1.009x (n = 100 / 1024).

Until then torch's floor read 1.04-1.57x at n = 100: it called the traced Keras model as a module under a
``no_grad`` context, with the six ``aten::to`` casts Keras' ``convert_to_tensor`` traces (no-ops here, ~0.7 µs
each), ``nn.Module.__call__`` (~3 µs) and the context (~1 µs) on top of the op. TensorFlow and JAX drop such casts
when they trace; torch's floor now drops them too, freezes the weights and calls ``forward``. And the check timed
the raw op in 3 processes before and 3 after one kbench run: JAX at n = 100 read 1.17x, 0.88x and 1.31x in three
runs, the last while a burst slowed the whole kbench run (its ``compiled`` 111 µs against 95-100 µs in the others)
and neither raw side.

Before the quiesce, n = 1024 read 1.75x (TensorFlow), 1.79x (JAX) and 2.07x (torch): NumPy's OpenBLAS threads spin
~0.1 s after the twin's multithreaded GEMM, and a backend matmul started in that window on 2 cores took twice its
time (untimed calls after the switch did not help, a 200 ms pause or ``OPENBLAS_THREAD_TIMEOUT=4`` did). The timer
now waits for the process's other threads to go idle after a visit that kept them busy (``kbench.measure.timer.quiesce``).

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
from kbench.core.fmt import fmt_time

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


def kbench_floors(backend: str, ns: list[int], cell_budget: float) -> dict[int, tuple[float, float, str]]:
    """One kbench run in one worker process: each n's ``(floor_s, compiled median_s, floor_name)``."""
    plan = kbench.plan("matmul", sizes={"n": ",".join(map(str, ns))}, backends=backend, paths="numpy,compiled",
                       quick=True, cell_budget=cell_budget, processes=1, command="benchmarks/decompose_check.py")  # fmt: skip
    df = kbench.run(plan, None).results
    rows = df[df["path"] == "compiled"]
    return {n: (r["floor_s"], r["median_s"], r["floor_name"]) for n in ns for _, r in rows[rows["size_n"] == n].iterrows()}


def _check(backend: str, args: argparse.Namespace) -> list[str]:
    """``--processes`` rounds of: a raw-op process per n, then one kbench worker process; medians over rounds."""
    ns = [int(v) for v in args.n.split(",")]
    raws: dict[int, list[float]] = {n: [] for n in ns}
    floors: dict[int, list[tuple[float, float, str]]] = {n: [] for n in ns}
    for _ in range(args.processes):
        for n in ns:
            raws[n].append(raw_op(backend, n))
        for n, got in kbench_floors(backend, ns, args.cell_budget).items():
            floors[n].append(got)
    lines = []
    for n in ns:
        floor = statistics.median(f[0] for f in floors[n])
        raw = statistics.median(raws[n])
        ratio = floor / raw
        spread = f"{_spread(f[0] for f in floors[n])} / {_spread(raws[n])}"
        verdict = "yes" if abs(ratio - 1) <= 0.10 else "NO"
        lines.append(f"{backend:<11}{n:>6}{fmt_time(floor):>11}{fmt_time(raw):>11}{ratio:>10.3f}×  {spread:<17}"
                     f"{fmt_time(statistics.median(f[1] for f in floors[n])):>10}  {floors[n][0][2]:<16}{verdict}")  # fmt: skip
    return lines


def _spread(values) -> str:
    """The per-process medians' range as +-% of their median."""
    v = sorted(values)
    mid = statistics.median(v)
    return f"-{100 * (1 - v[0] / mid):.0f}/+{100 * (v[-1] / mid - 1):.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="tensorflow,jax,torch")
    ap.add_argument("--n", default="100,1024")
    ap.add_argument("--cell-budget", type=float, default=3.0)
    ap.add_argument("--processes", type=int, default=5,
                    help="rounds: each a fresh raw-op process per n, then one kbench worker process")
    args = ap.parse_args()
    print(f"{'backend':<11}{'n':>6}{'floor':>11}{'raw op':>11}{'floor/raw':>11}  {'spread floor/raw':<17}"
          f"{'compiled':>10}  {'floor':<16}within ±10%")  # fmt: skip
    lines = []
    for backend in args.backend.split(","):
        for line in _check(backend, args):
            print(line, flush=True)
            lines.append(line)
    sys.exit(1 if any(line.endswith("NO") for line in lines) else 0)


if __name__ == "__main__":
    main()
