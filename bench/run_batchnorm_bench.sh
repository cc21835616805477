#!/usr/bin/env bash
# ConvBN modes (train.batchnorm) as `graft bench train-step` runs them: a Med3D ResNet with the
# MedicalNet head on random 3D patches, one whole process per run, the three modes interleaved
# round by round. Prints each mode's median seconds per step and peak RSS, and tune's ratios to
# train and eval. Tune computes eval's function (the tests check it to 1e-5); the question here is
# what it costs and saves.
#
#   bash bench/run_batchnorm_bench.sh [build-dir] [rounds] [backbone] [batch] [patch X Y Z]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
source bench/lib.sh
build=${1:-build}
rounds=${2:-3}
backbone=${3:-med3d-resnet10}
batch=${4:-2}
patch=(${5:-128} ${6:-128} ${7:-128})
graft=$build/cli/graft
[ -x "$graft" ] || { echo "bench: $graft is missing; build graft first" >&2; exit 1; }
work=$(mktemp -d /tmp/graft-batchnorm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "bench: $backbone, batch $batch, patch ${patch[*]}, 3 timed steps per run, $rounds rounds"
for ((round = 0; round < rounds; round++)); do
  for mode in train eval tune; do
    "$graft" bench train-step --backbone "$backbone" --batch "$batch" --patch-size "${patch[@]}" --steps 3 \
      --batchnorm "$mode" > "$work/out"
    awk '/^seconds_per_step/ {print $2}' "$work/out" >> "$work/$mode.seconds"
    awk '/^peak_rss_mb/ {print $2}' "$work/out" >> "$work/$mode.rss"
  done
done
printf '%-6s %16s %12s\n' mode "seconds/step" "peak RSS MB"
for mode in train eval tune; do
  printf '%-6s %16s %12s\n' "$mode" "$(median < "$work/$mode.seconds")" "$(median < "$work/$mode.rss")"
done
for other in train eval; do
  echo "tune / $other: $(median_ratio "$work/tune.seconds" "$work/$other.seconds")x time," \
       "$(median_ratio "$work/tune.rss" "$work/$other.rss")x peak RSS"
done
