#include "io/raster/raster_windows.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <random>

#include "io/error.h"

namespace graft::io {

namespace {

std::vector<std::int64_t> starts_along(std::int64_t length, std::int64_t size, std::int64_t step) {
  if (length <= size) return {0};
  std::vector<std::int64_t> starts;
  for (std::int64_t start = 0;; start += step) {
    if (start + size >= length) {
      starts.push_back(length - size);
      break;
    }
    starts.push_back(start);
  }
  return starts;
}

}  // namespace

std::vector<PixelWindow> grid_windows(std::int64_t width, std::int64_t height, std::int64_t size_px,
                                      std::int64_t overlap_px) {
  if (size_px <= 0 || overlap_px < 0 || overlap_px >= size_px) {
    throw UsageError("window size " + std::to_string(size_px) + " px with overlap " +
                     std::to_string(overlap_px) +
                     " px: the size must be positive and larger than the overlap");
  }
  const std::int64_t step = size_px - overlap_px;
  std::vector<PixelWindow> windows;
  for (std::int64_t y : starts_along(height, size_px, step)) {
    for (std::int64_t x : starts_along(width, size_px, step)) {
      windows.push_back({x, y, std::min(size_px, width), std::min(size_px, height)});
    }
  }
  return windows;
}

std::int64_t pixels_for_map_distance(const GeoTransform& transform, double distance) {
  const double pixel = std::hypot(transform[1], transform[4]);
  if (!(pixel > 0) || !(distance > 0))
    throw UsageError("a window needs a positive map distance and pixel size");
  return std::max<std::int64_t>(1, std::llround(distance / pixel));
}

GeoTransform window_geotransform(const GeoTransform& transform, const PixelWindow& window) {
  return subgrid_geotransform(transform, static_cast<double>(window.x),
                              static_cast<double>(window.y));
}

std::vector<PixelWindow> random_windows(const std::string& path,
                                        const RandomWindowOptions& options) {
  const GdalRasterInfo info = read_gdal_info(path);
  if (options.size_px <= 0 || options.size_px > info.width || options.size_px > info.height) {
    throw Error(path + ": a " + std::to_string(options.size_px) + " px window does not fit the " +
                std::to_string(info.width) + " x " + std::to_string(info.height) + " raster");
  }
  std::mt19937_64 random(options.seed);
  std::uniform_int_distribution<std::int64_t> x_start(0, info.width - options.size_px);
  std::uniform_int_distribution<std::int64_t> y_start(0, info.height - options.size_px);
  const bool has_nodata =
      std::any_of(info.bands.begin(), info.bands.end(), [](const auto& b) { return b.nodata; });
  std::vector<PixelWindow> windows;
  for (int n = 0; n < options.count; ++n) {
    bool found = false;
    for (int draw = 0; draw < options.max_draws_per_window && !found; ++draw) {
      const PixelWindow candidate{x_start(random), y_start(random), options.size_px,
                                  options.size_px};
      if (!has_nodata) {
        windows.push_back(candidate);
        found = true;
        break;
      }
      GdalReadOptions read;
      read.window = candidate;
      const Image pixels = read_gdal(path, read);
      const std::int64_t plane = pixels.voxels_per_channel();
      std::vector<bool> nodata(static_cast<std::size_t>(plane), false);
      for (std::int64_t c = 0; c < pixels.channels(); ++c) {
        const auto& value = info.bands[c].nodata;
        if (!value) continue;
        for (std::int64_t i = 0; i < plane; ++i) {
          const double v = pixels.value_at(c * plane + i);
          if (v == *value || (std::isnan(v) && std::isnan(*value))) nodata[i] = true;
        }
      }
      const auto invalid = std::count(nodata.begin(), nodata.end(), true);
      if (static_cast<double>(invalid) <=
          options.max_nodata_fraction * static_cast<double>(plane)) {
        windows.push_back(candidate);
        found = true;
      }
    }
    if (!found) {
      throw Error(path + ": no " + std::to_string(options.size_px) + " px window with at most " +
                  std::to_string(options.max_nodata_fraction * 100) + "% nodata in " +
                  std::to_string(options.max_draws_per_window) + " draws (window " +
                  std::to_string(n + 1) + " of " + std::to_string(options.count) + ")");
    }
  }
  return windows;
}

std::string band_name_from_file(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  const auto underscore = stem.find_last_of('_');
  std::string last = underscore == std::string::npos ? stem : stem.substr(underscore + 1);
  std::transform(last.begin(), last.end(), last.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  if (last == "BQA") return last;
  if (last.size() < 2 || last.size() > 4 || last[0] != 'B') return "";
  std::size_t digits = 1;
  while (digits < last.size() && std::isdigit(static_cast<unsigned char>(last[digits]))) ++digits;
  const bool band = digits > 1 && digits <= 3 &&
                    (digits == last.size() || (digits + 1 == last.size() && last.back() == 'A'));
  return band ? last : "";
}

}  // namespace graft::io
