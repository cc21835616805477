#!/usr/bin/env bash
# Preprocessing benchmark: graft vs nibabel + scipy.ndimage on the same files, same thread count.
# Pipeline: read NIfTI, reorient to RAS, resample to 1 mm (linear, anti-aliased), z-score.
# Inputs: a real CT from ../shared/data/nifti upsampled 4x (when the data is present) and a
# 512 x 512 x 300 synthetic CT. Prints MB/s of input voxels for both, their ratio, and the memcpy
# bandwidth of the same bytes.
#
#   bash bench/run_preprocess_bench.sh [build-dir] [threads] [repeat]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-2}
repeat=${3:-3}
python=/usr/bin/python3
work=${GRAFT_BENCH_DIR:-/tmp/graft-bench}
mkdir -p "$work"
shared=${GRAFT_SHARED_DATA:-../shared/data}

inputs=()
if [ -f "$shared/nifti/example_ct_sm.nii.gz" ]; then
  [ -f "$work/ct_real_x4.nii.gz" ] || $python bench/python_pipeline.py --upsample \
      "$shared/nifti/example_ct_sm.nii.gz" "$work/ct_real_x4.nii.gz" --factor 4 >/dev/null
  inputs+=("$work/ct_real_x4.nii.gz")
else
  echo "bench: ../shared/data is absent; skipping the upsampled real CT" >&2
fi
[ -f "$work/ct_synthetic_512x512x300.nii.gz" ] || $python bench/python_pipeline.py \
    --make-synthetic-ct "$work/ct_synthetic_512x512x300.nii.gz" --size 512 512 300 >/dev/null
inputs+=("$work/ct_synthetic_512x512x300.nii.gz")

for input in "${inputs[@]}"; do
  graft_json=$(GRAFT_THREADS=$threads "$build/bench/preprocess_pipeline_bench" --input "$input" --repeat "$repeat")
  graft_one_json=$(GRAFT_THREADS=1 "$build/bench/preprocess_pipeline_bench" --input "$input" --repeat "$repeat")
  python_json=$($python bench/python_pipeline.py --input "$input" --threads "$threads" --repeat "$repeat" 2>/dev/null | tail -n 1)
  $python - "$input" "$graft_json" "$graft_one_json" "$python_json" "$threads" <<'PY'
import json, sys
name, g, g1, p, threads = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
print(f"bench: {name}  ({g['input_mb']:.1f} MB of voxels -> {g['output_size']})")
print(f"  graft  ({threads} threads) {g['mb_per_s']:8.1f} MB/s  {g['seconds_best']:.3f} s  "
      f"(read {g['stages']['read']:.3f}, plan {g['stages']['plan']:.3f}, apply {g['stages']['apply']:.3f})")
print(f"  graft  (1 thread)  {g1['mb_per_s']:8.1f} MB/s  {g1['seconds_best']:.3f} s")
print(f"  python ({threads} threads) {p['mb_per_s']:8.1f} MB/s  {p['seconds_best']:.3f} s  "
      f"(nibabel + scipy.ndimage; {json.dumps(p['stages'])})")
print(f"  memcpy             {g['memcpy_mb_per_s']:8.1f} MB/s")
print(f"  ratio graft/python     {g['mb_per_s'] / p['mb_per_s']:.2f}x  (goal >= 3)")
print(f"  ratio graft/python 1T  {g1['mb_per_s'] / p['mb_per_s']:.2f}x")
print(f"  ratio memcpy/graft     {g['memcpy_mb_per_s'] / g['mb_per_s']:.1f}x  (goal <= 4)")
PY
done
