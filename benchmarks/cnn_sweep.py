"""A small CNN, saved as a user would, swept over batch 1…1024: the NumPy twin against every Keras path (issue 21).

    python benchmarks/cnn_sweep.py                 # --quick cells, 3 processes: about 3 minutes on 2 cores
    python benchmarks/cnn_sweep.py --full          # the default cell budget

1. builds and saves the CNN with Keras in a child process (this script never imports Keras): 28×28×1 input,
   Conv2D(8, 3, relu), MaxPooling2D(2), Conv2D(16, 3, relu), GlobalAveragePooling2D, Dense(10, softmax);
2. ``kbench run --model cnn.keras --batch 1,2,4,…,1024``: parity of every path against the generated NumPy twin,
   the timing table per batch and kbench's crossover sentence (below which batch NumPy is faster than every Keras
   path), printed as kbench prints them.
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
model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.MaxPooling2D(2), keras.layers.Conv2D(16, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
model.save(sys.argv[1])
"""
BATCHES = ",".join(str(2**k) for k in range(11))  # 1 … 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the default cell budget instead of --quick")
    parser.add_argument("--workdir", type=Path, default=None, help="where cnn.keras and the run folder go")
    args = parser.parse_args()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="kbench-cnn-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", BUILD, str(work / "cnn.keras")], check=True, env=env, cwd=work,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    cmd = [sys.executable, "-m", "kbench", "run", "--model", "cnn.keras", "--batch", BATCHES, "--no-report",
           *([] if args.full else ["--quick"]), "--out", str(work / "reports")]  # fmt: skip
    print("$ kbench run --model cnn.keras --batch " + BATCHES + ("" if args.full else " --quick"), flush=True)
    return subprocess.run(cmd, env=env, cwd=work).returncode


if __name__ == "__main__":
    sys.exit(main())
