#!/usr/bin/env bash
# Training step, graft vs PyTorch (Debian's python3-torch, the same LibTorch build), same network
# (med3d-resnet10 + MedicalNet head), batch, patch, loss, optimizer and thread count. The goal is
# graft / PyTorch <= 1.05. Runs alternate so a noisy neighbour hits both alike.
#
#   bash bench/run_train_step_bench.sh [build-dir] [threads] [steps] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-2}
steps=${3:-10}
rounds=${4:-3}
graft_best=1e9
python_best=1e9
for round in $(seq "$rounds"); do
  g=$("$build/cli/graft" bench train-step --backbone med3d-resnet10 --head medicalnet --batch 2 \
        --patch-size 64 64 32 --steps "$steps" --threads "$threads" | awk '/seconds_per_step/ {print $2}')
  p=$(/usr/bin/python3 bench/python_train_step.py --depth 10 --batch 2 --patch 32 64 64 \
        --steps "$steps" --threads "$threads" | awk '/seconds_per_step/ {print $2}')
  echo "round $round: graft $g s/step, pytorch $p s/step"
  graft_best=$(python3 -c "print(min($graft_best, $g))")
  python_best=$(python3 -c "print(min($python_best, $p))")
done
python3 - "$graft_best" "$python_best" "$threads" <<'PY'
import sys
g, p, t = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"train step (med3d-resnet10 + medicalnet head, batch 2, 32x64x64, {t} threads): "
      f"graft {g:.4f} s, pytorch {p:.4f} s, ratio graft/pytorch {g / p:.3f} (goal <= 1.05)")
PY
