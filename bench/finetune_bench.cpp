// Two benchmarks of the Med3D pipeline, each with its reference measured in the same process:
//   loader   samples/s the threaded loader delivers (random patches with augmentation from
//            preprocessed NIfTI cases) vs samples/s a training step consumes. Goal: >= 3x.
//   sliding  seconds and peak RSS of sliding-window inference on a 256 x 256 x 128 volume vs
//            input + output + model bytes. Goal: peak RSS growth <= 2x that sum.
//   precision DEVICE  training steps/s and sliding-window inference time at bf16 (and fp16 on
//            CUDA) vs fp32, same model and data, on DEVICE (cpu, cuda, cuda:N).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "backbones/factory.h"
#include "bench/memory_status.h"
#include "bench/stopwatch.h"
#include "datasets/segmentation_data.h"
#include "datasets/synthetic_volumes.h"
#include "finetune/blas_kernels.h"
#include "finetune/device.h"
#include "finetune/run_config.h"
#include "finetune/inference/sliding_window.h"
#include "finetune/trainer.h"
#include "io/image_file.h"

namespace {

using graft::bench::Clock;
using graft::bench::seconds_since;

using graft::bench::current_rss_mb;
using graft::bench::peak_rss_mb;

// `count` synthetic CT cases with labels as NIfTI in `folder`, on the grids geometry_of(seed) gives.
std::vector<graft::datasets::CaseEntry> write_synthetic_cases(
    const std::string& folder, int count, const std::function<graft::io::Geometry(std::uint64_t)>& geometry_of) {
  std::vector<graft::datasets::CaseEntry> entries;
  for (int i = 0; i < count; ++i) {
    const auto synthetic = graft::datasets::make_synthetic_ct(i, geometry_of(i));
    graft::datasets::CaseEntry entry{"c" + std::to_string(i), folder + "/c" + std::to_string(i) + ".nii.gz",
                                     folder + "/c" + std::to_string(i) + "_seg.nii.gz", "train"};
    graft::io::write(synthetic.image, entry.image);
    graft::io::write(synthetic.labels, entry.label);
    entries.push_back(entry);
  }
  return entries;
}

int loader_bench(int workers, int threads) {
  namespace fs = std::filesystem;
  const std::string folder = (fs::temp_directory_path() / "graft-loader-bench").string();
  fs::create_directories(folder);
  const auto entries = write_synthetic_cases(folder, 6, [](std::uint64_t seed) {
    return graft::datasets::random_ct_geometry(seed);
  });
  graft::finetune::RunConfig config = graft::finetune::default_run_config();
  config.data.contract = {{"resize", "spacing"}, {"target_spacing_mm", {1.0, 1.0, 1.0}}};
  const auto contract = graft::finetune::run_contract(config);
  auto start = Clock::now();
  std::vector<graft::datasets::PreparedCase> cases;
  for (const auto& entry : entries) cases.push_back(graft::datasets::prepare_case(entry, contract, {0}, 3));
  const double prepare_s = seconds_since(start) / entries.size();

  graft::datasets::PatchOptions options;
  options.patch_xyz = {64, 64, 32};
  // Augmentation that always runs: the slowest the loader gets.
  options.augment.affine_probability = options.augment.intensity_probability = 1.0;
  options.augment.gamma_probability = options.augment.noise_probability = 1.0;
  const int batches = 40, batch_size = 2;
  graft::datasets::BatchLoader loader(cases, options, batch_size, batches, workers, 8, 1);
  loader.start_epoch(0);
  start = Clock::now();
  for (int b = 0; b < batches; ++b) loader.next();
  const double loader_samples_per_s = batches * batch_size / seconds_since(start);

  if (threads > 0) torch::set_num_threads(threads);
  config.head = "medicalnet";
  config.classes = 3;  // background and the two synthetic organs
  auto model = graft::finetune::build_model(config);
  model->train();
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(1e-3).momentum(0.9));
  const auto batch = graft::datasets::sample_batch(cases, options, batch_size, 3);
  auto step = [&] {
    optimizer.zero_grad();
    graft::finetune::dice_ce_loss(model->forward(batch.image), batch.labels).backward();
    optimizer.step();
  };
  step();
  start = Clock::now();
  const int steps = 4;
  for (int s = 0; s < steps; ++s) step();
  const double step_samples_per_s = steps * batch_size / seconds_since(start);
  std::printf("loader: prepare %.3f s/case (read NIfTI, plan, resample to 1 mm, z-score)\n", prepare_s);
  std::printf("loader: %d workers, patch 64x64x32, every augmentation on: %.1f samples/s\n", workers,
              loader_samples_per_s);
  std::printf("loader: training step (med3d-resnet10 + medicalnet, batch 2): %.1f samples/s\n", step_samples_per_s);
  std::printf("loader: ratio loader/step %.1fx (goal >= 3)\n", loader_samples_per_s / step_samples_per_s);
  fs::remove_all(folder);
  return 0;
}

