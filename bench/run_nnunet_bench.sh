#!/usr/bin/env bash
# nnU-Net benchmark: an imported 3d_fullres-sized PlainConvUNet (6 stages, 32-320 features, patch
# 128^3, random weights) predicting a 512 x 512 x 300 CT (0.8 x 0.8 x 1 mm, synthetic) at 3 mm, as
# TotalSegmentator's fast models do. `graft predict` against nnU-Net's prediction steps in
# python3-torch (bench/nnunet_predict_reference.py, written from nnU-Net's code), each a whole
# process under /usr/bin/time -v, in interleaved rounds. Prints the medians of wall time, CPU time
# and peak RSS, the median of the paired wall-time ratios, and how often the two label maps agree.
#
#   bash bench/run_nnunet_bench.sh [build-dir] [rounds] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-3}
threads=${3:-2}
python=/usr/bin/python3
work=${GRAFT_BENCH_DIR:-/tmp/graft-bench}/nnunet
mkdir -p "$work"
source bench/machine.sh

ct="$work/ct_512x512x300.nii.gz"
[ -f "$ct" ] || $python bench/python_pipeline.py --make-synthetic-ct "$ct" --size 512 512 300 --spacing 0.8 0.8 1.0 >/dev/null
folder="$work/nnUNetTrainer__nnUNetPlans__3d_fullres"
[ -f "$folder/fold_0/checkpoint_final.pth" ] ||
  $python tests/tools/nnunet_reference.py "$folder" plain --size fullres --spacing 3.0,3.0,3.0
rm -rf "$work/model"
"$build/cli/graft" import nnunet "$folder" --output "$work/model" >/dev/null

measure() {  # name, command...: appends "wall cpu rss_mb" to $work/name.times
  local name=$1; shift
  /usr/bin/time -v "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); w = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2]}
              /User time/ {u = $2} /System time/ {s = $2} /Maximum resident/ {r = $2 / 1024}
              END {printf "%.3f %.3f %.0f\n", w, u + s, r}' "$work/$name.log" >>"$work/$name.times"
}
rm -f "$work"/*.times
for ((i = 0; i < rounds; i++)); do
  measure graft env GRAFT_THREADS="$threads" "$build/cli/graft" predict --model "$work/model" --input "$ct" \
    --output "$work/graft_seg.nii.gz" --threads "$threads"
  measure nnunet $python bench/nnunet_predict_reference.py "$folder" "$ct" "$work/nnunet_seg.nii.gz" --threads "$threads"
done
grep -h "windows" "$work/nnunet.log" || true
$python - "$work" <<'PY'
import sys, statistics, nibabel, numpy as np
work = sys.argv[1]
rows = {name: [list(map(float, line.split())) for line in open(f"{work}/{name}.times")] for name in ("graft", "nnunet")}
median = lambda name, column: statistics.median(r[column] for r in rows[name])
ratios = [g[0] / n[0] for g, n in zip(rows["graft"], rows["nnunet"])]
print(f"runs: {len(ratios)} interleaved rounds")
for name in ("graft", "nnunet"):
    print(f"{name:7s} wall {median(name, 0):8.2f} s  cpu {median(name, 1):8.2f} s  peak_rss {median(name, 2):7.0f} MB")
print(f"wall graft / nnU-Net (median of paired ratios): {statistics.median(ratios):.2f}x")
print(f"peak RSS graft / nnU-Net: {median('graft', 2) / median('nnunet', 2):.2f}x")
a = np.asarray(nibabel.load(f"{work}/graft_seg.nii.gz").dataobj)
b = np.asarray(nibabel.load(f"{work}/nnunet_seg.nii.gz").dataobj)
print(f"label maps: same shape {a.shape == b.shape}, voxels agreeing {np.mean(a == b):.4f}")
for c in range(1, int(max(a.max(), b.max())) + 1):
    both = np.sum((a == c) & (b == c)); total = np.sum(a == c) + np.sum(b == c)
    print(f"  class {c}: Dice graft vs nnU-Net {2 * both / total if total else 1.0:.4f}")
PY
