#include "backbones/registry.h"

#include "io/error.h"

namespace graft::backbones {
namespace {

// A contract with every rule switched on, so plan/preprocess can be exercised end to end before
// real pretrained backbones register theirs. It is listed as a test contract, not a model.
BackboneInfo test_ct_contract() {
  preprocess::Contract contract;
  contract.name = "test-ct-1mm";
  contract.description = "test contract: 3D CT at 1 mm isotropic, RAS, soft-tissue window";
  contract.spatial_dims = 3;
  contract.orientation = "RAS";
  contract.resize = preprocess::ResizeRule::kSpacing;
  contract.target_spacing_mm = {1.0, 1.0, 1.0};
  contract.image_interpolation = preprocess::Interpolation::kLinear;
  contract.label_interpolation = preprocess::LabelInterpolation::kNearest;
  preprocess::IntensityStep window;
  window.kind = preprocess::IntensityKind::kWindow;
  window.window_center = 40.0;
  window.window_width = 400.0;
  contract.intensity.push_back(window);
  contract.sources = {"graft foundation test contract (no pretrained weights)"};
  return {contract.name, "test contract for the preprocessing pipeline (no network)", contract};
}

BackboneInfo test_mr_contract() {
  preprocess::Contract contract;
  contract.name = "test-mr-size";
  contract.description = "test contract: 3D MR cropped to nonzero, resized to 64 x 64 x 32, z-score";
  contract.spatial_dims = 3;
  contract.crop_nonzero = true;
  contract.resize = preprocess::ResizeRule::kSize;
  contract.target_size_xyz = {64, 64, 32};
  preprocess::IntensityStep zscore;
  zscore.kind = preprocess::IntensityKind::kZScore;
  zscore.over_nonzero = true;
  zscore.outside_mask = preprocess::OutsideMask::kNoise;
  contract.intensity.push_back(zscore);
  contract.sources = {"graft foundation test contract shaped like MedicalNet's recipe"};
  contract.deviations = {"images are resized with linear interpolation, not nearest (order 0)"};
  return {contract.name, "test contract for the preprocessing pipeline (no network)", contract};
}

}  // namespace

const std::vector<BackboneInfo>& registered_backbones() {
  static const std::vector<BackboneInfo> backbones = {test_ct_contract(), test_mr_contract()};
  return backbones;
}

const BackboneInfo& find_backbone(const std::string& name) {
  for (const auto& backbone : registered_backbones()) {
    if (backbone.name == name) return backbone;
  }
  std::string known;
  for (const auto& backbone : registered_backbones()) known += (known.empty() ? "" : ", ") + backbone.name;
  throw UsageError("unknown backbone '" + name + "' (registered: " + known + ")");
}

}  // namespace graft::backbones
