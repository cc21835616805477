#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <vector>

#include "io/image.h"

namespace graft::io {

// A raw NumPy array: its dtype, C-order shape, and bytes in native (little-endian) order.
struct NpyArray {
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;
  std::int64_t element_count() const;
};

// NPY versions 1-3, either byte order, C or Fortran order. Fortran arrays are transposed to C
// order on read so callers see one layout.
NpyArray read_npy_array(const std::string& path);
// The same from a stream holding `total_bytes` (an .npz member); errors name `source`.
NpyArray read_npy_array(std::istream& in, std::uint64_t total_bytes, const std::string& source);
void write_npy_array(const NpyArray& array, const std::string& path);

// The arrays of an .npz (numpy.savez, stored, or savez_compressed, deflated; ZIP64 too), by name
// without ".npy". Errors name the file and the member.
std::map<std::string, NpyArray> read_npz(const std::string& path);

// As an Image: shape (x), (y,x), (z,y,x) or (c,z,y,x), unit spacing, identity geometry.
Image read_npy(const std::string& path);
// Writes (y,x) for a single-channel 2D image, (z,y,x) for one channel, (c,z,y,x) otherwise.
void write_npy(const Image& image, const std::string& path);

}  // namespace graft::io
