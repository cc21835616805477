#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/geometry.h"
#include "preprocess/intensity.h"
#include "preprocess/resample.h"

namespace graft::preprocess {

enum class ResizeRule {
  kNone,     // keep the input grid
  kSpacing,  // resample to target_spacing_mm (nnU-Net, most 3D medical backbones)
  kSize,     // resample the (cropped) image to target_size_xyz (MedicalNet, ViTs)
};

std::string resize_rule_name(ResizeRule rule);
ResizeRule resize_rule_from_name(const std::string& name);

// What a set of pretrained weights expects its input to look like: timm's pretrained_cfg grown
// up with spacing, bands, orientation and intensity rules. Every number says where it came from.
struct Contract {
  std::string name;
  std::string description;
  int spatial_dims = 3;
  // Channel or band names in the order the weights expect; empty means "any single channel".
  std::vector<std::string> channels;
  std::string orientation;  // e.g. "RAS"; empty keeps the input's orientation
  // With orientation empty: output axis t reads input axis axis_order_xyz[t] (nnU-Net's
  // transpose_forward, which reorders the file's own axes whatever their world directions).
  std::array<int, 3> axis_order_xyz{0, 1, 2};
  // With orientation empty: a DICOM series, which has no storage order of its own, is taken in the
  // order dcm2niix writes it (rows reversed), the order of the NIfTI files a model that keeps
  // storage order (nnU-Net) was trained on.
  bool dicom_in_dcm2niix_order = false;
  bool crop_nonzero = false;
  ResizeRule resize = ResizeRule::kNone;
  io::Vec3 target_spacing_mm{1.0, 1.0, 1.0};
  std::array<std::int64_t, 3> target_size_xyz{1, 1, 1};
  Interpolation image_interpolation = Interpolation::kLinear;
  LabelInterpolation label_interpolation = LabelInterpolation::kNearest;
  bool anti_alias = true;
  // nnU-Net's rule: when max spacing / min spacing exceeds this, the coarse axis is resampled
  // separately with nearest interpolation. 0 turns the rule off.
  double anisotropy_threshold = 3.0;
  std::vector<IntensityStep> intensity;
  // nnU-Net normalises after cropping and before resampling; graft's own contracts normalise last.
  bool normalize_before_resampling = false;
  // Where the numbers come from (paper, weights card, reference code).
  std::vector<std::string> sources;
  // Where graft deliberately differs from the reference recipe, and why.
  std::vector<std::string> deviations;

  int channel_count() const { return channels.empty() ? 1 : static_cast<int>(channels.size()); }
};

nlohmann::json to_json(const Contract& contract);
// Throws graft::Error naming `source` and the field for a malformed contract.
Contract contract_from_json(const nlohmann::json& json, const std::string& source);
Contract read_contract(const std::string& path);
// A printable summary: one line per rule.
std::string describe(const Contract& contract);

nlohmann::json to_json(const IntensityStep& step);
IntensityStep intensity_step_from_json(const nlohmann::json& json, const std::string& source);

}  // namespace graft::preprocess
