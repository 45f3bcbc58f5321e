"""Bring your own model: a user's MLP saved as a .keras file, timed on every call path and exported to NumPy.

    python benchmarks/byom_mlp.py [--quick] [--workdir DIR]

1. builds and saves the MLP (Dense 64 relu, LayerNormalization, Dense 10 softmax; 32 input features) with Keras
   in a child process (this script never imports Keras);
2. ``kbench run --model mlp.keras --batch 1,32,1024``: parity of every path against the generated NumPy twin, and
   the timing table;
3. ``kbench export mlp.keras --out mlp_numpy.py``: the NumPy module, checked against Keras, timed at batch 1 next
   to the fastest Keras path, with the batch where Keras catches up;
4. imports the exported module in a fresh process without Keras and prints its time at batch 1 (timeit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BUILD = """
import sys, keras
model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.LayerNormalization(), keras.layers.Dense(10, activation="softmax")])
model.save(sys.argv[1])
"""

TIME_EXPORT = """
import sys, timeit
import numpy as np
sys.path.insert(0, sys.argv[1])
import mlp_numpy
x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
n = 20000
best = min(timeit.repeat(lambda: mlp_numpy.predict(x), number=n, repeat=7)) / n
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "jax", "torch"))
print(f"exported module, fresh process, batch 1: predict {best * 1e6:.1f} us per call (timeit, best of 7); "
      f"backends imported: {loaded or 'none'}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="kbench run --quick --processes 1 (a rough, fast run)")
    parser.add_argument("--workdir", type=Path, default=None, help="where mlp.keras, the reports and the module go")
    args = parser.parse_args()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="kbench-byom-"))).resolve()  # the commands run in it
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    model = work / "mlp.keras"
    subprocess.run([sys.executable, "-c", BUILD, str(model)], env=env, check=True, capture_output=True)
    print(f"saved {model.name} in {work}", flush=True)
    kbench = [sys.executable, "-m", "kbench"]
    quick = ["--quick", "--processes", "1"] if args.quick else []
    run = subprocess.run([*kbench, "run", "--model", str(model), "--batch", "1,32,1024", "--out", str(work / "reports"),
                          *quick], cwd=work)  # fmt: skip
    export = subprocess.run([*kbench, "export", str(model), "--out", str(work / "mlp_numpy.py")], cwd=work)
    clean = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    subprocess.run([sys.executable, "-c", TIME_EXPORT, str(work)], env=clean, check=True)
    return run.returncode or export.returncode


if __name__ == "__main__":
    sys.exit(main())
