#!/usr/bin/env bash
# Mixed precision against fp32 on one device, in one process (bench/finetune_bench.cpp precision):
# training steps per second and sliding-window inference time at bf16 (and fp16 on CUDA), each
# as a ratio to fp32 on the same model and data. On CUDA it also samples nvidia-smi every 100 ms
# and reports the fraction of time the GPU was busy.
#
# Usage: bench/run_precision_bench.sh [DEVICE] [BUILD_DIR]   (DEVICE: cpu, cuda, cuda:N; default cpu)
set -euo pipefail
device=${1:-cpu}
build_dir=${2:-$(dirname "$0")/../build}
source "$(dirname "$0")/machine.sh"
bench="$build_dir/bench/finetune_bench"
[ -x "$bench" ] || { echo "run_precision_bench: $bench is not built" >&2; exit 1; }

if [[ "$device" == cuda* ]] && command -v nvidia-smi > /dev/null; then
  gpu_index=${device#cuda}; gpu_index=${gpu_index#:}; gpu_index=${gpu_index:-0}
  samples=$(mktemp)
  nvidia-smi --id="$gpu_index" --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 100 > "$samples" &
  sampler=$!
  "$bench" precision "$device"
  kill "$sampler" 2> /dev/null || true
  awk '{ busy += $1; n += 1 } END { if (n) printf("gpu busy %.0f%% of %d samples (nvidia-smi utilization.gpu, 100 ms)\n", busy / n, n) }' "$samples"
  rm -f "$samples"
else
  "$bench" precision "$device"
fi
