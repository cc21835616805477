// Whole-scene streaming through graft's GDAL path: a synthetic Sentinel-2-sized scene (10980 x
// 10980 pixels, 13 uint16 bands, DEFLATE GeoTIFF, written window by window by this benchmark) is
// read window by window with overlap and written back out window by window, as whole-scene
// prediction will. It prints peak RSS (the scene is 3.1 GB of pixels; memory must not grow with
// it), MB/s, and the ratio against gdal_translate copying the same file in the same run.
//
//   raster_stream_bench [SIZE_PX] [BANDS] [WINDOW_PX] [FOLDER]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bench/memory_status.h"
#include "io/gdal_raster.h"
#include "io/raster_windows.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  namespace io = graft::io;
  const std::int64_t size = argc > 1 ? std::atoll(argv[1]) : 10980;
  const int bands = argc > 2 ? std::atoi(argv[2]) : 13;
  const std::int64_t window = argc > 3 ? std::atoll(argv[3]) : 512;
  const std::string folder =
      argc > 4 ? argv[4] : (std::filesystem::temp_directory_path() / "graft-stream-bench").string();
  std::filesystem::create_directories(folder);
  const std::string scene = folder + "/scene.tif", streamed = folder + "/streamed.tif",
                    copied = folder + "/copied.tif";

  io::RasterLayout layout;
  layout.width = layout.height = size;
  layout.bands = bands;
  layout.dtype = io::DType::kU16;
  layout.geotransform = {600000, 10, 0, 5000000, 0, -10};  // a UTM tile's 10 m grid
  layout.nodata = 0.0;
  const double scene_mb = static_cast<double>(size) * size * bands * 2 / 1e6;

  if (!std::filesystem::exists(scene)) {
    // Reflectance-like values that vary in space and by band, so DEFLATE has real work.
    const auto start = Clock::now();
    io::GdalRasterWriter writer(scene, layout);
    for (const auto& w : io::grid_windows(size, size, window, 0)) {
      io::Geometry g;
      g.size_xyz = {w.width, w.height, 1};
      io::Image tile = io::Image::uninitialized(io::DType::kU16, bands, g);
      auto* values = tile.data<std::uint16_t>();
      for (std::int64_t b = 0; b < bands; ++b)
        for (std::int64_t y = 0; y < w.height; ++y)
          for (std::int64_t x = 0; x < w.width; ++x) {
            const std::int64_t gx = w.x + x, gy = w.y + y;
            values[(b * w.height + y) * w.width + x] = static_cast<std::uint16_t>(
                1 + (gx * 7 + gy * 13 + (gx * gy) % 97 + b * 517) % 9000);
          }
      writer.write(tile, w.x, w.y);
    }
    writer.finish();
    std::printf("made %s: %lld x %lld x %d uint16 (%.0f MB of pixels) in %.1f s\n", scene.c_str(),
                static_cast<long long>(size), static_cast<long long>(size), bands, scene_mb,
                seconds_since(start));
  }
  const bool peak_reset = graft::bench::reset_peak_rss();
  const double baseline_mb = graft::bench::current_rss_mb();

  // graft: read each window (only its blocks) and write it back; overlaps rewrite the same pixels.
  const std::int64_t overlap = window / 16;
  const auto start = Clock::now();
  {
    io::GdalRasterWriter writer(streamed, layout);
    for (const auto& w : io::grid_windows(size, size, window, overlap)) {
      io::GdalReadOptions read;
      read.window = w;
      writer.write(io::read_gdal(scene, read), w.x, w.y);
    }
    writer.finish();
  }
  const double graft_seconds = seconds_since(start);
  const double peak_mb = graft::bench::peak_rss_mb();

  const auto reference_start = Clock::now();
  const std::string command =
      "gdal_translate -q -co TILED=YES -co COMPRESS=DEFLATE -co PREDICTOR=2 -co BIGTIFF=IF_SAFER "
      "'" +
      scene + "' '" + copied + "'";
  const int status = std::system(command.c_str());
  const double reference_seconds = seconds_since(reference_start);

  std::printf(
      "scene %lld x %lld x %d uint16, %.0f MB of pixels, windows %lld px with %lld px overlap\n",
      static_cast<long long>(size), static_cast<long long>(size), bands, scene_mb,
      static_cast<long long>(window), static_cast<long long>(overlap));
  std::printf(
      "graft stream: %.1f s, %.0f MB/s of scene pixels, peak RSS %.0f MB%s (%.0f MB before "
      "streaming)\n",
      graft_seconds, scene_mb / graft_seconds, peak_mb, peak_reset ? "" : " over the whole run", baseline_mb);
  if (status == 0) {
    std::printf("gdal_translate copy: %.1f s; graft / gdal_translate = %.2f\n", reference_seconds,
                graft_seconds / reference_seconds);
  } else {
    std::printf("gdal_translate unavailable (Debian gdal-bin): no reference ratio\n");
  }
  std::filesystem::remove(streamed);
  std::filesystem::remove(copied);
  return 0;
}
