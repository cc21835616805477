#pragma once

#include <cstdint>

namespace graft::io {

// What the DICOM header says one decoded frame must look like.
struct PixelLayout {
  std::int64_t rows = 0;
  std::int64_t columns = 0;
  int samples_per_pixel = 1;
  int bits_allocated = 16;  // 8, 16 or 32
  bool is_signed = false;   // PixelRepresentation == 1
};

}  // namespace graft::io
