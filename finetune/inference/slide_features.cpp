#include "finetune/inference/slide_features.h"

#include <chrono>

#include "datasets/image_tensor.h"
#include "finetune/device.h"
#include "io/error.h"
#include "io/hdf5/hdf5_file.h"
#include "io/parallel.h"
#include "preprocess/plan.h"

namespace graft::finetune {

SlideFeatureStats extract_slide_features(backbones::BackboneImpl& backbone, const std::string& backbone_name,
                                         const preprocess::Contract& contract, const std::string& slide_path,
                                         const std::string& output, const SlideFeatureOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const io::Slide slide(slide_path);
  const io::SlidePatches patches = io::tissue_patches(slide, options.tiling);
  backbone.eval();
  torch::NoGradGuard no_grad;
  std::vector<float> features;
  std::int64_t dim = 0;
  const std::size_t count = patches.coords.size();
  for (std::size_t first = 0; first < count; first += options.batch_size) {
    const std::size_t last = std::min(count, first + static_cast<std::size_t>(options.batch_size));
    std::vector<torch::Tensor> batch(last - first);
    io::parallel_for_each(last - first, [&](std::size_t i) {
      const auto& corner = patches.coords[first + i];
      const io::Image patch = slide.read_region(patches.level, corner[0], corner[1], patches.read_px, patches.read_px);
      const preprocess::Plan plan = preprocess::make_plan(contract, patch, preprocess::PlanOptions{});
      batch[i] = datasets::image_to_tensor(preprocess::apply(plan, patch)).squeeze(1);
    });
    const torch::Tensor embedding =
        to_host_float(backbone.embedding(to_device(torch::stack(batch), device_of(backbone)))).contiguous();
    dim = embedding.size(1);
    features.insert(features.end(), embedding.data_ptr<float>(), embedding.data_ptr<float>() + embedding.numel());
    if (options.progress) options.progress(static_cast<double>(last) / count);
  }
  if (count == 0) dim = backbone.feature_info().back().channels;
  const nlohmann::json attributes{{"patch_size", patches.level0_px},
                                  {"patch_level", patches.level},
                                  {"patch_read_px", patches.read_px},
                                  {"microns_per_pixel", patches.microns_per_pixel},
                                  {"tissue_threshold", patches.tissue_threshold},
                                  {"backbone", backbone_name}};
  io::write_feature_bag(output, features, dim, patches.coords, attributes);
  SlideFeatureStats stats;
  stats.patches = static_cast<std::int64_t>(count);
  stats.grid_patches = patches.grid_patches;
  stats.dim = dim;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  stats.patches_per_second = stats.seconds > 0 ? count / stats.seconds : 0.0;
  return stats;
}

}  // namespace graft::finetune
