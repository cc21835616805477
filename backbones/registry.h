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
};

const std::vector<BackboneInfo>& registered_backbones();

// Throws graft::UsageError listing the known names when `name` is not registered.
const BackboneInfo& find_backbone(const std::string& name);

}  // namespace graft::backbones
