#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "finetune/training_loop.h"

namespace graft::finetune {

// Trains whatever the resolved config's `task` names (segmentation, classification, mil,
// detection): the one entry point `graft train`, the desktop app and the tests share.
TrainResult train_task(const RunConfig& config, const std::vector<TrainEventSink>& sinks, bool resume);

}  // namespace graft::finetune
