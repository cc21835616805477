#!/usr/bin/env bash
# Preprocessing benchmark: graft vs nibabel + scipy.ndimage on the same files, same thread count.
# Pipeline: read NIfTI, reorient to RAS, resample to 1 mm (linear, anti-aliased), z-score.
#
# End to end, as a user meets it: `graft preprocess --contract` against the same steps in a Python
# script (python_pipeline.py --output), each a whole process under /usr/bin/time (start-up,
# reading the .nii.gz and writing the .nii included), in interleaved rounds. Prints the medians
# of wall time, CPU time, peak RSS and minor page faults, the median of the paired wall-time
# ratios, and how far the two outputs differ. Inputs: a 512 x 512 x 240 int16 CT stored LPS at
# 0.7 x 0.7 x 1.25 mm, and a real CT from ../shared/data/nifti upsampled 4x (when present).
#
# In process: the same pipeline timed inside one process (build/bench/preprocess_pipeline_bench
# and python_pipeline.py), on the upsampled real CT and a 512 x 512 x 300 synthetic CT; prints
# MB/s of input voxels for both, their ratio, and the memcpy bandwidth of the same bytes.
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

source bench/machine.sh

# --- end to end -------------------------------------------------------------------------------
contract="$work/zscore_1mm_contract.json"
cat > "$contract" <<'JSON'
{"name": "bench-ras-1mm-zscore", "orientation": "RAS", "resize": "spacing",
 "target_spacing_mm": [1, 1, 1], "image_interpolation": "linear", "anti_alias": true,
 "anisotropy_threshold": 0, "intensity": [{"kind": "zscore"}]}
JSON
end_to_end_inputs=()
[ -f "$work/ct_lps_512x512x240.nii.gz" ] || $python bench/python_pipeline.py \
    --make-synthetic-ct "$work/ct_lps_512x512x240.nii.gz" --size 512 512 240 --spacing 0.7 0.7 1.25 >/dev/null
end_to_end_inputs+=("$work/ct_lps_512x512x240.nii.gz")
if [ -f "$shared/nifti/example_ct_sm.nii.gz" ]; then
  [ -f "$work/ct_real_x4.nii.gz" ] || $python bench/python_pipeline.py --upsample \
      "$shared/nifti/example_ct_sm.nii.gz" "$work/ct_real_x4.nii.gz" --factor 4 >/dev/null
  end_to_end_inputs+=("$work/ct_real_x4.nii.gz")
fi
for input in "${end_to_end_inputs[@]}"; do
  log="$work/end_to_end_times.txt"
  : > "$log"
  for round in $(seq "$repeat"); do
    GRAFT_THREADS=$threads /usr/bin/time -f "graft %e %U %S %M %R" -a -o "$log" \
        "$build/cli/graft" preprocess --contract "$contract" "$input" --output "$work/graft_out.nii" >/dev/null
    /usr/bin/time -f "python %e %U %S %M %R" -a -o "$log" $python bench/python_pipeline.py \
        --threads "$threads" --input "$input" --output "$work/python_out.nii" >/dev/null
  done
  $python - "$input" "$log" "$work/graft_out.nii" "$work/python_out.nii" "$threads" <<'PY'
import statistics, sys
import nibabel as nib, numpy as np
name, log, graft_out, python_out, threads = sys.argv[1:]
rows = {"graft": [], "python": []}
for line in open(log):
    fields = line.split()
    if fields and fields[0] in rows:
        rows[fields[0]].append([float(v) for v in fields[1:]])
def med(who, i): return statistics.median(r[i] for r in rows[who])
ratios = [p[0] / g[0] for g, p in zip(rows["graft"], rows["python"])]
print(f"end to end: {name} ({threads} threads, {len(ratios)} interleaved rounds, medians)")
for who in ("graft", "python"):
    print(f"  {who:6s} wall {med(who, 0):6.2f} s  cpu {med(who, 1) + med(who, 2):6.2f} s "
          f"(user {med(who, 1):.2f}, sys {med(who, 2):.2f})  peak RSS {med(who, 3) / 1024:6.0f} MB  "
          f"minor faults {med(who, 4) / 1000:6.0f} k")
print(f"  ratio python/graft wall: {statistics.median(ratios):.2f}x (median of paired rounds; goal >= 3)")
print(f"  ratio python/graft cpu:  {(med('python', 1) + med('python', 2)) / (med('graft', 1) + med('graft', 2)):.2f}x")
g, p = nib.load(graft_out), nib.load(python_out)
same_grid = g.shape == p.shape and np.allclose(g.affine, p.affine, atol=1e-4)
if same_grid:
    diff = np.abs(np.asarray(g.dataobj, np.float64) - np.asarray(p.dataobj, np.float64))
    print(f"  outputs: same grid {g.shape}, max |diff| {diff.max():.2e}, mean |diff| {diff.mean():.2e}")
else:
    print(f"  outputs: grids differ: graft {g.shape} {g.affine.tolist()} vs python {p.shape} {p.affine.tolist()}")
PY
done

# --- in process -------------------------------------------------------------------------------
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
