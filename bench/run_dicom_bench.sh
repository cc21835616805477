#!/usr/bin/env bash
# DICOM series load: `graft convert SERIES out.nii` vs Debian's dcm2niix (`-z n -b n`) on the same
# series, both writing uncompressed NIfTI to a RAM disk (/dev/shm), so the work is the same: find
# the files, parse headers, sort slices, decode pixels, write one volume. The goal is
# graft / dcm2niix <= 1.0 in wall time. Series: mr-oblique-3d and ct-j2k-series from
# ../shared/data (when present), and a 512 x 512 x 300 12-bit synthetic CT that this script writes
# itself (pydicom, from CT_small.dcm's header), uncompressed and RLE (dcmcrle). Debian's dcm2niix
# has no JPEG-LS decoder, so RLE is the compressed synthetic row. The page cache is warmed by one
# untimed run each; then runs alternate so a noisy neighbour hits both alike, and the median wall
# time is reported. graft decodes slices on every core; dcm2niix uses one, so CPU seconds are shown
# too. Both outputs are checked to hold the same voxel count and the same multiset of values
# (dcm2niix writes its own voxel order), so the two sides cannot silently do different work.
#
#   bash bench/run_dicom_bench.sh [build-dir] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
source bench/lib.sh
build=${1:-build}
runs=${2:-5}
python=/usr/bin/python3
graft=$build/cli/graft
work=${GRAFT_BENCH_DIR:-/tmp/graft-bench}
shared=${GRAFT_SHARED_DATA:-../shared/data}

need() {  # need TOOL DEBIAN-PACKAGE
  command -v "$1" >/dev/null || { echo "bench: $1 is missing (Debian package $2)" >&2; exit 1; }
}
need dcm2niix dcm2niix
need dcmcrle dcmtk
need /usr/bin/time time
need $python python3
for module in pydicom:python3-pydicom nibabel:python3-nibabel numpy:python3-numpy; do
  $python -c "import ${module%%:*}" 2>/dev/null ||
    { echo "bench: $python cannot import ${module%%:*} (Debian package ${module#*:})" >&2; exit 1; }
done
[ -x "$graft" ] || { echo "bench: $graft is missing; build graft first" >&2; exit 1; }

ramdisk=$(mktemp -d /dev/shm/graft-dicom-bench.XXXXXX)
trap 'rm -rf "$ramdisk"' EXIT
mkdir -p "$work"

# A 512 x 512 x N CT series, explicit VR little endian, one file per slice, 1 mm apart, 12-bit
# unsigned with intercept -1024 as most CT scanners write (so HU fit int16 on both sides). Voxels
# are a noisy body ellipse in air, seeded so every run writes the same bytes.
make_synthetic_ct() {  # make_synthetic_ct FOLDER SLICES
  local tmp=$1.partial
  rm -rf "$tmp" && mkdir -p "$tmp"
  $python - "$tmp" "$2" <<'PY'
import sys
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

folder, slices = sys.argv[1], int(sys.argv[2])
template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
rng = np.random.default_rng(20240601)
y, x = np.mgrid[0:512, 0:512]
body = ((x - 256) / 200.0) ** 2 + ((y - 256) / 150.0) ** 2 <= 1.0
series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
for z in range(slices):
    ds = template.copy()
    hu = np.where(body, 40.0 + 30.0 * np.sin(z / 20.0), -1000.0) + rng.normal(0.0, 10.0, (512, 512))
    stored = np.round(hu + 1024.0).clip(0, 4095).astype(np.uint16)
    ds.Rows, ds.Columns = 512, 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.75, 0.75]
    ds.SliceThickness = ds.SpacingBetweenSlices = 1.0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-192.0, -192.0, float(z)]
    ds.SliceLocation = float(z)
    ds.InstanceNumber = z + 1
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.PixelData = stored.tobytes()
    ds.save_as(f"{folder}/CT{z + 1:04d}.dcm", write_like_original=False)
PY
  mv "$tmp" "$1"
}

synthetic=$work/dicom-ct-synthetic-512x512x300
[ -d "$synthetic" ] || make_synthetic_ct "$synthetic" 300
synthetic_rle=$work/dicom-ct-synthetic-512x512x300-rle
if [ ! -d "$synthetic_rle" ]; then
  rm -rf "$synthetic_rle.partial" && mkdir -p "$synthetic_rle.partial"
  for file in "$synthetic"/*.dcm; do dcmcrle "$file" "$synthetic_rle.partial/${file##*/}"; done
  mv "$synthetic_rle.partial" "$synthetic_rle"
fi

series=()
for name in mr-oblique-3d ct-j2k-series; do
  if [ -d "$shared/dicom/$name" ]; then series+=("$shared/dicom/$name"); else series+=("skip:$name"); fi
done
[ -d "$shared" ] && absent=$shared/dicom/NAME || absent=$shared
series+=("$synthetic" "$synthetic_rle")

# Prints "wall_s cpu_s" of one run; a failed run is a real failure and stops the script.
time_run() {  # time_run OUTPUT-FOLDER COMMAND...
  local out=$1 log=$ramdisk/log
  shift
  rm -rf "$out" && mkdir -p "$out"
  if ! /usr/bin/time -f '%e %U %S' -o "$ramdisk/time" "$@" >"$log" 2>&1; then
    echo "bench: failed: $*" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$ramdisk/time"
}


