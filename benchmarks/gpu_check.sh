#!/usr/bin/env bash
# GPU check for the JAX and PyTorch backends, for a machine with CUDA JAX and PyTorch but no TensorFlow and no
# internet (the project's lent H100/H200 machines: Python 3.12, jax, torch, pandas, seaborn, rich... installed).
#
#   here (with internet):   bash benchmarks/gpu_check.sh wheels     # downloads what that machine lacks into .whl/
#   there (carry .whl):     bash benchmarks/gpu_check.sh run        # about 5 minutes; prints the tables
#                           bash benchmarks/gpu_check.sh run matmul # one of the two runs (dense or matmul)
#
# `run` installs kbench and the pure-Python pieces it lacks into /tmp/site (no network), then runs dense (batch 1..16384) and matmul
# (n 16..4096) on the GPU with both backends, every path timed two ways (host round trip and device-resident) and the
# transfers timed apart, under budgets of 150 s and 120 s. Nothing else in the project needs a GPU.
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
  out="${OUT:-/tmp}/reports"
  nvidia-smi -L || true
  python3 -c 'import sys, jax, torch, numpy; print(sys.version.split()[0], "jax", jax.__version__, jax.devices(), "torch", torch.__version__, torch.cuda.get_device_name(0), "numpy", numpy.__version__)'
  # the seed's two GPU claims: per-call overhead and transfers at small sizes, and the size where the accelerator's
  # computation pays for them; four sizes each, so that every cell fits the budget with three processes per backend
  [ "${2:-all}" = matmul ] || python3 -m kbench run --model dense --backend jax,torch --device gpu --resident --batch 1,32,1024,16384 \
    --budget 150s --cell-budget 3 --no-report --out "$out" || echo "dense run exited $?"
  [ "${2:-all}" = dense ] || python3 -m kbench run --model matmul --backend jax,torch --device gpu --resident --n 16,128,1024,4096 \
    --budget 120s --cell-budget 2 --no-report --out "$out" || echo "matmul run exited $?"
  ;;
*) echo "usage: $0 wheels | run [all|dense|matmul]" >&2; exit 2 ;;
esac
