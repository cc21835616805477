#pragma once

// Windows over a raster for training samplers and whole-scene prediction: a grid with overlap
// that covers every pixel, and random windows that avoid nodata. Sizes may be given in map units.
#include <cstdint>
#include <string>
#include <vector>

#include "io/raster/gdal_raster.h"

namespace graft::io {

// Windows of size_px x size_px (clipped to a smaller raster) stepping by size_px - overlap_px,
// row by row, covering every pixel. The last window of a row or column is moved inward to end at
// the raster's edge, as sliding-window inference does, so every window has the full size.
std::vector<PixelWindow> grid_windows(std::int64_t width, std::int64_t height, std::int64_t size_px,
                                      std::int64_t overlap_px);

// How many pixels a map distance spans along the raster's x axis (1200 m at 10 m -> 120).
std::int64_t pixels_for_map_distance(const GeoTransform& transform, double distance);

// The geotransform of a window: where its top-left pixel corner lies in map coordinates.
GeoTransform window_geotransform(const GeoTransform& transform, const PixelWindow& window);

struct RandomWindowOptions {
  std::int64_t size_px = 64;
  int count = 16;
  std::uint64_t seed = 0;
  // The largest share of a window's pixels that may be nodata (a pixel is nodata when any band
  // holds its band's nodata value); candidates above it are drawn again.
  double max_nodata_fraction = 0.0;
  int max_draws_per_window = 100;
};

// Random windows of `path` (reading only each candidate's blocks), the same for the same seed.
// Throws graft::Error naming the file when the window does not fit or too few valid windows turn
// up in max_draws_per_window draws each.
std::vector<PixelWindow> random_windows(const std::string& path,
                                        const RandomWindowOptions& options);

}  // namespace graft::io
