#!/usr/bin/env bash
# Every figure the README quotes, one command after another, each to its own log under $1 (default
# reports/figures). Run it on a quiet machine: about 40 minutes on a 2-core VM. Nothing here changes the
# environment, except the one peak measurement that pins OpenBLAS for that command alone.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-reports/figures}"
mkdir -p "$out"
step() {  # step NAME COMMAND...: run it, keep stdout+stderr and the wall time
  local name=$1; shift
  echo "== $name: $*"
  local t0=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  echo "   exit $?, $((SECONDS - t0)) s" | tee -a "$out/$name.log"
}
step peak-pinned env OPENBLAS_CORETYPE=Haswell kbench peak --refresh
step peak kbench peak --refresh
step default /usr/bin/time -f "wall %e s" kbench run --model dense --out "$out/default"
step aa python benchmarks/aa_false_alarms.py --out "$out/aa"
step reproducibility python benchmarks/reproducibility.py --no-gate --from "$out/aa"
step harness python benchmarks/harness_accuracy.py
step twin-gelutanh kbench run --model gelutanh --models-dir tests/worker_models --batch 32 --quick --out "$out/twins" --no-report
step twin-biasoff kbench run --model biasoff --models-dir tests/worker_models --batch 32 --quick --out "$out/twins" --no-report
step planted python benchmarks/planted_slowdown.py --out "$out/planted"
step byom python benchmarks/byom_mlp.py --workdir "$out/byom"
step latency python benchmarks/server_latency.py --processes 3 --out "$out/latency"
step where python benchmarks/where_time_goes.py
step decompose python benchmarks/decompose_check.py
