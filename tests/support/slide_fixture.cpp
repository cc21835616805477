#include "tests/support/slide_fixture.h"

#include <random>

#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::testing {

bool SyntheticSlide::tissue(double x, double y) const {
  const double dx = (x - 0.45 * width) / (0.3 * width), dy = (y - 0.5 * height) / (0.3 * height);
  return dx * dx + dy * dy < 1.0;
}

SyntheticSlide make_synthetic_slide(const std::string& folder, std::int64_t width, std::int64_t height) {
  SyntheticSlide slide;
  slide.width = width;
  slide.height = height;
  io::Geometry grid;
  grid.size_xyz = {width, height, 1};
  slide.base = io::Image(io::DType::kU8, 3, grid);
  slide.base.metadata().band_names = {"Red", "Green", "Blue"};
  std::mt19937 random(11);
  std::uniform_int_distribution<int> noise(-12, 12);
  auto* rgb = slide.base.data<std::uint8_t>();
  const std::int64_t plane = width * height;
  for (std::int64_t y = 0; y < height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      const bool inside = slide.tissue(x + 0.5, y + 0.5);
      const int colour[3] = {inside ? 200 : 238, inside ? 110 : 236, inside ? 175 : 240};  // H&E pink on glass
      for (int c = 0; c < 3; ++c) {
        rgb[c * plane + y * width + x] = static_cast<std::uint8_t>(std::clamp(colour[c] + noise(random), 0, 255));
      }
    }
  }
  const std::string base = folder + "/base.tif", tiled = folder + "/slide.tif";
  io::write(slide.base, base);
  // 40000 pixels per centimetre = 0.25 um per pixel.
  const std::string translate =
      "gdal_translate -q -co TILED=YES -co BLOCKXSIZE=256 -co BLOCKYSIZE=256 -co COMPRESS=DEFLATE "
      "-co PHOTOMETRIC=RGB -mo TIFFTAG_XRESOLUTION=40000 -mo TIFFTAG_YRESOLUTION=40000 -mo TIFFTAG_RESOLUTIONUNIT=3 '" +
      base + "' '" + tiled + "' && gdaladdo -q -r average '" + tiled + "' 2 4 8";
  if (run_command(translate) != 0) return slide;
  slide.path = tiled;
  return slide;
}

}  // namespace graft::testing
