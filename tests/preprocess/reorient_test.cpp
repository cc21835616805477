#include "preprocess/reorient.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/error.h"

namespace graft::preprocess {
namespace {

using io::Image;

Image numbered_image(const io::Mat3& direction) {
  io::Geometry g;
  g.size_xyz = {5, 4, 3};
  g.spacing_xyz = {1.0, 2.0, 3.0};
  g.origin_world = {10.0, -20.0, 5.0};
  g.direction = direction;
  Image image(io::DType::kI32, 2, g);
  for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<std::int32_t>()[i] = static_cast<std::int32_t>(i);
  return image;
}

// Every output voxel must hold the value that the input holds at the same world position.
void expect_same_world_content(const Image& in, const Image& out) {
  const auto& n = out.geometry().size_xyz;
  for (std::int64_t c = 0; c < out.channels(); ++c)
    for (std::int64_t z = 0; z < n[2]; ++z)
      for (std::int64_t y = 0; y < n[1]; ++y)
        for (std::int64_t x = 0; x < n[0]; ++x) {
          const io::Vec3 p = in.geometry().world_to_index(
              out.geometry().index_to_world({double(x), double(y), double(z)}));
          const auto ix = std::llround(p[0]), iy = std::llround(p[1]), iz = std::llround(p[2]);
          ASSERT_NEAR(p[0], ix, 1e-9);
          ASSERT_NEAR(p[1], iy, 1e-9);
          ASSERT_NEAR(p[2], iz, 1e-9);
          ASSERT_EQ(out.data<std::int32_t>()[out.offset(c, z, y, x)],
                    in.data<std::int32_t>()[in.offset(c, iz, iy, ix)]);
        }
}

TEST(Reorient, RasStorageToLpsFlipsXAndYAndKeepsEveryVoxelInPlace) {
  const Image ras = numbered_image({{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}});
  const Image lps = reorient(ras, "LPS");
  EXPECT_EQ(io::orientation_code(lps.geometry().direction), "LPS");
  // Voxel (0,0,0) of the result is the input's (4,3,0).
  EXPECT_EQ(lps.data<std::int32_t>()[0], ras.data<std::int32_t>()[ras.offset(0, 0, 3, 4)]);
  expect_same_world_content(ras, lps);
}

TEST(Reorient, PermutedAndObliqueGridsReachTheTargetCode) {
  const double c = std::cos(0.2), s = std::sin(0.2);
  const io::Mat3 directions[] = {
      {{{0, 0, -1}, {1, 0, 0}, {0, -1, 0}}},  // PIR
      {{{0, 1, 0}, {0, 0, 1}, {1, 0, 0}}},    // SLP
      {{{c, -s, 0}, {s, c, 0}, {0, 0, -1}}},  // oblique LPI
  };
  for (const auto& direction : directions) {
    const Image in = numbered_image(direction);
    for (const char* code : {"RAS", "LPS", "ASL", "IRP"}) {
      const Image out = reorient(in, code);
      EXPECT_EQ(io::orientation_code(out.geometry().direction), code);
      expect_same_world_content(in, out);
    }
  }
}

TEST(Reorient, InversePermutationRestoresTheOriginalExactly) {
  const Image in = numbered_image({{{0, 0, -1}, {1, 0, 0}, {0, -1, 0}}});
  const AxisPermutation to_ras = permutation_to_orientation(in.geometry().direction, "RAS");
  const Image back = permute_axes(permute_axes(in, to_ras), to_ras.inverse());
  EXPECT_TRUE(back.geometry().same_grid(in.geometry(), 1e-12));
  EXPECT_EQ(std::memcmp(back.bytes(), in.bytes(), in.byte_count()), 0);
}

TEST(Reorient, InvalidCodesAreRefused) {
  EXPECT_THROW(check_orientation_code("RAR"), Error);
  EXPECT_THROW(check_orientation_code("XYZ"), Error);
  EXPECT_THROW(check_orientation_code("RA"), Error);
}

}  // namespace
}  // namespace graft::preprocess
