#!/usr/bin/env bash
# GPU check (issue 19), sized for a 5-minute lease of a GPU machine:
#   1. tests/core/test_cuda.py (-m cuda): the contract's fast subset on CUDA in float32,
#      float16 and bfloat16, eager and compile=True, against the same calls on the CPU
#      (at most 170 s; four compiled kernels);
#   2. the throughput benchmarks on the GPU: eager cases of tnet-2048, mlp-2048 and
#      cnn-128 plus one compiled case, with the same ratios as on the CPU (ours / the
#      forward+backward limit, Captum / ours), printed by benchmarks.report (at most 120 s).
# Usage: benchmarks/gpu_check.sh [OUT_DIR]   (default gpu_check_out; results land there)
# Exit status: 0 when both parts pass, 1 otherwise, 2 when torch sees no CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check_out}"
mkdir -p "$out"

python - <<'PY' || exit 2
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("gpu_check: torch.cuda.is_available() is False; run it on a machine with a GPU")
print("gpu_check: torch", torch.__version__, "on", torch.cuda.get_device_name(0))
PY

status=0
timeout 170 python -m pytest -q -m cuda tests/core/test_cuda.py -p no:cacheprovider \
    --junitxml="$out/cuda_tests.xml" 2>&1 | tee "$out/cuda_tests.txt" || status=1

TFX_BENCH_SECONDS="${TFX_BENCH_SECONDS:-1}" TFX_BENCH_MIN_ROUNDS=3 TFX_BENCH_MAX_ROUNDS=5 \
    timeout 120 python -m pytest -q benchmarks/test_throughput.py -p no:cacheprovider \
    --device cuda --benchmark-json="$out/bench_gpu.json" \
    -k "(not seed and not tnet-240 and not compile) or (tnet-2048 and integrated_gradients and vmap+compile)" \
    2>&1 | tail -n 3 | tee "$out/bench.txt" || status=1

python -m benchmarks.report "$out/bench_gpu.json" 2>&1 | tee "$out/report.txt" || status=1
exit "$status"
