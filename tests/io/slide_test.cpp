// Whole slides through OpenSlide, on a pyramidal tiled TIFF the test makes: levels, microns per
// pixel from the TIFF resolution tags, regions equal to the pixels written, and the tissue patch
// grid against the known ellipse.
#include "io/slide/slide.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "io/error.h"
#include "tests/support/slide_fixture.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

TEST(Slide, APyramidalTiffOpensWithItsLevelsResolutionAndPixels) {
  const auto fixture = graft::testing::make_synthetic_slide(graft::testing::temp_dir());
  if (fixture.path.empty()) GTEST_SKIP() << "gdal_translate/gdaladdo (Debian gdal-bin) are not installed";
  const Slide slide(fixture.path);
  EXPECT_EQ(slide.vendor(), "generic-tiff");
  ASSERT_EQ(slide.levels().size(), 4u);
  EXPECT_EQ(slide.levels()[0].width, 1536);
  EXPECT_EQ(slide.levels()[0].height, 1024);
  EXPECT_EQ(slide.levels()[3].width, 192);
  EXPECT_NEAR(slide.levels()[2].downsample, 4.0, 1e-9);
  ASSERT_TRUE(slide.microns_per_pixel());
  EXPECT_NEAR(*slide.microns_per_pixel(), 0.25, 1e-9);

  // A region of level 0 is the pixels written, exactly (DEFLATE is lossless).
  const Image region = slide.read_region(0, 700, 300, 40, 30);
  ASSERT_EQ(region.channels(), 3);
  const std::int64_t plane = fixture.width * fixture.height;
  for (int c = 0; c < 3; ++c)
    for (std::int64_t y = 0; y < 30; ++y)
      for (std::int64_t x = 0; x < 40; ++x)
        ASSERT_EQ(region.data<std::uint8_t>()[c * 1200 + y * 40 + x],
                  fixture.base.data<std::uint8_t>()[c * plane + (300 + y) * fixture.width + 700 + x]);
  // Level 1 is GDAL's 2x2 average.
  const Image half = slide.read_region(1, 700, 300, 4, 4);
  const auto* base = fixture.base.data<std::uint8_t>();
  double average = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) average += base[(300 + dy) * fixture.width + 700 + dx] / 4.0;
  EXPECT_NEAR(half.data<std::uint8_t>()[0], average, 1.0);

  const std::string not_slide = graft::testing::temp_dir() + "/text.svs";
  std::ofstream(not_slide) << "not a slide";
  const std::string message = graft::testing::error_message([&] { Slide broken(not_slide); });
  EXPECT_NE(message.find("text.svs"), std::string::npos) << message;
}

TEST(Slide, TissuePatchesCoverTheEllipseAtTheTargetResolution) {
  const auto fixture = graft::testing::make_synthetic_slide(graft::testing::temp_dir());
  if (fixture.path.empty()) GTEST_SKIP() << "gdal_translate/gdaladdo (Debian gdal-bin) are not installed";
  const Slide slide(fixture.path);
  SlideTilingOptions options;
  options.target_microns_per_pixel = 0.5;  // 2x the scan's 0.25 um
  options.patch_px = 64;
  options.min_tissue_fraction = 0.5;
  options.mask_max_px = 400;  // level 2 (384 wide) holds the mask
  const SlidePatches patches = tissue_patches(slide, options);
  EXPECT_EQ(patches.level, 1);
  EXPECT_EQ(patches.read_px, 64);
  EXPECT_EQ(patches.level0_px, 128);
  EXPECT_EQ(patches.grid_patches, 12 * 8);
  EXPECT_GT(patches.tissue_threshold, 10.0);
  std::set<std::pair<std::int64_t, std::int64_t>> chosen;
  for (const auto& c : patches.coords) chosen.insert({c[0], c[1]});
  int inside = 0, outside = 0;
  for (std::int64_t y = 0; y + 128 <= 1024; y += 128) {
    for (std::int64_t x = 0; x + 128 <= 1536; x += 128) {
      int corners_in = 0;
      for (double fy : {0.0, 128.0})
        for (double fx : {0.0, 128.0}) corners_in += fixture.tissue(x + fx, y + fy);
      const bool centre_in = fixture.tissue(x + 64, y + 64);
      if (corners_in == 4) {  // the ellipse is convex: the whole patch is tissue
        EXPECT_TRUE(chosen.count({x, y})) << "patch " << x << "," << y << " is all tissue";
        ++inside;
      }
      if (corners_in == 0 && !centre_in) {
        EXPECT_FALSE(chosen.count({x, y})) << "patch " << x << "," << y << " is glass";
        ++outside;
      }
    }
  }
  EXPECT_GT(inside, 10);
  EXPECT_GT(outside, 20);
}

TEST(Slide, WithoutMicronsPerPixelTilingIsRefused) {
  const std::string folder = graft::testing::temp_dir();
  const auto fixture = graft::testing::make_synthetic_slide(folder, 512, 512);
  if (fixture.path.empty()) GTEST_SKIP() << "gdal_translate/gdaladdo (Debian gdal-bin) are not installed";
  const std::string bare = folder + "/bare.tif";
  ASSERT_EQ(graft::testing::run_command("gdal_translate -q -co TILED=YES -co PHOTOMETRIC=RGB '" + folder +
                                        "/base.tif' '" + bare + "'"),
            0);
  const Slide slide(bare);
  EXPECT_FALSE(slide.microns_per_pixel());
  const std::string message = graft::testing::error_message([&] { tissue_patches(slide, {}); });
  EXPECT_NE(message.find("microns per pixel"), std::string::npos) << message;
}

}  // namespace
}  // namespace graft::io
