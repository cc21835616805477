#pragma once

// The synthetic Sentinel-2-sized scene the raster benchmarks stream: reflectance-like uint16
// values that vary in space and by band (so DEFLATE has real work), written window by window.
#include <cstdint>
#include <string>
#include <vector>

#include "io/raster/gdal_raster.h"
#include "io/raster/raster_windows.h"

namespace graft::bench {

inline io::RasterLayout synthetic_scene_layout(std::int64_t size_px, int bands) {
  io::RasterLayout layout;
  layout.width = layout.height = size_px;
  layout.bands = bands;
  layout.dtype = io::DType::kU16;
  layout.geotransform = {600000, 10, 0, 5000000, 0, -10};  // a UTM tile's 10 m grid
  layout.crs_wkt = "EPSG:32632";
  layout.nodata = 0.0;
  const std::vector<std::string> sentinel2{"B1", "B2", "B3", "B4", "B5", "B6", "B7",
                                           "B8", "B8A", "B9", "B10", "B11", "B12"};
  if (bands == 13) layout.band_names = sentinel2;
  return layout;
}

inline void write_synthetic_scene(const std::string& path, const io::RasterLayout& layout, std::int64_t window_px) {
  io::GdalRasterWriter writer(path, layout);
  for (const auto& w : io::grid_windows(layout.width, layout.height, window_px, 0)) {
    io::Geometry g;
    g.size_xyz = {w.width, w.height, 1};
    io::Image tile = io::Image::uninitialized(io::DType::kU16, layout.bands, g);
    auto* values = tile.data<std::uint16_t>();
    for (std::int64_t b = 0; b < layout.bands; ++b)
      for (std::int64_t y = 0; y < w.height; ++y)
        for (std::int64_t x = 0; x < w.width; ++x) {
          const std::int64_t gx = w.x + x, gy = w.y + y;
          values[(b * w.height + y) * w.width + x] =
              static_cast<std::uint16_t>(1 + (gx * 7 + gy * 13 + (gx * gy) % 97 + b * 517) % 9000);
        }
    writer.write(tile, w.x, w.y);
  }
  writer.finish();
}

}  // namespace graft::bench
