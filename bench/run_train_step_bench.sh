#!/usr/bin/env bash
# Training step, graft vs PyTorch (Debian's python3-torch, the same LibTorch build), same network
# (med3d-resnet10 + MedicalNet head), batch, patch, loss, optimizer and thread count. The goal is
# graft / PyTorch <= 1.05. Runs alternate so a noisy neighbour hits both alike; the verdict is the
# median of the paired rounds' ratios, beside the ratio of the best runs.
#
#   bash bench/run_train_step_bench.sh [build-dir] [threads] [steps] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-2}
steps=${3:-10}
rounds=${4:-3}
source bench/machine.sh
graft_times=()
python_times=()
for round in $(seq "$rounds"); do
  g=$("$build/cli/graft" bench train-step --backbone med3d-resnet10 --head medicalnet --batch 2 \
        --patch-size 64 64 32 --steps "$steps" --threads "$threads" | awk '/seconds_per_step/ {print $2}')
  p=$(/usr/bin/python3 bench/python_train_step.py --depth 10 --batch 2 --patch 32 64 64 \
        --steps "$steps" --threads "$threads" | awk '/seconds_per_step/ {print $2}')
  echo "round $round: graft $g s/step, pytorch $p s/step"
  graft_times+=("$g")
  python_times+=("$p")
done
python3 - "$threads" "${graft_times[*]}" "${python_times[*]}" <<'PY'
import statistics, sys
t = sys.argv[1]
g = [float(v) for v in sys.argv[2].split()]
p = [float(v) for v in sys.argv[3].split()]
ratios = [a / b for a, b in zip(g, p)]
print(f"train step (med3d-resnet10 + medicalnet head, batch 2, 32x64x64, {t} threads, {len(g)} rounds):")
print(f"  best runs: graft {min(g):.4f} s, pytorch {min(p):.4f} s, ratio {min(g) / min(p):.3f}")
print(f"  ratio graft/pytorch, median of paired rounds: {statistics.median(ratios):.3f} (goal <= 1.05; "
      f"rounds {', '.join(f'{r:.3f}' for r in ratios)})")
PY
