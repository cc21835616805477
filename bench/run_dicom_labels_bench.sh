#!/usr/bin/env bash
# RTSTRUCT and DICOM SEG as users meet them, on the real TotalSegmentator CT series (20 x 512 x
# 512, 31 organs) in ../shared/data, against a Python reference that does the same work with
# pydicom, NumPy and scikit-image (tests/tools/dicom_labels_reference.py):
#   write:   graft convert MASK x.rtstruct.dcm --reference-dicom SERIES
#            vs the reference's marching-squares RTSTRUCT writer;
#   read:    graft convert x.rtstruct.dcm x.nii.gz --reference-dicom SERIES (contours rasterised
#            onto the series and written)
#            vs the reference's rasteriser (skimage.draw.polygon, XOR per slice, saved as .npy);
#   SEG in:  graft convert x.dcm x.nii.gz on another writer's binary SEG
#            vs pydicom unpacking the same SEG's frames into a volume.
# Every run is a whole process under /usr/bin/time (start, reading, writing included), the pairs
# alternate, and the median of the paired wall-time ratios (graft / reference) is printed with
# each side's median wall and CPU seconds and peak RSS. No speed goal rides on these; they say
# what the formats cost.
#
#   bash bench/run_dicom_labels_bench.sh [build-dir] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
source bench/lib.sh
build=${1:-build}
runs=${2:-5}
python=/usr/bin/python3
graft=$build/cli/graft
shared=${GRAFT_SHARED_DATA:-../shared/data}
reference=tests/tools/dicom_labels_reference.py
[ -x "$graft" ] || { echo "bench: $graft is missing; build graft first" >&2; exit 1; }
if [ ! -d "$shared/dicom/ct-j2k-series" ]; then echo "bench: $shared/dicom is absent; nothing to measure"; exit 0; fi
command -v dcmodify >/dev/null || { echo "bench: dcmodify is missing (Debian package dcmtk)" >&2; exit 1; }

work=$(mktemp -d /tmp/graft-labels-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The shared series has no UIDs; a PACS series always has them.
cp -r "$shared/dicom/ct-j2k-series" "$work/series" && chmod -R u+w "$work/series"
dcmodify -nb -q -gin -i '(0008,0016)=1.2.840.10008.5.1.4.1.1.2' -i '(0020,000d)=1.2.826.0.1.3680043.10.1331.1' \
  -i '(0020,000e)=1.2.826.0.1.3680043.10.1331.2' -i '(0020,0052)=1.2.826.0.1.3680043.10.1331.3' "$work"/series/*
mask=$shared/dicom/ct-j2k-series.Ref/totalsegmentator-mask.nii.gz
"$graft" convert "$mask" "$work/graft.rtstruct.dcm" --reference-dicom "$work/series" >/dev/null
$python "$reference" seg "$work/series" "$mask" "$work/other_seg.dcm"

time_run() {  # time_run LABEL COMMAND... : appends "wall cpu peak_mb" to $work/LABEL.t
  local label=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >"$work/$label.log" 2>&1 ||
    { echo "bench: $label failed:" >&2; cat "$work/$label.log" >&2; exit 1; }
  awk '{printf "%s %.2f %.0f\n", $1, $2 + $3, $4 / 1024}' "$work/time" >>"$work/$label.t"
}

unpack_seg() {
  $python - "$1" "$2" <<'PY'
import sys
import numpy as np
import pydicom
ds = pydicom.dcmread(sys.argv[1])
frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
positions = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
numbers = [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber) for f in ds.PerFrameFunctionalGroupsSequence]
slices = sorted(set(positions))
volume = np.zeros((len(slices), ds.Rows, ds.Columns), np.uint16)
for frame, z, number in zip(frames, positions, numbers):
    volume[slices.index(z)][frame > 0] = number
np.save(sys.argv[2], volume)
PY
}

declare -A graft_cmd reference_cmd
graft_cmd[write]="$graft convert $mask $work/out.rtstruct.dcm --reference-dicom $work/series"
reference_cmd[write]="$python $reference rtstruct $work/series $mask $work/ref.rtstruct.dcm"
graft_cmd[read]="$graft convert $work/graft.rtstruct.dcm $work/contours.nii.gz --reference-dicom $work/series"
reference_cmd[read]="$python $reference rasterize $work/graft.rtstruct.dcm $work/series $work/contours.npy"
graft_cmd[seg]="$graft convert $work/other_seg.dcm $work/seg.nii.gz"
reference_cmd[seg]="unpack_seg $work/other_seg.dcm $work/seg.npy"

echo "bench: $runs alternating runs each; medians; ratio = median of graft / reference per pair"
printf '%-8s %10s %10s %8s %10s %10s %9s %9s\n' case "graft s" "ref s" ratio "graft cpu" "ref cpu" "graft MB" "ref MB"
for name in write read seg; do
  eval "${graft_cmd[$name]}" >/dev/null 2>&1  # page cache warm
  for ((i = 0; i < runs; i++)); do
    time_run "graft_$name" ${graft_cmd[$name]}
    if [ "$name" = seg ]; then
      time_run "ref_$name" bash -c "$(declare -f unpack_seg); python=$python; ${reference_cmd[$name]}"
    else
      time_run "ref_$name" ${reference_cmd[$name]}
    fi
  done
  ratio=$(paste -d' ' "$work/graft_$name.t" "$work/ref_$name.t" | awk '{print $1 / $4}' | median)
  printf '%-8s %10s %10s %8.2f %10s %10s %9s %9s\n' "$name" \
    "$(cut -d' ' -f1 "$work/graft_$name.t" | median)" "$(cut -d' ' -f1 "$work/ref_$name.t" | median)" "$ratio" \
    "$(cut -d' ' -f2 "$work/graft_$name.t" | median)" "$(cut -d' ' -f2 "$work/ref_$name.t" | median)" \
    "$(cut -d' ' -f3 "$work/graft_$name.t" | median)" "$(cut -d' ' -f3 "$work/ref_$name.t" | median)"
done
