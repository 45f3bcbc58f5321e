#!/usr/bin/env bash
# GPU check for the JAX and PyTorch backends, for a machine with CUDA JAX and PyTorch but no TensorFlow and no
# internet (the project's lent H100/H200 machines: Python 3.12, jax, torch, pandas, seaborn, rich... installed).
#
#   here (with internet):   bash benchmarks/gpu_check.sh wheels     # downloads what that machine lacks into .whl/
#   there (carry .whl):     bash benchmarks/gpu_check.sh run        # about 4 minutes; prints the tables
#
# `run` installs kbench and the pure-Python pieces it lacks into /tmp/site (no network), then runs the dense sweep
# on the GPU with both backends, every path timed two ways (host round trip and device-resident) and the
# transfers timed apart, under a 4-minute budget. Nothing else in the project needs a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-run}" in
wheels)
  rm -rf .whl && mkdir -p .whl
  python3 -m pip wheel --no-deps -q -w .whl .   # kbench itself (pure Python)
  for spec in keras==3.15.1 namex optree typer==0.29.2 pydantic pydantic-core annotated-types typing-inspection; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl "$spec"
  done
  ls -la .whl
  ;;
run)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 COLUMNS=120
  python3 -m kbench run --model dense --backend jax,torch --device gpu --resident --sweep --budget 4m \
    --cell-budget 2 --no-report --out "${OUT:-/tmp}/reports"
  ;;
*) echo "usage: $0 wheels|run" >&2; exit 2 ;;
esac