echo "bench: $(nproc) cores; $(dcm2niix --version 2>&1 | grep -m1 -o 'v1[0-9.]*'); $runs runs each, median wall s"
printf '%-34s %5s %8s %10s %8s %8s %9s %10s %9s %9s %7s %10s\n' series files "MB disk" "dcm2niix s" "graft s" ratio \
  "graft npy" "graft MB/s" "d2n cpu" "graft cpu" "load s" "load ratio"
for folder in "${series[@]}"; do
  if [[ $folder == skip:* ]]; then
    printf '%-34s skipped (%s absent)\n' "${folder#skip:}" "${absent/NAME/${folder#skip:}}"
    continue
  fi
  name=${folder##*/}
  files=$(find "$folder" -maxdepth 1 -type f | wc -l)
  disk_mb=$(du -sb "$folder" | awk '{printf "%.1f", $1 / 1e6}')
  d2n=(dcm2niix -z n -b n -v 0 -o "$ramdisk/d2n" -f out "$folder")
  nii=("$graft" convert "$folder" "$ramdisk/graft/out.nii")
  npy=("$graft" convert "$folder" "$ramdisk/npy/out.npy")
  time_run "$ramdisk/d2n" "${d2n[@]}" >/dev/null
  time_run "$ramdisk/graft" "${nii[@]}" >/dev/null
  time_run "$ramdisk/npy" "${npy[@]}" >/dev/null
  # Same voxel count and the same sorted values (after each file's scl_slope/scl_inter).
  $python - "$ramdisk/d2n/out.nii" "$ramdisk/graft/out.nii" "$ramdisk/npy/out.npy" <<'PY' || exit 1
import sys
import nibabel as nib
import numpy as np

def values(data):
    flat = np.asarray(data, dtype=np.float64).ravel()
    whole = np.rint(flat)
    if np.array_equal(whole, flat) and flat.size and np.ptp(whole) < 1 << 24:
        return ("counts", whole.min(), np.bincount((whole - whole.min()).astype(np.int64)))
    return ("sorted", 0, np.sort(flat))

d2n, graft = nib.load(sys.argv[1]), nib.load(sys.argv[2])
npy = np.load(sys.argv[3], mmap_mode="r")
reference = values(d2n.dataobj)
for label, data in (("graft nii", graft.dataobj), ("graft npy", npy)):
    if np.prod(data.shape) != np.prod(d2n.shape):
        sys.exit(f"bench: {label} has shape {data.shape}, dcm2niix {d2n.shape}: not the same work")
    mine = values(data)
    same = mine[0] == reference[0] and mine[1] == reference[1] and np.array_equal(mine[2], reference[2])
    if not same:
        sys.exit(f"bench: {label} and dcm2niix hold different voxel values for {sys.argv[1]}")
if graft.get_data_dtype() != d2n.get_data_dtype():
    print(f"bench: note: graft wrote {graft.get_data_dtype()}, dcm2niix {d2n.get_data_dtype()} "
          "(with scl_slope/scl_inter): same values, different bytes written", file=sys.stderr)
PY
  voxel_mb=$(stat -c %s "$ramdisk/npy/out.npy" | awk '{printf "%.3f", $1 / 1e6}')
  : >"$ramdisk/d2n.t" && : >"$ramdisk/nii.t" && : >"$ramdisk/npy.t"
  for _ in $(seq "$runs"); do
    time_run "$ramdisk/d2n" "${d2n[@]}" >>"$ramdisk/d2n.t"
    time_run "$ramdisk/graft" "${nii[@]}" >>"$ramdisk/nii.t"
    time_run "$ramdisk/npy" "${npy[@]}" >>"$ramdisk/npy.t"
  done
  d2n_s=$(cut -d' ' -f1 "$ramdisk/d2n.t" | median)
  nii_s=$(cut -d' ' -f1 "$ramdisk/nii.t" | median)
  npy_s=$(cut -d' ' -f1 "$ramdisk/npy.t" | median)
  # The load alone, timed inside one graft process: no process start, no write.
  load_s=$("$graft" bench load "$folder" --repeats "$runs" | awk '/median seconds per load/ {print $NF}')
  d2n_cpu=$(cut -d' ' -f2 "$ramdisk/d2n.t" | median)
  nii_cpu=$(cut -d' ' -f2 "$ramdisk/nii.t" | median)
  awk -v n="$name" -v f="$files" -v mb="$disk_mb" -v d="$d2n_s" -v g="$nii_s" -v p="$npy_s" \
      -v v="$voxel_mb" -v dc="$d2n_cpu" -v gc="$nii_cpu" -v l="$load_s" 'BEGIN {
    printf "%-34s %5d %8.1f %10.2f %8.2f %7.2fx %9.2f %10.1f %9.2f %9.2f %7.3f %9.2fx\n",
           n, f, mb, d, g, (d > 0 ? g / d : 0), p, (g > 0 ? v / g : 0), dc, gc, l, (d > 0 ? l / d : 0) }'
done
echo "ratio = graft convert .nii / dcm2niix (goal <= 1.0x); graft MB/s = decoded voxel MB / graft s;"
echo "'graft npy' = graft convert to .npy; cpu = median user+sys s. /usr/bin/time has 0.01 s resolution."
echo "load s = graft bench load (median in-process read: no process start, no write);"
echo "load ratio = load s / dcm2niix s (dcm2niix's time includes its write)."
