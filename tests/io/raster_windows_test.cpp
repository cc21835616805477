// Windows over rasters and the window-by-window GeoTIFF writer, on the real rasterio GeoTIFFs.
#include "io/raster/raster_windows.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/raster/gdal_raster.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

namespace fs = std::filesystem;

std::string geotiff(const std::string& relative) {
  return graft::testing::shared_data_dir() + "/geotiff/" + relative;
}

TEST(RasterWindows, GridCoversEveryPixelWithFullSizedOverlappingWindows) {
  const auto windows = grid_windows(100, 70, 32, 8);
  // Starts 0, 24, 48, 68 across and 0, 24, 38 down: the last ones end at the edge.
  ASSERT_EQ(windows.size(), 12u);
  EXPECT_EQ(windows[3].x, 68);
  EXPECT_EQ(windows[11].y, 38);
  std::vector<int> covered(100 * 70, 0);
  for (const auto& w : windows) {
    EXPECT_EQ(w.width, 32);
    EXPECT_EQ(w.height, 32);
    for (std::int64_t y = w.y; y < w.y + w.height; ++y)
      for (std::int64_t x = w.x; x < w.x + w.width; ++x) ++covered[y * 100 + x];
  }
  EXPECT_EQ(std::count(covered.begin(), covered.end(), 0), 0);
  // A raster smaller than the window is one clipped window.
  const auto small = grid_windows(20, 10, 32, 8);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].width, 20);
  EXPECT_EQ(small[0].height, 10);
  EXPECT_THROW(grid_windows(100, 70, 32, 32), UsageError);
}

TEST(RasterWindows, MapDistancesBecomePixelsAndWindowsKeepTheirPlace) {
  const GeoTransform ten_metre{500000, 10, 0, 4000000, 0, -10};
  EXPECT_EQ(pixels_for_map_distance(ten_metre, 1200.0), 120);
  const GeoTransform w = window_geotransform(ten_metre, {30, 20, 64, 64});
  EXPECT_EQ(w[0], 500300.0);
  EXPECT_EQ(w[3], 3999800.0);
}

TEST(RasterWindows, RandomWindowsAvoidNodataAndRepeatForASeed) {
  GRAFT_REQUIRE_SHARED_DATA();
  // RGB.byte.tif is a rotated Landsat scene in a frame of nodata (0).
  const std::string path = geotiff("rasterio/RGB.byte.tif");
  RandomWindowOptions options;
  options.size_px = 64;
  options.count = 6;
  options.seed = 7;
  const auto windows = random_windows(path, options);
  ASSERT_EQ(windows.size(), 6u);
  for (const auto& w : windows) {
    GdalReadOptions read;
    read.window = w;
    const Image pixels = read_gdal(path, read);
    const std::int64_t plane = pixels.voxels_per_channel();
    for (std::int64_t i = 0; i < plane; ++i) {
      const bool nodata = pixels.value_at(i) == 0 || pixels.value_at(plane + i) == 0 ||
                          pixels.value_at(2 * plane + i) == 0;
      ASSERT_FALSE(nodata) << "window at " << w.x << ", " << w.y << " holds nodata at " << i;
    }
  }
  const auto again = random_windows(path, options);
  for (std::size_t i = 0; i < windows.size(); ++i) {
    EXPECT_EQ(again[i].x, windows[i].x);
    EXPECT_EQ(again[i].y, windows[i].y);
  }
  options.size_px = 800;
  EXPECT_NE(graft::testing::error_message([&] {
              random_windows(path, options);
            }).find("does not fit the 791 x 718"),
            std::string::npos);
}

TEST(GdalRasterWriter, WindowByWindowEqualsTheWholeAndAnAbandonedWriterLeavesNothing) {
  GRAFT_REQUIRE_SHARED_DATA();
  const Image scene = read(geotiff("rasterio/RGB.byte.tif"));
  const GdalRasterInfo info = read_gdal_info(geotiff("rasterio/RGB.byte.tif"));
  RasterLayout layout;
  layout.width = info.width;
  layout.height = info.height;
  layout.bands = 3;
  layout.dtype = DType::kU8;
  layout.geotransform = *info.geotransform;
  layout.crs_wkt = info.crs_wkt;
  layout.nodata = 0.0;
  layout.band_names = {"Red", "Green", "Blue"};
  const std::string folder = graft::testing::temp_dir();
  for (bool cog : {false, true}) {
    SCOPED_TRACE(cog ? "COG" : "GeoTIFF");
    const std::string out = folder + (cog ? "/streamed.cog.tif" : "/streamed.tif");
    GdalWriteOptions options;
    options.cloud_optimized = cog;
    GdalRasterWriter writer(out, layout, options);
    for (const auto& w : grid_windows(info.width, info.height, 200, 40)) {
      GdalReadOptions read;
      read.window = w;
      writer.write(read_gdal(geotiff("rasterio/RGB.byte.tif"), read), w.x, w.y);
    }
    EXPECT_FALSE(fs::exists(out)) << "the file appears only when finished";
    writer.finish();
    const Image back = read(out);
    ASSERT_EQ(back.byte_count(), scene.byte_count());
    EXPECT_EQ(std::memcmp(back.bytes(), scene.bytes(), scene.byte_count()), 0);
    EXPECT_EQ(*back.geometry().geotransform, *scene.geometry().geotransform);
    EXPECT_TRUE(same_crs(back.geometry().crs_wkt, scene.geometry().crs_wkt));
    EXPECT_EQ(back.metadata().nodata, scene.metadata().nodata);
    EXPECT_EQ(back.metadata().band_names, scene.metadata().band_names);
  }
  {
    GdalRasterWriter abandoned(folder + "/abandoned.tif", layout);
    GdalReadOptions read;
    read.window = PixelWindow{0, 0, 100, 100};
    abandoned.write(read_gdal(geotiff("rasterio/RGB.byte.tif"), read), 0, 0);
    EXPECT_NE(graft::testing::error_message([&] {
                abandoned.write(read_gdal(geotiff("rasterio/RGB.byte.tif"), read), 750, 0);
              }).find("lies outside the 791 x 718 raster"),
              std::string::npos);
  }
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "streamed.tif" || name == "streamed.cog.tif") << "left behind: " << name;
  }
}

}  // namespace
}  // namespace graft::io
