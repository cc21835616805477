#pragma once

#include <memory>
#include <string>

#include "backbones/backbone.h"

namespace graft::backbones {

// Builds the registered backbone `name` with `in_channels` input channels (0 keeps the
// backbone's own count). Throws graft::UsageError for unknown names and graft::Error for entries
// that have no network.
std::shared_ptr<BackboneImpl> create_backbone(const std::string& name, int in_channels = 0);

}  // namespace graft::backbones
