#pragma once

// An nnU-Net v2 model folder's preprocessing and labels as graft's Contract and class names, from
// plans.json and dataset.json. No LibTorch: `graft plan` and `graft preprocess` use the result.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocess/contract.h"

namespace graft::backbones {

struct NnUNetDataset {
  std::vector<std::string> channel_names;  // in channel order
  std::vector<std::string> class_names;    // by label value, background first; no ignore label
};

// dataset.json's channel_names (or the older modality) and labels, both formats (name -> value,
// or value -> name). Region-based labels (a label given as a list of values, or regions_class_order)
// are refused, as are label values that are not 0..N-1. Errors name `source` and the field.
NnUNetDataset nnunet_dataset(const nlohmann::json& dataset, const std::string& source);

// The Contract that makes an image look as `configuration` of the plans trained on it:
// transpose_forward, crop to nonzero, each channel normalised by its scheme (CTNormalization with
// the foreground intensity properties, ZScoreNormalization with use_mask_for_norm,
// NoNormalization, RescaleTo01Normalization, RGBTo0_1Normalization) before resampling to the
// configuration's spacing (third order for images, first order per label, the coarse axis
// separately with nearest when anisotropic, no anti-aliasing). Errors name `source` and the field.
preprocess::Contract nnunet_contract(const nlohmann::json& plans, const NnUNetDataset& dataset,
                                     const std::string& configuration, const std::string& source);

// The configuration's patch size as graft's data.patch_size: x y z (2D: x y 1).
std::vector<std::int64_t> nnunet_patch_size_xyz(const nlohmann::json& plans, const std::string& configuration,
                                                const std::string& source);

}  // namespace graft::backbones
