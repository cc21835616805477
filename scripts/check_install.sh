#!/usr/bin/env bash
# The installed package as another project meets it: installs a built graft into a temporary
# prefix, builds every examples/*/ project against that prefix alone, runs each on a NIfTI image,
# and makes the Debian package with CPack.
#
# Usage: scripts/check_install.sh [BUILD_DIR] [IMAGE]
#   (defaults: build, and ../shared/data/nifti/example_ct_sm.nii.gz)
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(realpath -m "${1:-$source_dir/build}")
image=$(realpath -m "${2:-$source_dir/../shared/data/nifti/example_ct_sm.nii.gz}")
if [ ! -f "$image" ]; then
  echo "check_install: $image is missing (give an image as the second argument)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

prefix="$work/prefix"
cmake --install "$build_dir" --prefix "$prefix" > "$work/install.log"
echo "check_install: installed $(grep -c 'Installing' "$work/install.log") files into a temporary prefix"
for example in "$source_dir"/examples/*/; do
  name=$(basename "$example")
  # A copy outside the checkout, built against the prefix only: no path into graft's source tree
  # or build folder may appear in its build.
  cp -r "$example" "$work/$name-source"
  cmake -S "$work/$name-source" -B "$work/$name" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
  cmake --build "$work/$name" > /dev/null
  if grep -q "$source_dir" "$work/$name/build.ninja"; then
    echo "check_install: $name's build names graft's source tree" >&2
    exit 1
  fi
  echo "check_install: $name $image"
  "$work/$name/$name" "$image"
done
# The installed graft opens its format modules (GDAL, HDF5) from the installed lib folder.
/usr/bin/python3 -c "import numpy; numpy.save('$work/plane.npy', numpy.arange(12, dtype=numpy.int16).reshape(3, 4))"
"$prefix/bin/graft" convert "$work/plane.npy" "$work/plane.tif"
"$prefix/bin/graft" convert "$work/plane.tif" "$work/plane.h5"
echo "check_install: installed graft wrote GeoTIFF and HDF5: $("$prefix/bin/graft" info "$work/plane.h5" | head -1)"
(cd "$build_dir" && cpack -G DEB > "$work/cpack.log") || { cat "$work/cpack.log" >&2; exit 1; }
package=$(ls "$build_dir"/graft_*.deb)
echo "check_install: $(basename "$package"), depends on: $(dpkg-deb -f "$package" Depends)"
