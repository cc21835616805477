#!/usr/bin/env bash
# Feature extraction throughput (patches/s through the class-token embedding, 224 px, float32,
# inference) of graft vs python3-torch (the same LibTorch build) on the same ViT, ViT-S/16 and
# UNI's ViT-L/16, same batch and threads, and the same OpenBLAS kernels (graft reports the core
# it runs on; python3-torch is given it through OPENBLAS_CORETYPE, see finetune/blas_kernels.h).
# Runs alternate so a noisy neighbour hits both alike; each round gives a ratio, and the median
# ratio and the ratio of the best runs are printed. The goal is graft time / PyTorch time <= 1.05.
#
#   bash bench/run_embed_bench.sh [build-dir] [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
build=${1:-build}
threads=${2:-2}
rounds=${3:-9}
measure() {  # backbone arch batch steps
  local graft_rates="" python_rates=""
  for round in $(seq "$rounds"); do
    out=$("$build/cli/graft" bench embed --backbone "$1" --batch "$3" --patch-size 224 --steps "$4" --threads "$threads")
    g=$(awk '/patches_per_second/ {print $2}' <<<"$out")
    core=$(awk '/blas_core/ {print $2}' <<<"$out")
    p=$(OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} /usr/bin/python3 bench/python_vit_embed.py --arch "$2" \
        --batch "$3" --size 224 --steps "$4" --threads "$threads" | awk '/patches_per_second/ {print $2}')
    echo "  round $round: graft $g patches/s, pytorch $p patches/s (OpenBLAS core ${core:-none})"
    graft_rates="$graft_rates $g"
    python_rates="$python_rates $p"
  done
  python3 - "$1" "$graft_rates" "$python_rates" <<'PY'
import statistics, sys
name, graft, python = sys.argv[1], [float(v) for v in sys.argv[2].split()], [float(v) for v in sys.argv[3].split()]
ratios = [p / g for g, p in zip(graft, python)]  # graft time / pytorch time
print(f"{name}: graft {max(graft):.2f} patches/s, pytorch {max(python):.2f} patches/s (best runs); "
      f"graft time / pytorch time: median of rounds {statistics.median(ratios):.3f}, best runs "
      f"{max(python) / max(graft):.3f} (goal <= 1.05)")
PY
}
measure vit-s16 s 16 8
measure uni-vit-l16 l 4 3
