#!/usr/bin/env bash
# Feature extraction throughput (patches/s through the class-token embedding, 224 px, float32,
# inference) of graft vs python3-torch (the same LibTorch build) on the same ViT, ViT-S/16 and
# UNI's ViT-L/16, same batch and threads. Runs alternate so a noisy neighbour hits both alike; the
# best of the rounds counts. The goal is graft time / PyTorch time <= 1.05.
#
#   bash bench/run_embed_bench.sh [build-dir] [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-2}
rounds=${3:-3}
measure() {  # backbone arch batch steps
  local graft_best=0 python_best=0
  for round in $(seq "$rounds"); do
    g=$("$build/cli/graft" bench embed --backbone "$1" --batch "$3" --size 224 --steps "$4" --threads "$threads" |
        awk '/patches_per_second/ {print $2}')
    p=$(/usr/bin/python3 bench/python_vit_embed.py --arch "$2" --batch "$3" --size 224 --steps "$4" --threads "$threads" |
        awk '/patches_per_second/ {print $2}')
    echo "  round $round: graft $g patches/s, pytorch $p patches/s"
    graft_best=$(python3 -c "print(max($graft_best, $g))")
    python_best=$(python3 -c "print(max($python_best, $p))")
  done
  python3 -c "g, p = $graft_best, $python_best; print(f'$1: graft {g:.2f} patches/s, pytorch {p:.2f} patches/s, graft time / pytorch time {p / g:.3f} (goal <= 1.05)')"
}
measure vit-s16 s 16 4
measure uni-vit-l16 l 4 2
