// Plain 2D images (PNG, JPEG, TIFF, as pathology patches and photos come) read through GDAL,
// compared pixel by pixel with Pillow's reading of the same files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

struct PlainImages {
  std::string folder;
  std::vector<nlohmann::json> reference;  // by file, in kFiles order
};

const std::vector<std::string> kFiles{"rgb.png", "grey16.png", "rgba.png", "palette.png", "rgb.jpg", "rgb.tif"};

PlainImages make_plain_images() {
  PlainImages images;
  if (graft::testing::python_with("PIL").empty()) return images;
  images.folder = graft::testing::temp_dir();
  const std::string make = "/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/pil_reference.py --make " + images.folder;
  if (graft::testing::run_command(make) != 0) return images;
  std::vector<std::string> paths;
  for (const auto& name : kFiles) paths.push_back(images.folder + "/" + name);
  images.reference = graft::testing::python_reference("pil_reference.py", "PIL", paths);
  return images;
}

// Largest |graft - Pillow| over every pixel and channel; pixel (x, y) of Pillow's top-row-first
// array must be graft's voxel (x, y, 0), so a flipped or transposed read shows as a large value.
double largest_difference(const Image& image, const nlohmann::json& reference) {
  const std::int64_t width = reference["width"], height = reference["height"];
  double largest = 0.0;
  for (std::int64_t y = 0; y < height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      for (std::int64_t c = 0; c < image.channels(); ++c) {
        const double expected = reference["pixels"][y][x][c].get<double>();
        largest = std::max(largest, std::abs(image.value_at(image.offset(c, 0, y, x)) - expected));
      }
    }
  }
  return largest;
}

TEST(PlainImages, PngJpegAndTiffReadAsPillowReadsThem) {
  const PlainImages images = make_plain_images();
  if (images.reference.size() != kFiles.size()) GTEST_SKIP() << "Debian python3-pil is not installed";
  for (std::size_t f = 0; f < kFiles.size(); ++f) {
    SCOPED_TRACE(kFiles[f]);
    const nlohmann::json& reference = images.reference[f];
    const Image image = read(images.folder + "/" + kFiles[f]);
    EXPECT_EQ(image.geometry().size_xyz, (std::array<std::int64_t, 3>{7, 5, 1}));
    ASSERT_EQ(image.channels(), reference["channels"].get<std::int64_t>());
    // JPEG: the same libjpeg-turbo decodes for both, but allow for a different IDCT.
    EXPECT_LE(largest_difference(image, reference), kFiles[f] == "rgb.jpg" ? 1.0 : 0.0);
  }
  const Image rgb = read(images.folder + "/rgb.png");
  EXPECT_EQ(rgb.metadata().band_names, (std::vector<std::string>{"Red", "Green", "Blue"}));
  EXPECT_EQ(rgb.dtype(), DType::kU8);
  EXPECT_EQ(read(images.folder + "/grey16.png").dtype(), DType::kU16);
  EXPECT_EQ(read(images.folder + "/rgba.png").metadata().band_names,
            (std::vector<std::string>{"Red", "Green", "Blue", "Alpha"}));
  // A palette PNG keeps its indices (label masks are stored this way), as Pillow's mode P does.
  EXPECT_EQ(images.reference[3]["mode"], "P");
}

}  // namespace
}  // namespace graft::io
