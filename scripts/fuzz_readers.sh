#!/usr/bin/env bash
# Builds the LibTorch-free `graft` and its libraries with AddressSanitizer and
# UndefinedBehaviorSanitizer (CMake option GRAFT_SANITIZE) and fuzzes every reader through
# `graft info` and `graft convert` on mutated copies of the real files in ../shared/data
# (scripts/fuzz_readers.py). The sanitizer's allocator is capped at 4 GiB, so a header that makes
# graft reserve far more than its file holds is reported. Findings (file + log) go to
# WORK/findings/; the exit code is 1 when there are any.
#
#   bash scripts/fuzz_readers.sh [minutes-per-reader] [readers] [build-dir] [work-dir]
#   bash scripts/fuzz_readers.sh 10 nifti,nrrd,npy,dicom,geotiff,hdf5 build-asan /tmp/graft-fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
readers=${2:-nifti,nrrd,npy,dicom,geotiff,hdf5}
build=${3:-build-asan}
work=${4:-/tmp/graft-fuzz}

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_SANITIZE=ON \
  -DGRAFT_BUILD_TESTS=OFF -DGRAFT_BUILD_BENCH=OFF -DGRAFT_BUILD_SLICER=OFF -DGRAFT_BUILD_GUI=OFF > /dev/null
cmake --build "$build" --target graft

export ASAN_OPTIONS=detect_leaks=0:max_allocation_size_mb=4096:allocator_may_return_null=0:exitcode=86:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
mkdir -p "$work"
/usr/bin/python3 scripts/fuzz_readers.py --graft "$build/cli/graft" --work "$work" --minutes "$minutes" \
  --readers "$readers" --shared "${GRAFT_SHARED_DATA:-../shared/data}"
