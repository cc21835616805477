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

#include "bench/stopwatch.h"
#include "bench/memory_status.h"
#include "bench/synthetic_scene.h"
#include "io/raster/gdal_raster.h"
#include "io/raster/raster_windows.h"

namespace {

using graft::bench::Clock;
using graft::bench::seconds_since;

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

  const io::RasterLayout layout = graft::bench::synthetic_scene_layout(size, bands);
  const double scene_mb = static_cast<double>(size) * size * bands * 2 / 1e6;

  if (!std::filesystem::exists(scene)) {
    const auto start = Clock::now();
    graft::bench::write_synthetic_scene(scene, layout, window);
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
