#pragma once

#include <string>
#include <vector>

#include "preprocess/contract.h"

namespace graft::backbones {

// One registered backbone: looked up by name (timm's registry idea), carrying the Contract its
// pretrained weights were trained under.
struct BackboneInfo {
  std::string name;
  std::string summary;
  preprocess::Contract contract;
  // How create_backbone builds it: the family ("med3d-resnet", "timm-resnet", or "" for contract-only test
  // entries that have no network) and its size.
  std::string architecture;
  int depth = 0;
  std::string variant;  // the configuration within the family, e.g. "uni" for a timm-vit
  // The network is described by a model folder (an imported nnU-Net), not by the name alone: not
  // a choice for a new run, only for init_from.
  bool needs_model_folder = false;
};

const std::vector<BackboneInfo>& registered_backbones();

// Throws graft::UsageError listing the known names when `name` is not registered.
const BackboneInfo& find_backbone(const std::string& name);

}  // namespace graft::backbones
