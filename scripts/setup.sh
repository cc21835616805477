#!/usr/bin/env bash
# Installs graft's Debian 12 packages (only those missing), then configures and builds Release.
# Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build pkg-config
  dpkg-dev                         # dpkg-shlibdeps: the Debian package's dependencies (cpack -G DEB)
  libtorch-dev                     # LibTorch 1.13 (CPU)
  libgloo-dev                      # Gloo's headers, for LibTorch's c10d process groups (data-parallel training)
  libopenblas0-openmp              # without it Debian's LibTorch runs every matmul on the reference BLAS (6x slower)
  libinsighttoolkit5-dev           # ITK 5.2: NIfTI and NRRD
  libgdcm-tools                    # ITK's CMake config names these tools; gdcmraw is also a DICOM reference
  libdcmtk-dev dcmtk               # DICOM series, codecs and DICOM SEG; dcmdump for tests
  libopenjp2-7-dev                 # JPEG 2000 frames, which Debian's DCMTK cannot decode
  dicom3tools                      # dciodvfy validates the DICOM SEG files graft writes (tests)
  libgdal-dev gdal-bin             # GeoTIFF/COG and other rasters; gdalinfo is the tests' reference
  libhdf5-dev                      # HDF5 and NetCDF-4
  libopenslide-dev                 # whole-slide images
  libcli11-dev nlohmann-json3-dev libyaml-cpp-dev zlib1g-dev libdeflate-dev libpng-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  qt6-base-dev qt6-charts-dev libqt6opengl6-dev libxkbcommon-dev libgl-dev  # the desktop app (graft-gui)
  qt6-qpa-plugins xvfb xauth       # Qt's offscreen platform and an X server (Xvfb) for the GUI tests
  python3 python3-numpy python3-nibabel python3-scipy python3-torch python3-pydicom dcm2niix  # references for tests and benches
  python3-h5py python3-hyperspy    # HDF5 reference reader, and the real TEM holograms hyperspy ships
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=sudo; else sudo_cmd=; fi
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build_dir=${GRAFT_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" --parallel "$(nproc)"
