#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backbones/tensor_data.h"

namespace graft::backbones {

// The tensors of a checkpoint file, whatever its format.
struct CheckpointFile {
  std::string format;  // "torch-zip", "torch-legacy" or "safetensors"
  StateDict tensors;
  std::vector<std::string> notes;  // how the state dict was found ("under 'state_dict'", ...)
  // A torch file's other top-level entries (a trainer's epoch, its settings, NumPy scalars as
  // numbers), as JSON; tensors and dicts of tensors (optimizer state aside) are left out. For a
  // safetensors file, its __metadata__ (strings by key).
  nlohmann::json values = nlohmann::json::object();
};

// Reads a PyTorch torch.save file (zip format from 1.6 on, or the legacy pre-1.6 format, as
// MedicalNet's 2019 releases are) or a safetensors file, chosen by content. A torch file may hold
// a bare state_dict or one under 'state_dict' / 'model' / 'state_dict_ema'; a 'module.' prefix
// (from DataParallel) is stripped. The pickle is interpreted, never executed: anything but
// tensors, containers and plain values is refused with an error naming the file.
CheckpointFile read_checkpoint(const std::string& path);

// `metadata` goes into the header's __metadata__ beside {"format": "pt"}.
void write_safetensors(const StateDict& tensors, const std::string& path,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace graft::backbones
