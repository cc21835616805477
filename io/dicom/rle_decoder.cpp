#include "io/dicom/rle_decoder.h"

#include <cstring>

#include "io/error.h"

namespace graft::io {

namespace {

std::uint32_t little_endian_u32(const std::uint8_t* bytes) {
  return static_cast<std::uint32_t>(bytes[0]) | static_cast<std::uint32_t>(bytes[1]) << 8 |
         static_cast<std::uint32_t>(bytes[2]) << 16 | static_cast<std::uint32_t>(bytes[3]) << 24;
}

// PackBits: a control byte n, then n + 1 literal bytes (0 <= n <= 127) or one byte repeated
// 1 - n times (-127 <= n <= -1); -128 is a no-op. Writes `count` bytes, `stride` apart, and
// returns how many the segment held (decoding stops at `count`: encoders may pad a segment).
std::size_t unpack_segment(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out,
                           std::size_t count, std::size_t stride) {
  std::size_t read = 0, written = 0;
  while (written < count && read < in_size) {
    const auto control = static_cast<std::int8_t>(in[read++]);
    if (control >= 0) {
      std::size_t run = static_cast<std::size_t>(control) + 1;
      if (run > in_size - read) run = in_size - read;
      if (run > count - written) run = count - written;
      if (stride == 1) {
        std::memcpy(out + written, in + read, run);
      } else {
        for (std::size_t i = 0; i < run; ++i) out[(written + i) * stride] = in[read + i];
      }
      read += run;
      written += run;
    } else if (control != -128) {
      if (read >= in_size) break;
      const std::uint8_t value = in[read++];
      std::size_t run = static_cast<std::size_t>(1 - control);
      if (run > count - written) run = count - written;
      if (stride == 1) {
        std::memset(out + written, value, run);
      } else {
        for (std::size_t i = 0; i < run; ++i) out[(written + i) * stride] = value;
      }
      written += run;
    }
  }
  return written;
}

}  // namespace

void decode_rle_frame(const std::uint8_t* data, std::size_t size, const PixelLayout& layout,
                      std::uint8_t* out, const std::string& source) {
  constexpr std::size_t kHeaderBytes = 64;
  if (size < kHeaderBytes) {
    throw Error(source + ": RLE frame holds " + std::to_string(size) +
                " bytes, less than its 64-byte header");
  }
  const int bytes_per_sample = layout.bits_allocated / 8;
  const auto expected_segments =
      static_cast<std::uint32_t>(layout.samples_per_pixel * bytes_per_sample);
  const std::uint32_t segments = little_endian_u32(data);
  if (segments != expected_segments) {
    throw Error(source + ": RLE header has " + std::to_string(segments) +
                " segments, but SamplesPerPixel " + std::to_string(layout.samples_per_pixel) +
                " x BitsAllocated " + std::to_string(layout.bits_allocated) + " need " +
                std::to_string(expected_segments));
  }
  const auto pixels = static_cast<std::size_t>(layout.rows * layout.columns);
  const std::size_t stride = expected_segments;  // bytes per interleaved pixel
  for (std::uint32_t segment = 0; segment < segments; ++segment) {
    const std::uint32_t begin = little_endian_u32(data + 4 + 4 * segment);
    const std::uint32_t end = segment + 1 < segments ? little_endian_u32(data + 8 + 4 * segment)
                                                     : static_cast<std::uint32_t>(size);
    if (begin < kHeaderBytes || begin > end || end > size) {
      throw Error(source + ": RLE segment " + std::to_string(segment + 1) + " lies at bytes " +
                  std::to_string(begin) + "-" + std::to_string(end) + ", outside the " +
                  std::to_string(size) + "-byte frame");
    }
    // Segment order: sample by sample, most significant byte first; the output is little-endian.
    const int sample = static_cast<int>(segment) / bytes_per_sample;
    const int byte_in_sample = bytes_per_sample - 1 - static_cast<int>(segment) % bytes_per_sample;
    std::uint8_t* first =
        out + static_cast<std::size_t>(sample * bytes_per_sample + byte_in_sample);
    const std::size_t decoded = unpack_segment(data + begin, end - begin, first, pixels, stride);
    if (decoded != pixels) {
      throw Error(source + ": RLE segment " + std::to_string(segment + 1) + " decodes to " +
                  std::to_string(decoded) + " bytes, Rows x Columns need " +
                  std::to_string(pixels) + " (truncated or corrupt)");
    }
  }
}

}  // namespace graft::io
