#pragma once

#include <cstdint>
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
void write_npy_array(const NpyArray& array, const std::string& path);

// As an Image: shape (x), (y,x), (z,y,x) or (c,z,y,x), unit spacing, identity geometry.
Image read_npy(const std::string& path);
// Writes (y,x) for a single-channel 2D image, (z,y,x) for one channel, (c,z,y,x) otherwise.
void write_npy(const Image& image, const std::string& path);

}  // namespace graft::io
