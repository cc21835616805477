#!/usr/bin/env bash
# Prediction cost against the number of classes, as a user meets it: `graft-ml predict` on the
# real 122 x 101 x 30 CT from ../shared/data/nifti with models of 2, 14 and 118 classes (the
# 117-label TotalSegmentator mask, and two coarser label maps made from it), all under
# med3d-resnet10's default Contract, which resizes to 448 x 448 x 56, so 507 windows of
# 64 x 64 x 32. Each model is trained for one short epoch here (random backbone weights: this
# measures cost, not accuracy). Each predict is timed whole, process start included, with
# /usr/bin/time: wall seconds, CPU seconds, peak RSS and minor page faults, the median of
# `runs` interleaved rounds, and the ratio of each to the 2-class model's.
#
#   bash bench/run_many_classes_bench.sh [build-dir] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-3}
python=/usr/bin/python3
graft=$build/cli/graft-ml
shared=${GRAFT_SHARED_DATA:-../shared/data}
work=${GRAFT_BENCH_DIR:-/tmp/graft-bench}/many-classes
ct=$shared/nifti/example_ct_sm.nii.gz
mask=$shared/nifti/example_seg.nii.gz

[ -x "$graft" ] || { echo "bench: $graft is missing; build graft first" >&2; exit 1; }
[ -f "$ct" ] || { echo "bench: $ct is missing (../shared/data)" >&2; exit 1; }
$python -c "import nibabel, numpy" 2>/dev/null ||
  { echo "bench: $python needs python3-nibabel and python3-numpy" >&2; exit 1; }
source bench/machine.sh

mkdir -p "$work"
# 118 classes: the mask as it is (labels up to 117); 14: labels 1-117 folded 9 to 1; 2: foreground.
$python - "$mask" "$work" <<'EOF'
import sys, nibabel as nib, numpy as np
source, work = sys.argv[1], sys.argv[2]
image = nib.load(source)
labels = np.asarray(image.dataobj).astype(np.int32)
for classes, mapped in ((118, labels), (14, np.ceil(labels / 9)), (2, labels > 0)):
    nib.save(nib.Nifti1Image(mapped.astype(np.uint8), image.affine), f"{work}/labels{classes}.nii.gz")
EOF
for classes in 2 14 118; do
  if [ ! -f "$work/model$classes/model.safetensors" ]; then
    printf 'image,label,split\n%s,%s,train\n%s,%s,val\n' "$(realpath "$ct")" "$work/labels$classes.nii.gz" \
      "$(realpath "$ct")" "$work/labels$classes.nii.gz" > "$work/cases$classes.csv"
    "$graft" train --set data.manifest="$work/cases$classes.csv" --set classes=$classes --set train.epochs=1 \
      --set data.batches_per_epoch=1 --set data.batch_size=1 --output "$work/model$classes" > /dev/null 2>&1
  fi
done

rm -f "$work/times.txt"
for round in $(seq "$runs"); do
  for classes in 2 14 118; do
    /usr/bin/time -f "$classes %e %U %S %M %R" -a -o "$work/times.txt" \
      "$graft" predict --model "$work/model$classes" "$ct" --output "$work/prediction$classes.nii.gz" > /dev/null 2>&1
  done
done
$python - "$work/times.txt" <<'EOF'
import sys, statistics
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
median = {}
for classes in ("2", "14", "118"):
    mine = [r for r in rows if r[0] == classes]
    median[classes] = [statistics.median(float(r[k]) for r in mine) for k in range(1, 6)]
base = median["2"]
print(f"{'classes':>7} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'faults':>9}   ratio to 2 classes (wall, peak)")
for classes, (wall, user, system, peak_kb, faults) in median.items():
    print(f"{classes:>7} {wall:8.1f} {user + system:8.1f} {peak_kb / 1024:8.0f} {faults:9.0f}   "
          f"{wall / base[0]:.2f}x, {peak_kb / base[3]:.2f}x")
EOF
rm -f "$work/times.txt"
