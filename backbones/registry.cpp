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

// MedicalNet's preprocessing (Tencent/MedicalNet datasets/brains18.py, setting.py): crop to the
// nonzero region, resize to the input size (56 x 448 x 448 as D x H x W by default), z-score over
// voxels > 0 with the zero voxels replaced by N(0, 1) noise, labels zoomed with nearest.
BackboneInfo med3d_resnet(int depth) {
  preprocess::Contract contract;
  contract.name = "med3d-resnet" + std::to_string(depth);
  contract.description = "Med3D 3D ResNet-" + std::to_string(depth) +
                         " pretrained on 23 segmentation datasets (CT and MR), 1 channel";
  contract.spatial_dims = 3;
  contract.crop_nonzero = true;
  contract.resize = preprocess::ResizeRule::kSize;
  contract.target_size_xyz = {448, 448, 56};
  contract.image_interpolation = preprocess::Interpolation::kLinear;
  contract.label_interpolation = preprocess::LabelInterpolation::kNearest;
  contract.anti_alias = true;
  contract.anisotropy_threshold = 0.0;  // MedicalNet resizes every axis to a fixed size
  preprocess::IntensityStep zscore;
  zscore.kind = preprocess::IntensityKind::kZScore;
  zscore.over_nonzero = true;
  zscore.outside_mask = preprocess::OutsideMask::kNoise;
  contract.intensity.push_back(zscore);
  contract.sources = {
      "Chen, Ma, Zheng 2019, Med3D: Transfer Learning for 3D Medical Image Analysis",
      "Tencent/MedicalNet setting.py (input 56x448x448), datasets/brains18.py (crop, zoom, "
      "z-score over voxels > 0, N(0,1) fill)"};
  contract.deviations = {
      "images are resized with linear interpolation; MedicalNet uses ndimage.zoom order 0 "
      "(nearest), which aliases and blocks fine structure",
      "Gaussian anti-aliasing before shrinking; MedicalNet does not smooth"};
  const char shortcut = depth == 18 || depth == 34 ? 'A' : 'B';
  BackboneInfo info{contract.name,
                    std::string("MedicalNet 3D ResNet-") + std::to_string(depth) + ", shortcut " +
                        shortcut + ", features at strides 2, 4, 8, 8, 8",
                    contract};
  info.architecture = "med3d-resnet";
  info.depth = depth;
  return info;
}

}  // namespace

const std::vector<BackboneInfo>& registered_backbones() {
  static const std::vector<BackboneInfo> backbones = [] {
    std::vector<BackboneInfo> list;
    for (int depth : {10, 18, 34, 50, 101, 152, 200}) list.push_back(med3d_resnet(depth));
    list.push_back(test_ct_contract());
    list.push_back(test_mr_contract());
    return list;
  }();
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
