#!/usr/bin/env bash
# The compute-only build (GRAFT_COMPUTE_ONLY=ON) as a GPU machine without the format libraries
# would build it: configured, built and tested in a private mount namespace in which the
# development files of ITK, DCMTK, OpenJPEG, GDAL, HDF5, OpenSlide and Qt (headers, CMake
# packages, pkg-config files) are hidden, so none of them can be compiled or linked in by
# mistake. Then no graft binary may name one of their libraries as a dependency.
#
# Their runtime libraries stay: Debian's LibTorch itself links GDAL and OpenJPEG (through its
# OpenCV), so they cannot be removed from a machine that runs Debian's LibTorch.
#
# Usage: scripts/check_compute_only.sh [BUILD_DIR]   (default build-compute-only; needs root for
# the mount namespace, else it builds with everything visible and says so)
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(realpath -m "${1:-$source_dir/build-compute-only}")

hidden=(
  /usr/include/ITK-5.2 /usr/lib/cmake/ITK-5.2
  /usr/include/dcmtk /usr/lib/x86_64-linux-gnu/cmake/dcmtk
  /usr/include/openjpeg-2.5 /usr/include/openjpeg-2.1
  /usr/include/gdal /usr/lib/x86_64-linux-gnu/cmake/gdal
  /usr/include/hdf5
  /usr/include/openslide
  /usr/include/x86_64-linux-gnu/qt6 /usr/lib/x86_64-linux-gnu/cmake/Qt6*
)
pkgconfig_files=(/usr/lib/x86_64-linux-gnu/pkgconfig/{openslide,hdf5*,gdal,libopenjp2,Qt6*}.pc)

build_and_test() {
  cmake -S "$source_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_COMPUTE_ONLY=ON
  cmake --build "$build_dir" --parallel "$(nproc)"
  ctest --test-dir "$build_dir" --output-on-failure --timeout 900
}

if [ "$(id -u)" -eq 0 ] && unshare --mount --propagation private true 2>/dev/null; then
  export -f build_and_test
  export source_dir build_dir
  hide_commands=""
  for path in "${hidden[@]}"; do
    [ -d "$path" ] && hide_commands+="mount -t tmpfs -o ro,size=4k tmpfs '$path'; "
  done
  for path in "${pkgconfig_files[@]}"; do
    [ -f "$path" ] && hide_commands+="mount --bind /dev/null '$path'; "
  done
  unshare --mount --propagation private bash -euo pipefail -c "
    $hide_commands
    if [ -e /usr/include/gdal/gdal.h ] || [ -e /usr/include/dcmtk/config/osconfig.h ]; then
      echo 'check_compute_only: the format libraries are still visible' >&2; exit 1
    fi
    echo 'check_compute_only: format libraries hidden (headers, CMake packages, pkg-config)'
    build_and_test"
else
  echo "check_compute_only: no mount namespace (not root?); building with the format libraries visible" >&2
  build_and_test
fi

# No graft binary or library may depend directly on a format library.
status=0
while IFS= read -r binary; do
  if readelf -d "$binary" 2>/dev/null | grep -E 'NEEDED.*(ITK|itk|dcm|ofstd|oflog|gdal|hdf5|openslide|openjp|Qt6)'; then
    echo "check_compute_only: $binary links a format library" >&2
    status=1
  fi
done < <(find "$build_dir" -type f \( -executable \( -name 'graft*' -o -name '*_bench' \) -o -name 'libgraft*.so*' \) ! -name '*.sh')
[ $status -eq 0 ] && echo "check_compute_only: no graft binary links ITK, DCMTK, OpenJPEG, GDAL, HDF5, OpenSlide or Qt"
exit $status
