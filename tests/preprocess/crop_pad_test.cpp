#include "preprocess/crop_pad.h"

#include <gtest/gtest.h>

#include <cstring>

namespace graft::preprocess {
namespace {

using io::Image;

Image block_image() {
  io::Geometry g;
  g.size_xyz = {10, 8, 6};
  g.spacing_xyz = {0.5, 1.0, 2.0};
  g.origin_world = {1.0, 2.0, 3.0};
  g.direction = {{{0, 1, 0}, {-1, 0, 0}, {0, 0, 1}}};
  Image image(io::DType::kU16, 1, g);
  for (std::int64_t z = 2; z <= 4; ++z)
    for (std::int64_t y = 1; y <= 5; ++y)
      for (std::int64_t x = 3; x <= 6; ++x) image.data<std::uint16_t>()[image.offset(0, z, y, x)] = 100 + x;
  return image;
}

TEST(CropPad, NonzeroBoundingBoxIsTheKnownBlock) {
  const auto box = nonzero_bounding_box(block_image());
  ASSERT_TRUE(box.has_value());
  EXPECT_EQ(box->start_xyz, (std::array<std::int64_t, 3>{3, 1, 2}));
  EXPECT_EQ(box->size_xyz, (std::array<std::int64_t, 3>{4, 5, 3}));
}

TEST(CropPad, AllZeroImageHasNoBox) {
  io::Geometry g;
  EXPECT_FALSE(nonzero_bounding_box(Image(io::DType::kF32, 1, g)).has_value());
}

TEST(CropPad, CropKeepsVoxelsAtTheirWorldPositions) {
  const Image image = block_image();
  const Image cropped = crop_or_pad(image, *nonzero_bounding_box(image));
  const io::Vec3 first = cropped.geometry().index_to_world({0, 0, 0});
  const io::Vec3 expected = image.geometry().index_to_world({3, 1, 2});
  for (int a = 0; a < 3; ++a) EXPECT_DOUBLE_EQ(first[a], expected[a]);
  EXPECT_EQ(cropped.data<std::uint16_t>()[0], 103);
  EXPECT_EQ(cropped.data<std::uint16_t>()[3], 106);
}

TEST(CropPad, PaddingFillsAndCropBackRestoresTheOriginal) {
  const Image image = block_image();
  IndexBox grow;
  grow.start_xyz = {-2, -3, -1};
  grow.size_xyz = {15, 12, 9};
  const Image padded = crop_or_pad(image, grow, 7.0);
  EXPECT_EQ(padded.data<std::uint16_t>()[0], 7);
  IndexBox back;
  back.start_xyz = {2, 3, 1};
  back.size_xyz = image.geometry().size_xyz;
  const Image restored = crop_or_pad(padded, back);
  EXPECT_TRUE(restored.geometry().same_grid(image.geometry(), 1e-12));
  EXPECT_EQ(std::memcmp(restored.bytes(), image.bytes(), image.byte_count()), 0);
}

TEST(CropPad, PadToSizeCentresTheImage) {
  const Image padded = pad_to_size(block_image(), {12, 8, 9});
  EXPECT_EQ(padded.geometry().size_xyz, (std::array<std::int64_t, 3>{12, 8, 9}));
  // One voxel added before x, one before z (extra goes at the end).
  EXPECT_EQ(padded.data<std::uint16_t>()[padded.offset(0, 3, 1, 4)], 103);
}

}  // namespace
}  // namespace graft::preprocess