int sliding_bench(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
  graft::finetune::RunConfig config = graft::finetune::default_run_config();
  config.head = "medicalnet";
  config.data.patch_size = {64, 64, 32};
  auto model = graft::finetune::build_model(config);
  model->eval();
  std::int64_t model_bytes = 0;
  for (const auto& p : model->parameters()) model_bytes += p.numel() * p.element_size();
  for (const auto& b : model->buffers()) model_bytes += b.numel() * b.element_size();
  graft::io::Geometry geometry;
  geometry.size_xyz = {256, 256, 128};
  graft::io::Image image = graft::io::Image::uninitialized(graft::io::DType::kF32, 1, geometry);
  for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<float>()[i] = std::sin(0.001f * i);
  const double baseline_mb = current_rss_mb();
  graft::finetune::SlidingWindowOptions options;
  options.patch_xyz = {64, 64, 32};
  options.overlap_fraction = 0.5;
  options.windows_per_batch = 2;
  const auto start = Clock::now();
  const auto result = graft::finetune::predict_sliding_window(*model, image, options);
  const double seconds = seconds_since(start);
  const double growth_mb = peak_rss_mb() - baseline_mb;
  const double budget_mb = (image.byte_count() + result.labels.byte_count() + model_bytes) / 1048576.0;
  std::printf("sliding: 256x256x128 f32, patch 64x64x32, overlap 0.5, %d threads: %.1f s\n", torch::get_num_threads(),
              seconds);
  std::printf("sliding: input %.1f MB + output %.1f MB + model %.1f MB = %.1f MB\n", image.byte_count() / 1048576.0,
              result.labels.byte_count() / 1048576.0, model_bytes / 1048576.0, budget_mb);
  std::printf("sliding: RSS before inference %.1f MB (holds input and model), peak during %.1f MB, growth %.1f MB\n",
              baseline_mb, peak_rss_mb(), growth_mb);
  std::printf("sliding: peak RSS %.1f MB vs 2 x (input + output + model) = %.1f MB; growth/sum %.2f\n", peak_rss_mb(),
              2 * budget_mb, growth_mb / budget_mb);
  return 0;
}

}  // namespace

