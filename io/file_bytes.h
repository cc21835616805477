#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::io {

// Size of a file in bytes; throws graft::Error naming the path when it cannot be read.
std::uint64_t file_size_bytes(const std::string& path);

// Up to `max_bytes` from the start of a file, transparently gunzipped when the file is gzip
// (so a .nii.gz header can be checked before anything large is allocated).
std::vector<std::uint8_t> read_file_prefix(const std::string& path, std::size_t max_bytes);

bool is_gzip_file(const std::string& path);

// HDF5's superblock signature at offset 0, or after a user block: at 512, 1024, 2048, ... bytes,
// where the format specification has readers look, and where NeXus and beamline writers put XMP
// or other metadata. No HDF5 library needed.
bool has_hdf5_signature(const std::string& path);

// a * b, saturating at the largest value, so absurd header sizes compare as huge, not wrapped.
std::uint64_t saturating_multiply(std::uint64_t a, std::uint64_t b);

// DEFLATE cannot expand data by more than about 1032:1, so a gzip file that claims to hold more
// than this many bytes is lying, and is refused before allocation.
std::uint64_t max_gunzipped_bytes(std::uint64_t compressed_bytes);

// Refuses, naming path and field, a voxel payload that would not fit in the file, cannot be held
// by the platform, or exceeds GRAFT_MAX_IMAGE_GIB (default 64).
void check_payload_fits(const std::string& path, const std::string& field,
                        std::uint64_t payload_bytes, std::uint64_t available_bytes);

}  // namespace graft::io
