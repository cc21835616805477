// GDAL rasters against gdalinfo -json and gdal_translate on the real GeoTIFFs in ../shared/data:
// header fields, exact round trips, windows, overviews, band stacks, and the corrupt file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/raster/gdal_raster.h"
#include "io/image_file.h"
#include "io/image_info.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

namespace fs = std::filesystem;

std::string geotiff(const std::string& relative) {
  return graft::testing::shared_data_dir() + "/geotiff/" + relative;
}

#define REQUIRE_GDALINFO()                                                        \
  do {                                                                            \
    GRAFT_REQUIRE_SHARED_DATA();                                                  \
    if (graft::testing::run_command("command -v gdalinfo >/dev/null && "          \
                                    "command -v gdal_translate >/dev/null") != 0) \
      GTEST_SKIP() << "gdalinfo/gdal_translate (Debian gdal-bin) absent";         \
  } while (0)

nlohmann::json gdalinfo(const std::string& path) {
  std::string output;
  EXPECT_EQ(graft::testing::run_command("gdalinfo -json '" + path + "' 2>/dev/null", &output), 0)
      << output;
  return nlohmann::json::parse(output);
}

// gdalinfo's CRS, or "" for a raster without one (rotated.tif).
std::string wkt_of(const nlohmann::json& gdalinfo_json) {
  return gdalinfo_json.value("coordinateSystem", nlohmann::json::object()).value("wkt", "");
}

const std::vector<std::string> kReadable = {
    "rasterio/RGB.byte.tif",   "rasterio/RGBA.uint16.tif",
    "rasterio/cogeo.tif",      "rasterio/float_raster_with_nodata.tif",
    "rasterio/rgb_lzw.tif",    "rasterio/rotated.tif",
    "rasterio/world.byte.tif", "landsat8/l8_B4.tif"};

// gdalinfo writes nodata as a number, or "nan" / "inf" as text; graft's info does the same.
void expect_same_nodata(const nlohmann::json& ours, const nlohmann::json& band, std::size_t index) {
  if (!band.contains("noDataValue")) {
    EXPECT_TRUE(ours.is_null() || ours[index].is_null()) << "band " << index + 1;
    return;
  }
  ASSERT_FALSE(ours.is_null()) << "band " << index + 1 << " has nodata " << band["noDataValue"];
  if (band["noDataValue"].is_number() && band["type"] == "Float32") {
    // gdalinfo prints a float32 band's nodata to float precision (-3.4e+38 for -3.39999995e+38).
    EXPECT_EQ(static_cast<float>(ours[index].get<double>()),
              static_cast<float>(band["noDataValue"].get<double>()));
  } else {
    EXPECT_EQ(ours[index], band["noDataValue"]) << "band " << index + 1;
  }
}

void expect_same_header(const Image& image, const nlohmann::json& reference) {
  const nlohmann::json ours = image_info_json(image);
  EXPECT_EQ(ours["size"][0], reference["size"][0]);
  EXPECT_EQ(ours["size"][1], reference["size"][1]);
  EXPECT_EQ(ours["channels"].get<std::size_t>(), reference["bands"].size());
  ASSERT_TRUE(reference.contains("geoTransform"));
  for (int i = 0; i < 6; ++i) {
    // gdalinfo prints 16 significant digits (4.999999999999999 as 5.0): equal to within ulps.
    EXPECT_DOUBLE_EQ(ours["geotransform"][i].get<double>(),
                     reference["geoTransform"][i].get<double>())
        << "term " << i;
  }
  // The same CRS, not the same text: GDAL caches CRSs built from GeoTIFF keys within a process,
  // so one WKT may spell WGS 84 as a datum and another as the datum ensemble.
  const std::string wkt = wkt_of(reference);
  EXPECT_TRUE(same_crs(ours["crs_wkt"].get<std::string>(), wkt)) << ours["crs_wkt"] << "\nvs\n"
                                                                 << wkt;
  for (std::size_t b = 0; b < reference["bands"].size(); ++b)
    expect_same_nodata(ours["nodata"], reference["bands"][b], b);
}