// Mixed precision against fp32 on one device: a Med3D ResNet-10 with its MedicalNet head trains
// for a few steps on a host-made batch (copied each step, as a loader's), then segments a volume by
// sliding window; each precision starts from the same weights.
int precision_bench(const std::string& device_spec, int threads) {
  using graft::finetune::Precision;
  graft::finetune::set_compute_threads(threads);  // 0: every core
  const torch::Device device = graft::finetune::parse_device(device_spec, "precision bench");
  graft::finetune::RunConfig config = graft::finetune::default_run_config();
  config.head = "medicalnet";
  config.data.patch_size = {64, 64, 32};
  torch::manual_seed(0);
  auto model = graft::finetune::build_model(config);
  model->to(device);
  std::stringstream initial;
  torch::save(model, initial);
  const int batch = device.is_cuda() ? 8 : 2, steps = device.is_cuda() ? 50 : 4;
  const torch::Tensor x = torch::randn({batch, 1, 32, 64, 64});
  const torch::Tensor y = torch::randint(0, 2, {batch, 32, 64, 64}, torch::kInt64);
  graft::io::Geometry geometry;
  geometry.size_xyz = device.is_cuda() ? std::array<std::int64_t, 3>{256, 256, 128} : std::array<std::int64_t, 3>{128, 128, 64};
  graft::io::Image volume = graft::io::Image::uninitialized(graft::io::DType::kF32, 1, geometry);
  for (std::int64_t i = 0; i < volume.element_count(); ++i) volume.data<float>()[i] = std::sin(0.001f * i);

  std::vector<Precision> precisions{Precision::kFloat32, Precision::kBFloat16};
  if (device.is_cuda()) precisions.push_back(Precision::kFloat16);
  double fp32_step_s = 0, fp32_sliding_s = 0;
  std::printf("device %s, %d threads, batch %d of 64x64x32, sliding window over %lldx%lldx%lld\n",
              device.str().c_str(), torch::get_num_threads(), batch, static_cast<long long>(geometry.size_xyz[0]),
              static_cast<long long>(geometry.size_xyz[1]), static_cast<long long>(geometry.size_xyz[2]));
  for (const Precision precision : precisions) {
    initial.seekg(0);
    torch::load(model, initial, device);
    const double step_s = graft::finetune::seconds_per_training_step(*model, x, y, {device, precision}, steps);
    graft::finetune::SlidingWindowOptions options;
    options.patch_xyz = {64, 64, 32};
    options.windows_per_batch = device.is_cuda() ? 8 : 2;
    options.precision = precision;
    model->eval();
    const auto start = Clock::now();
    graft::finetune::predict_sliding_window(*model, volume, options);
    graft::finetune::synchronize(device);
    const double sliding_s = seconds_since(start);
    if (precision == Precision::kFloat32) {
      fp32_step_s = step_s;
      fp32_sliding_s = sliding_s;
    }
    std::printf("%s: train %.3f s/step (%.2f steps/s, %.2fx fp32), sliding window %.2f s (%.2fx fp32)\n",
                graft::finetune::precision_name(precision).c_str(), step_s, 1.0 / step_s, fp32_step_s / step_s,
                sliding_s, fp32_sliding_s / sliding_s);
  }
  return 0;
}

// Preparing CT cases (NIfTI decode, resampling to 1.5 mm, z-score) against reading them back from
// the preprocessed cache (datasets/preprocessed_cache.h), in one process, on the same cases.
int cache_bench() {
  namespace fs = std::filesystem;
  const std::string folder = (fs::temp_directory_path() / "graft-cache-bench").string();
  fs::remove_all(folder);
  fs::create_directories(folder);
  const auto entries = write_synthetic_cases(folder, 4, [](std::uint64_t seed) {
    graft::io::Geometry geometry = graft::datasets::random_ct_geometry(seed);
    geometry.size_xyz = {256, 256, 80};
    geometry.spacing_xyz = {1.2, 1.2, 3.0};
    return geometry;
  });
  graft::finetune::RunConfig config = graft::finetune::default_run_config();
  config.data.contract = {{"resize", "spacing"}, {"target_spacing_mm", {1.5, 1.5, 1.5}}};
  const auto contract = graft::finetune::run_contract(config);
  auto prepare_all = [&](graft::datasets::PreprocessedCache& cache) {
    const auto start = Clock::now();
    std::int64_t voxels = 0;
    for (const auto& entry : entries) voxels += graft::datasets::prepare_case(entry, contract, {0}, 3, cache).image.element_count();
    return std::make_pair(seconds_since(start) / entries.size(), voxels / entries.size());
  };
  graft::datasets::PreprocessedCache no_cache, cache(folder + "/cache");
  const auto [prepare_s, voxels] = prepare_all(no_cache);
  const double store_s = prepare_all(cache).first;
  const double read_s = prepare_all(cache).first;
  std::printf("cases %zu of 256x256x80 int16 at 1.2x1.2x3 mm -> %lld float32 voxels at 1.5 mm\n", entries.size(),
              static_cast<long long>(voxels));
  std::printf("prepare_s_per_case %.3f\nprepare_and_store_s_per_case %.3f\nread_from_cache_s_per_case %.3f\n", prepare_s,
              store_s, read_s);
  std::printf("cache read / prepare %.3f (hits %d, misses %d)\n", read_s / prepare_s, cache.hits(), cache.misses());
  fs::remove_all(folder);
  return 0;
}

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  try {
    if (mode == "loader") return loader_bench(2, threads);
    if (mode == "sliding") return sliding_bench(threads);
    if (mode == "cache") return cache_bench();
    if (mode == "precision") return precision_bench(argc > 2 ? argv[2] : "cpu", argc > 3 ? std::atoi(argv[3]) : 0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finetune_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: finetune_bench loader|sliding|cache [threads] | precision [DEVICE [threads]]\n");
  return 2;
}
