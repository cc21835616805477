#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/pixel_layout.h"

namespace graft::io {

// Decodes one frame of DICOM RLE Lossless (1.2.840.10008.1.2.5, PS3.5 Annex G): a 64-byte
// header of segment offsets, then one PackBits segment per byte plane, most significant byte of
// each sample first. `out` receives rows * columns * samples_per_pixel values of
// bits_allocated / 8 bytes, native (little-endian) byte order, samples interleaved per pixel.
// Throws graft::Error naming `source` when the segment count does not fit the layout, an offset
// points outside the frame, or a segment decodes to the wrong length. Thread-safe.
void decode_rle_frame(const std::uint8_t* data, std::size_t size, const PixelLayout& layout,
                      std::uint8_t* out, const std::string& source);

}  // namespace graft::io
