#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same run (med3d-resnet10 + MedicalNet head, global
# batch 4 of 32^3 patches, 20 steps) with graft train --nproc 1, 2 and 4, reporting steps per
# second and the speed-up over one process. Every process count sees the same global batches;
# the cores are shared (each rank gets cores / N threads).
#
#   bash bench/run_ddp_scaling.sh [build-dir] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
build=${1:-build}
steps=${2:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Synthetic CT cases from the demo's writer (no network, no shared data).
"$build/cli/graft" demo --quick --output "$work/demo" > /dev/null
{
  echo "image,label,split"
  for image in "$work"/demo/data/case2*_ct.nii.gz; do
    echo "$image,${image%_ct.nii.gz}_organ2.nii.gz,train"
  done
} > "$work/cases.csv"
cat > "$work/run.yaml" <<YAML
backbone: med3d-resnet10
head: medicalnet
classes: 2
data:
  manifest: $work/cases.csv
  patch_size: [32, 32, 32]
  batch_size: 4
  batches_per_epoch: $steps
  workers: 1
  contract: {resize: spacing, target_spacing_mm: [2.0, 2.0, 2.0], crop_nonzero: false}
train: {epochs: 1, optimizer: adamw}
YAML
baseline=""
for nproc in 1 2 4; do
  output="$work/run$nproc"
  "$build/cli/graft" train --config "$work/run.yaml" --output "$output" --nproc "$nproc" > /dev/null
  # The epoch's training seconds, from the run's own log (data preparation excluded).
  seconds=$(python3 -c "import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if '\"epoch_end\"' in l][0]['seconds'])" "$output/events.jsonl")
  baseline=${baseline:-$seconds}
  python3 - "$nproc" "$steps" "$seconds" "$baseline" <<'PY'
import sys
n, steps, seconds, baseline = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"nproc {n}: {steps / seconds:.2f} steps/s ({seconds:.1f} s for {steps} steps), speed-up over 1 process {baseline / seconds:.2f}")
PY
done
