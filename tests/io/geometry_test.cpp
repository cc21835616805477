#include "io/geometry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "io/error.h"

namespace graft::io {
namespace {

Geometry ras_like_geometry() {
  Geometry g;
  g.size_xyz = {10, 20, 30};
  g.spacing_xyz = {2.0, 3.0, 4.0};
  g.origin_world = {10.0, 20.0, 30.0};
  g.direction = {{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}};  // RAS storage seen in LPS
  return g;
}

Geometry oblique_geometry(double angle_rad) {
  Geometry g;
  g.size_xyz = {64, 64, 20};
  g.spacing_xyz = {0.8, 0.8, 2.5};
  g.origin_world = {-12.5, 40.0, -7.25};
  const double c = std::cos(angle_rad), s = std::sin(angle_rad);
  // Rotation about x by angle: the y and z axes tilt, as in an oblique MR acquisition.
  g.direction = {{{1, 0, 0}, {0, c, -s}, {0, s, c}}};
  return g;
}

TEST(Geometry, IndexToWorldOnLpsIdentityIsOriginPlusSpacingTimesIndex) {
  Geometry g;
  g.spacing_xyz = {0.5, 0.75, 2.0};
  g.origin_world = {1.0, 2.0, 3.0};
  const Vec3 world = g.index_to_world({4, 8, 2});
  EXPECT_DOUBLE_EQ(world[0], 3.0);
  EXPECT_DOUBLE_EQ(world[1], 8.0);
  EXPECT_DOUBLE_EQ(world[2], 7.0);
}

TEST(Geometry, IndexToWorldOnRasStorageFlipsXAndY) {
  const Vec3 world = ras_like_geometry().index_to_world({1, 2, 3});
  EXPECT_DOUBLE_EQ(world[0], 10.0 - 2.0);
  EXPECT_DOUBLE_EQ(world[1], 20.0 - 6.0);
  EXPECT_DOUBLE_EQ(world[2], 30.0 + 12.0);
  EXPECT_EQ(orientation_code(ras_like_geometry().direction), "RAS");
}

TEST(Geometry, IndexToWorldOnObliqueGridFollowsTheRotation) {
  const double angle = 30.0 * M_PI / 180.0;
  const Geometry g = oblique_geometry(angle);
  // One step along z moves 2.5 mm along (0, -sin, cos).
  const Vec3 world = g.index_to_world({0, 0, 1});
  EXPECT_NEAR(world[0], -12.5, 1e-12);
  EXPECT_NEAR(world[1], 40.0 - 2.5 * std::sin(angle), 1e-12);
  EXPECT_NEAR(world[2], -7.25 + 2.5 * std::cos(angle), 1e-12);
}

TEST(Geometry, WorldToIndexInvertsIndexToWorldExactly) {
  std::mt19937 random(7);
  std::uniform_real_distribution<double> uniform(-50.0, 50.0);
  for (const Geometry& g : {ras_like_geometry(), oblique_geometry(0.3), oblique_geometry(-1.1)}) {
    for (int trial = 0; trial < 100; ++trial) {
      const Vec3 index{uniform(random), uniform(random), uniform(random)};
      const Vec3 back = g.world_to_index(g.index_to_world(index));
      for (int a = 0; a < 3; ++a) EXPECT_NEAR(back[a], index[a], 1e-10);
    }
  }
}

TEST(Geometry, WorldToIndexHandlesShearedRasterTransforms) {
  Geometry g;
  g.frame = Frame::kCRS;
  g.spacing_xyz = {30.0, 30.0, 1.0};
  g.direction = {{{0.9, 0.3, 0}, {0.1, -0.95, 0}, {0, 0, 1}}};  // rotated, not orthogonal
  const Vec3 index{12.25, 7.5, 0};
  const Vec3 back = g.world_to_index(g.index_to_world(index));
  EXPECT_NEAR(back[0], 12.25, 1e-10);
  EXPECT_NEAR(back[1], 7.5, 1e-10);
}

TEST(Geometry, OrientationCodesNameTheNearestAxes) {
  EXPECT_EQ(orientation_code(Geometry().direction), "LPS");
  EXPECT_EQ(orientation_code(oblique_geometry(0.2).direction), "LPS");
  EXPECT_EQ(orientation_code({{{0, 0, -1}, {1, 0, 0}, {0, -1, 0}}}), "PIR");
}

TEST(Geometry, ValidateRefusesNanAndNegativeSpacingNamingTheSource) {
  Geometry g;
  g.spacing_xyz[1] = std::nan("");
  try {
    g.validate("scan.nii");
    FAIL() << "NaN spacing was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scan.nii"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("spacing along y"), std::string::npos);
  }
  g.spacing_xyz[1] = -1.0;
  EXPECT_THROW(g.validate("scan.nii"), Error);
  g.spacing_xyz[1] = 1.0;
  g.direction[2] = {0, 0, 0};
  EXPECT_THROW(g.validate("scan.nii"), Error);
}

TEST(Geometry, SameGridReportsWhatDiffers) {
  Geometry a = ras_like_geometry(), b = a;
  EXPECT_TRUE(a.same_grid(b));
  b.spacing_xyz[2] = 5.0;
  EXPECT_FALSE(a.same_grid(b));
  EXPECT_NE(a.describe_difference(b).find("spacing"), std::string::npos);
}

}  // namespace
}  // namespace graft::io
