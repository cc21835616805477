#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/pixel_layout.h"

namespace graft::io {

// Decodes one frame of a DICOM JPEG 2000 transfer syntax (1.2.840.10008.1.2.4.90 and .91):
// a raw J2K codestream (FF 4F FF 51) or a JP2 file (signature box), told apart by their magic.
// `out` receives rows * columns * samples_per_pixel values of bits_allocated / 8 bytes each, in
// native byte order, samples interleaved per pixel. Throws graft::Error naming `source` (for
// example "file.dcm frame 3") when the codestream is corrupt, truncated or does not match
// `layout`. Keeps no shared state, so any number of threads may call it at once.
void decode_jpeg2000_frame(const std::uint8_t* codestream, std::size_t size,
                           const PixelLayout& layout, std::uint8_t* out, const std::string& source);

}  // namespace graft::io
