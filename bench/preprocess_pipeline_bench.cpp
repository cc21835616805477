// graft's half of the preprocessing benchmark: read, reorient to RAS, resample to isotropic
// spacing (linear, anti-aliased) and z-score, through a Contract and its Plan, as a user's
// `graft preprocess` runs it. bench/run_preprocess_bench.sh runs this beside the nibabel + scipy
// pipeline on the same files and prints the ratios.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/image_file.h"
#include "io/parallel.h"
#include "preprocess/plan.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

graft::preprocess::Contract bench_contract(double spacing_mm) {
  graft::preprocess::Contract contract;
  contract.name = "bench-isotropic";
  contract.orientation = "RAS";
  contract.resize = graft::preprocess::ResizeRule::kSpacing;
  contract.target_spacing_mm = {spacing_mm, spacing_mm, spacing_mm};
  contract.anisotropy_threshold = 0.0;  // the Python reference has no separate-z rule
  contract.intensity.push_back(graft::preprocess::IntensityStep{});  // z-score over all voxels
  return contract;
}

// The best memcpy bandwidth for `bytes` bytes, the ceiling any pipeline touching them has.
double memcpy_mb_per_s(std::size_t bytes, int repeat) {
  std::vector<std::uint8_t> source(bytes, 1), target(bytes, 0);
  double best = 1e30;
  for (int r = 0; r < repeat + 1; ++r) {
    const auto start = Clock::now();
    std::memcpy(target.data(), source.data(), bytes);
    best = std::min(best, seconds_since(start));
  }
  if (target[bytes / 2] != 1) std::abort();
  return static_cast<double>(bytes) / 1e6 / best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string input;
  int repeat = 3;
  double spacing_mm = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--input" && i + 1 < argc) input = argv[++i];
    else if (arg == "--repeat" && i + 1 < argc) repeat = std::atoi(argv[++i]);
    else if (arg == "--target-spacing-mm" && i + 1 < argc) spacing_mm = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: preprocess_pipeline_bench --input FILE.nii[.gz] [--repeat N] "
                           "[--target-spacing-mm S]  (threads: GRAFT_THREADS)\n");
      return 2;
    }
  }
  if (input.empty()) {
    std::fprintf(stderr, "preprocess_pipeline_bench: --input is required\n");
    return 2;
  }
  try {
    const auto contract = bench_contract(spacing_mm);
    double best = 1e30, best_read = 1e30, best_plan = 1e30, best_apply = 1e30;
    std::size_t input_bytes = 0;
    std::array<std::int64_t, 3> output_size{};
    for (int r = 0; r < repeat; ++r) {
      const auto start = Clock::now();
      const graft::io::Image image = graft::io::read(input);
      const double read_s = seconds_since(start);
      const auto plan_start = Clock::now();
      const auto plan = graft::preprocess::make_plan(contract, image);
      const double plan_s = seconds_since(plan_start);
      const auto apply_start = Clock::now();
      const graft::io::Image out = graft::preprocess::apply(plan, image);
      const double apply_s = seconds_since(apply_start);
      best = std::min(best, seconds_since(start));
      best_read = std::min(best_read, read_s);
      best_plan = std::min(best_plan, plan_s);
      best_apply = std::min(best_apply, apply_s);
      input_bytes = image.byte_count();
      output_size = out.geometry().size_xyz;
    }
    const double input_mb = static_cast<double>(input_bytes) / 1e6;
    std::printf(
        "{\"input_bytes\": %zu, \"input_mb\": %.3f, \"threads\": %d, \"seconds_best\": %.4f, "
        "\"mb_per_s\": %.2f, \"stages\": {\"read\": %.4f, \"plan\": %.4f, \"apply\": %.4f}, "
        "\"output_size\": [%lld, %lld, %lld], \"memcpy_mb_per_s\": %.1f}\n",
        input_bytes, input_mb, graft::io::worker_threads(), best, input_mb / best,
        best_read, best_plan, best_apply, static_cast<long long>(output_size[0]),
        static_cast<long long>(output_size[1]), static_cast<long long>(output_size[2]),
        memcpy_mb_per_s(input_bytes, repeat));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "preprocess_pipeline_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
