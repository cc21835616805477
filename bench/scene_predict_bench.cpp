// Whole-scene prediction: a synthetic Sentinel-2-sized scene (10980 x 10980 pixels, 13 uint16
// bands, made by this benchmark) segmented tile by tile by a geo-resnet18-s2 + U-Net head into a
// GeoTIFF, as `graft predict` does. Prints peak RSS (memory must not grow with the scene: the
// goal is under 2 GiB), MB/s of scene pixels, and the ratio of the whole run to the model's own
// forward time for the same number of tiles measured in this process, i.e. what reading,
// preprocessing, blending and writing add on top of the network.
//
//   scene_predict_bench [SIZE_PX] [TILE_PX] [OVERLAP_FRACTION] [FOLDER]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "bench/memory_status.h"
#include "bench/stopwatch.h"
#include "bench/synthetic_scene.h"
#include "finetune/blas_kernels.h"
#include "finetune/inference/scene_prediction.h"
#include "io/raster/gdal_raster.h"
#include "preprocess/plan.h"

namespace {

using graft::bench::Clock;
using graft::bench::seconds_since;

}  // namespace

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  namespace io = graft::io;
  namespace ft = graft::finetune;
  const std::int64_t size = argc > 1 ? std::atoll(argv[1]) : 10980;
  const std::int64_t tile = argc > 2 ? std::atoll(argv[2]) : 256;
  const double overlap = argc > 3 ? std::atof(argv[3]) : 0.125;
  const std::string folder =
      argc > 4 ? argv[4] : (std::filesystem::temp_directory_path() / "graft-scene-bench").string();
  std::filesystem::create_directories(folder);
  const std::string scene = folder + "/scene_" + std::to_string(size) + ".tif", output = folder + "/classes.tif";
  const io::RasterLayout layout = graft::bench::synthetic_scene_layout(size, 13);
  const double scene_mb = static_cast<double>(size) * size * 13 * 2 / 1e6;
  if (!std::filesystem::exists(scene)) {
    const auto start = Clock::now();
    graft::bench::write_synthetic_scene(scene, layout, 512);
    std::printf("made %s (%.0f MB of pixels) in %.1f s\n", scene.c_str(), scene_mb, seconds_since(start));
  }
  ft::set_compute_threads(0);
  torch::manual_seed(0);
  ft::SegmentationModel model(graft::backbones::create_backbone("geo-resnet18-s2"), ft::HeadKind::kUNet, 2);
  model->eval();
  graft::preprocess::Contract contract = graft::backbones::find_backbone("geo-resnet18-s2").contract;
  contract.resize = graft::preprocess::ResizeRule::kNone;  // tiles keep the raster's pixel size

  ft::ScenePredictOptions options;
  options.tile_px = tile;
  options.overlap_fraction = overlap;
  const bool peak_reset = graft::bench::reset_peak_rss();
  const double baseline_mb = graft::bench::current_rss_mb();
  const ft::ScenePredictStats stats = ft::predict_scene(*model, contract, {}, scene, output, options);
  const double peak_mb = graft::bench::peak_rss_mb();

  // The network alone on as many tiles, in the same batches, for the ratio.
  const torch::Tensor batch = torch::rand({options.tiles_per_batch, 13, 1, tile, tile}) * 0.5;
  const int batches = 8;
  torch::NoGradGuard no_grad;
  model->forward(batch);  // warm-up
  const auto forward_start = Clock::now();
  for (int b = 0; b < batches; ++b) model->forward(batch);
  const double forward_per_tile = seconds_since(forward_start) / (batches * options.tiles_per_batch);
  const double network_seconds = forward_per_tile * stats.tiles;

  std::printf("scene %lld x %lld x 13 uint16 (%.0f MB of pixels), tiles %lld px, overlap %.3f: %lld tiles\n",
              static_cast<long long>(size), static_cast<long long>(size), scene_mb, static_cast<long long>(tile),
              overlap, static_cast<long long>(stats.tiles));
  std::printf("whole-scene prediction: %.1f s, %.2f MB/s of scene pixels, peak RSS %.0f MB%s (%.0f MB before)\n",
              stats.seconds, scene_mb / stats.seconds, peak_mb, peak_reset ? "" : " over the whole run", baseline_mb);
  std::printf("network alone on the same tiles: %.1f s (%.3f s per tile); whole run / network = %.2f\n",
              network_seconds, forward_per_tile, stats.seconds / network_seconds);
  std::filesystem::remove(output);
  return 0;
}
