#pragma once

#include <functional>
#include <string>

#include "backbones/backbone.h"
#include "io/slide/slide.h"
#include "preprocess/contract.h"

namespace graft::finetune {

struct SlideFeatureOptions {
  io::SlideTilingOptions tiling;
  int batch_size = 32;
  std::function<void(double)> progress;  // fraction of patches done
};

struct SlideFeatureStats {
  std::int64_t patches = 0;
  std::int64_t grid_patches = 0;  // the whole grid, tissue or not
  std::int64_t dim = 0;
  double seconds = 0.0;
  double patches_per_second = 0.0;
};

// Tiles a whole slide at the target microns per pixel over its tissue (io::tissue_patches), reads
// and preprocesses each batch of patches on every core (OpenSlide reads in parallel; each patch
// goes through its Plan under `contract`), embeds them with `backbone` (its class token or pooled
// features), and writes `features` [N, D] and `coords` [N, 2] to an HDF5 file (CLAM's layout,
// attributes patch_size, patch_level, microns_per_pixel, backbone on `coords`).
SlideFeatureStats extract_slide_features(backbones::BackboneImpl& backbone, const std::string& backbone_name,
                                         const preprocess::Contract& contract, const std::string& slide_path,
                                         const std::string& output, const SlideFeatureOptions& options);

}  // namespace graft::finetune
