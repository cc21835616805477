#pragma once

// A pyramidal tiled TIFF made by the test itself: an RGB image with a pink elliptical "tissue"
// region on a near-white background, 0.25 um per pixel in its resolution tags, with 2x, 4x and 8x
// reduced levels, written by graft and tiled by gdal_translate and gdaladdo (Debian gdal-bin).
#include <cstdint>
#include <string>

#include "io/image.h"

namespace graft::testing {

struct SyntheticSlide {
  std::string path;  // empty when gdal-bin is missing
  io::Image base;    // level 0, RGB uint8
  std::int64_t width = 0, height = 0;
  // Inside the tissue ellipse (level-0 pixel centres).
  bool tissue(double x, double y) const;
};

SyntheticSlide make_synthetic_slide(const std::string& folder, std::int64_t width = 1536, std::int64_t height = 1024);

}  // namespace graft::testing
