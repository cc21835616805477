// DICOM RLE (PS3.5 Annex G) frames built byte by byte, with known decoded values, and broken
// frames that must fail with one line naming the source.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "io/error.h"
#include "io/dicom/rle_decoder.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

// A frame: the 64-byte header (segment count, then offsets), then the segments back to back.
std::vector<std::uint8_t> rle_frame(const std::vector<std::vector<std::uint8_t>>& segments) {
  std::vector<std::uint8_t> frame(64, 0);
  auto put = [&](std::size_t at, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) frame[at + i] = static_cast<std::uint8_t>(value >> (8 * i));
  };
  put(0, static_cast<std::uint32_t>(segments.size()));
  for (std::size_t s = 0; s < segments.size(); ++s) {
    put(4 + 4 * s, static_cast<std::uint32_t>(frame.size()));
    frame.insert(frame.end(), segments[s].begin(), segments[s].end());
  }
  return frame;
}

TEST(RleDecoder, LiteralAndRepeatRunsOfEightBits) {
  // 2 literal bytes (control 1), then 0x0C three times (control -2), a no-op (-128), one literal.
  const auto frame = rle_frame({{0x01, 0x0A, 0x0B, 0xFE, 0x0C, 0x80, 0x00, 0x0D}});
  std::vector<std::uint8_t> out(6);
  decode_rle_frame(frame.data(), frame.size(), {2, 3, 1, 8, false}, out.data(), "test");
  EXPECT_EQ(out, (std::vector<std::uint8_t>{0x0A, 0x0B, 0x0C, 0x0C, 0x0C, 0x0D}));
}

TEST(RleDecoder, SixteenBitSamplesComeMostSignificantSegmentFirst) {
  // Values 0x1234, 0x1256: high bytes 0x12 twice (repeat), low bytes 0x34, 0x56 (literal).
  const auto frame = rle_frame({{0xFF, 0x12}, {0x01, 0x34, 0x56}});
  std::vector<std::uint16_t> out(2);
  decode_rle_frame(frame.data(), frame.size(), {1, 2, 1, 16, false},
                   reinterpret_cast<std::uint8_t*>(out.data()), "test");
  EXPECT_EQ(out, (std::vector<std::uint16_t>{0x1234, 0x1256}));
}

TEST(RleDecoder, RgbSamplesAreInterleavedPerPixel) {
  const auto frame = rle_frame({{0xFF, 0x10}, {0xFF, 0x20}, {0x01, 0x30, 0x31}});
  std::vector<std::uint8_t> out(6);
  decode_rle_frame(frame.data(), frame.size(), {1, 2, 3, 8, false}, out.data(), "test");
  EXPECT_EQ(out, (std::vector<std::uint8_t>{0x10, 0x20, 0x30, 0x10, 0x20, 0x31}));
}

TEST(RleDecoder, BrokenFramesAreOneLineErrorsNamingTheSource) {
  std::vector<std::uint8_t> out(4);
  const PixelLayout grey16{1, 2, 1, 16, false};
  auto message = [&](std::vector<std::uint8_t> frame, const PixelLayout& layout) {
    return graft::testing::error_message([&] {
      decode_rle_frame(frame.data(), frame.size(), layout, out.data(), "scan.dcm frame 2");
    });
  };
  const std::string wrong_count = message(rle_frame({{0x01, 0x34, 0x56}}), grey16);
  EXPECT_NE(wrong_count.find("scan.dcm frame 2: RLE header has 1 segments"), std::string::npos)
      << wrong_count;
  const std::string short_segment = message(rle_frame({{0x00, 0x12}, {0x01, 0x34, 0x56}}), grey16);
  EXPECT_NE(short_segment.find("segment 1 decodes to 1 bytes"), std::string::npos) << short_segment;
  auto outside = rle_frame({{0xFF, 0x12}, {0x01, 0x34, 0x56}});
  outside[8] = 0xF0;  // segment 2 starts past the end
  EXPECT_NE(message(outside, grey16).find("outside the"), std::string::npos);
  EXPECT_NE(message(std::vector<std::uint8_t>(10, 0), grey16).find("less than its 64-byte header"),
            std::string::npos);
  for (const auto& text : {wrong_count, short_segment})
    EXPECT_EQ(text.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace graft::io