void expect_same_voxels(const Image& ours, const Image& expected) {
  ASSERT_EQ(ours.dtype(), expected.dtype());
  ASSERT_EQ(ours.byte_count(), expected.byte_count());
  EXPECT_EQ(std::memcmp(ours.bytes(), expected.bytes(), ours.byte_count()), 0);
}

// A 20 KB uncompressed TIFF whose header claims 16000 bands of 1000 x 1000 pixels (16 GB).
std::string tiff_claiming_many_bands(const std::string& path) {
  std::string bytes = std::string("II") + '\x2a' + '\0' + std::string("\x08\0\0\0", 4);
  auto put16 = [&](std::uint16_t v) { bytes += static_cast<char>(v & 0xff); bytes += static_cast<char>(v >> 8); };
  auto put32 = [&](std::uint32_t v) { for (int k = 0; k < 4; ++k) bytes += static_cast<char>((v >> (8 * k)) & 0xff); };
  const std::uint16_t entries = 10;
  const std::uint32_t data_offset = 8 + 2 + entries * 12 + 4;
  put16(entries);
  auto entry = [&](std::uint16_t tag, std::uint16_t type, std::uint32_t value) {
    put16(tag);
    put16(type);
    put32(1);
    if (type == 3) {
      put16(static_cast<std::uint16_t>(value));
      put16(0);
    } else {
      put32(value);
    }
  };
  entry(256, 3, 1000);           // ImageWidth
  entry(257, 3, 1000);           // ImageLength
  entry(258, 3, 8);              // BitsPerSample
  entry(259, 3, 1);              // Compression: none
  entry(262, 3, 1);              // Photometric: min-is-black
  entry(273, 4, data_offset);    // StripOffsets
  entry(277, 3, 16000);          // SamplesPerPixel
  entry(278, 3, 1000);           // RowsPerStrip
  entry(279, 4, 16000000000u % 4294967296u);  // StripByteCounts (wrapped, as a damaged header has it)
  entry(284, 3, 1);              // PlanarConfiguration: contiguous
  put32(0);
  bytes.resize(20000, '\0');
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(Gdal, AnUncompressedTiffClaimingMorePixelsThanItHoldsIsRefusedBeforeAllocating) {
  const std::string path = tiff_claiming_many_bands(graft::testing::temp_dir() + "/bands.tif");
  const std::string message = graft::testing::error_message([&] { read(path); });
  EXPECT_NE(message.find("16000 bands of 1000 x 1000 u8 pixels, uncompressed, needs 16000000000 bytes"),
            std::string::npos) << message;
  EXPECT_NE(message.find("the file holds at most 20000"), std::string::npos) << message;
}

TEST(Gdal, InfoAgreesWithGdalinfoOnEveryGeoTiff) {
  REQUIRE_GDALINFO();
  for (const auto& name : kReadable) {
    SCOPED_TRACE(name);
    expect_same_header(read(geotiff(name)), gdalinfo(geotiff(name)));
  }
}

TEST(Gdal, HeaderInfoMatchesTheImageWithoutReadingPixels) {
  REQUIRE_GDALINFO();
  const GdalRasterInfo info = read_gdal_info(geotiff("rasterio/cogeo.tif"));
  EXPECT_EQ(info.width, 1024);
  EXPECT_EQ(info.bands.size(), 3u);
  EXPECT_EQ(info.bands[0].overview_sizes.size(), 6u);
  EXPECT_EQ(info.bands[0].overview_sizes[0], (std::array<std::int64_t, 2>{512, 512}));
  EXPECT_EQ(info.bands[0].name, "Red");
  // The corrupt file's header is intact; only its pixels fail.
  EXPECT_EQ(read_gdal_info(geotiff("rasterio/corrupt.tif")).width, 1024);
}

TEST(Gdal, ConvertRoundTripsEveryGeoTiffExactly) {
  REQUIRE_GDALINFO();
  const std::string dir = graft::testing::temp_dir();
  for (const auto& name : kReadable) {
    SCOPED_TRACE(name);
    const Image original = read(geotiff(name));
    const std::string copy = dir + "/" + fs::path(name).filename().string();
    write(original, copy);
    const nlohmann::json reference = gdalinfo(geotiff(name));
    const nlohmann::json written = gdalinfo(copy);
    EXPECT_EQ(written["geoTransform"], reference["geoTransform"]);
    EXPECT_TRUE(same_crs(wkt_of(written), wkt_of(reference)));
    for (std::size_t b = 0; b < reference["bands"].size(); ++b) {
      EXPECT_EQ(written["bands"][b]["type"], reference["bands"][b]["type"]);
      EXPECT_EQ(written["bands"][b].value("noDataValue", nlohmann::json()),
                reference["bands"][b].value("noDataValue", nlohmann::json()));
    }
    const Image back = read(copy);
    expect_same_voxels(back, original);
    EXPECT_EQ(*back.geometry().geotransform, *original.geometry().geotransform);  // bit for bit
    EXPECT_EQ(back.metadata().nodata, original.metadata().nodata);
    expect_same_header(back, reference);
  }
}

TEST(Gdal, CloudOptimizedOutputIsACogWithOverviews) {
  REQUIRE_GDALINFO();
  const Image original = read(geotiff("rasterio/RGB.byte.tif"));
  const std::string cog = graft::testing::temp_dir() + "/rgb.cog.tif";
  GdalWriteOptions options;
  options.cloud_optimized = true;
  options.compression = "LZW";
  write_gdal(original, cog, options);
  const nlohmann::json info = gdalinfo(cog);
  EXPECT_EQ(info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"], "COG");
  EXPECT_EQ(info["metadata"]["IMAGE_STRUCTURE"]["COMPRESSION"], "LZW");
  EXPECT_FALSE(info["bands"][0]["overviews"].empty());
  expect_same_voxels(read(cog), original);
}

TEST(Gdal, WindowIsTheSameCropOfTheFullReadWithAShiftedGeotransform) {
  REQUIRE_GDALINFO();
  const Image full = read(geotiff("rasterio/RGB.byte.tif"));
  GdalReadOptions options;
  options.window = PixelWindow{100, 200, 50, 40};
  options.bands = {3, 1};
  const Image window = read_gdal(geotiff("rasterio/RGB.byte.tif"), options);
  ASSERT_EQ(window.geometry().size_xyz, (std::array<std::int64_t, 3>{50, 40, 1}));
  ASSERT_EQ(window.channels(), 2);
  EXPECT_EQ(window.metadata().band_names, (std::vector<std::string>{"Blue", "Red"}));
  for (std::int64_t c = 0; c < 2; ++c) {
    const std::int64_t band = c == 0 ? 2 : 0;
    for (std::int64_t y = 0; y < 40; ++y) {
      for (std::int64_t x = 0; x < 50; ++x) {
        ASSERT_EQ(window.value_at(window.offset(c, 0, y, x)),
                  full.value_at(full.offset(band, 0, y + 200, x + 100)));
      }
    }
  }
  const GeoTransform& whole = *full.geometry().geotransform;
  const GeoTransform& part = *window.geometry().geotransform;
  EXPECT_EQ(part[0], whole[0] + 100 * whole[1]);
  EXPECT_EQ(part[3], whole[3] + 200 * whole[5]);
  // The same world point from either grid.
  const Vec3 corner = window.geometry().index_to_world({0, 0, 0});
  const Vec3 in_full = full.geometry().world_to_index(corner);
  EXPECT_NEAR(in_full[0], 100, 1e-9);
  EXPECT_NEAR(in_full[1], 200, 1e-9);
  const std::string outside = graft::testing::error_message([] {
    GdalReadOptions bad;
    bad.window = PixelWindow{780, 0, 50, 10};
    read_gdal(geotiff("rasterio/RGB.byte.tif"), bad);
  });
  EXPECT_NE(outside.find("lies outside the 791 x 718 raster"), std::string::npos) << outside;
}

TEST(Gdal, OverviewLevelMatchesGdalTranslateAndScalesTheGeotransform) {
  REQUIRE_GDALINFO();
  const std::string dir = graft::testing::temp_dir();
  const std::string reference = dir + "/overview1.tif";
  ASSERT_EQ(graft::testing::run_command("gdal_translate -q -ovr 1 '" +
                                        geotiff("rasterio/cogeo.tif") + "' '" + reference + "'"),
            0);
  GdalReadOptions options;
  options.overview = 1;
  const Image overview = read_gdal(geotiff("rasterio/cogeo.tif"), options);
  EXPECT_EQ(overview.geometry().size_xyz, (std::array<std::int64_t, 3>{256, 256, 1}));
  expect_same_voxels(overview, read(reference));
  EXPECT_EQ(*overview.geometry().geotransform, *read(reference).geometry().geotransform);
}

TEST(Gdal, CorruptFileIsOneLineErrorNamingIt) {
  REQUIRE_GDALINFO();
  const std::string message =
      graft::testing::error_message([] { read(geotiff("rasterio/corrupt.tif")); });
  EXPECT_NE(message.find("corrupt.tif: pixels unreadable"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// Each BigEarthNet patch ships 12 bands at 10, 20 and 60 m (120, 60 and 20 pixels over the same
// 1.2 km); the stack lies on the 10 m grid, and each coarser band is what gdal_translate's
// bilinear resize of that file gives.
TEST(Gdal, BigEarthNetBandsStackOnTheTenMetreGrid) {
  REQUIRE_GDALINFO();
  const std::string folder =
      geotiff("bigearthnet/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48");
  std::vector<std::string> files;
  for (const char* band :
       {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"}) {
    files.push_back(folder + "/S2A_MSIL2A_20170613T101031_87_48_" + band + ".tif");
  }
  const Image stack = read_band_stack(files);
  EXPECT_EQ(stack.geometry().size_xyz, (std::array<std::int64_t, 3>{120, 120, 1}));
  ASSERT_EQ(stack.channels(), 12);
  EXPECT_EQ(stack.metadata().band_names[8], "B8A");
  const Image b02 = read(files[1]);
  EXPECT_EQ(*stack.geometry().geotransform, *b02.geometry().geotransform);
  const std::string dir = graft::testing::temp_dir();
  for (int c : {0, 1, 4, 10}) {  // 60 m, 10 m, 20 m, 20 m
    SCOPED_TRACE(stack.metadata().band_names[c]);
    const std::string resized = dir + "/" + stack.metadata().band_names[c] + ".tif";
    ASSERT_EQ(graft::testing::run_command("gdal_translate -q -outsize 120 120 -r bilinear '" +
                                          files[c] + "' '" + resized + "'"),
              0);
    const Image expected = read(resized);
    EXPECT_EQ(*expected.geometry().geotransform, *stack.geometry().geotransform);
    for (std::int64_t i = 0; i < expected.element_count(); ++i) {
      ASSERT_EQ(stack.value_at(c * 120 * 120 + i), expected.value_at(i)) << "pixel " << i;
    }
  }
}

TEST(Gdal, LandsatBandFilesStackIntoOneImage) {
  REQUIRE_GDALINFO();
  std::vector<std::string> files;
  for (const char* band : {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10", "B11", "BQA"}) {
    files.push_back(geotiff(std::string("landsat8/l8_") + band + ".tif"));
  }
  BandStackOptions options;
  options.resampling = "nearest";  // BQA is a bit field
  const Image stack = read_band_stack(files, options);
  EXPECT_EQ(stack.geometry().size_xyz, (std::array<std::int64_t, 3>{627, 603, 1}));
  EXPECT_EQ(stack.channels(), 11);
  EXPECT_EQ(stack.metadata().band_names.front(), "B1");
  EXPECT_EQ(stack.metadata().band_names.back(), "BQA");
  const Image b4 = read(files[3]);
  for (std::int64_t i = 0; i < b4.element_count(); i += 97) {
    ASSERT_EQ(stack.value_at(3 * b4.element_count() + i), b4.value_at(i));
  }
}

TEST(Gdal, BandNamesFromFileNames) {
  EXPECT_EQ(band_name_from_file("/x/S2A_MSIL2A_20170613T101031_87_48_B8A.tif"), "B8A");
  EXPECT_EQ(band_name_from_file("l8_B4.tif"), "B4");
  EXPECT_EQ(band_name_from_file("l8_b10.tif"), "B10");
  EXPECT_EQ(band_name_from_file("l8_BQA.tif"), "BQA");
  EXPECT_EQ(band_name_from_file("scene_rgb.tif"), "");
  EXPECT_EQ(band_name_from_file("B.tif"), "");
}

}  // namespace
}  // namespace graft::io
