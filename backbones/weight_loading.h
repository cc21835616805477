#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "backbones/backbone.h"
#include "backbones/tensor_data.h"

namespace graft::backbones {

// What happened when a checkpoint met a network, key by key.
struct LoadReport {
  std::string source;
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // in the network, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not in the network
  std::vector<std::string> mismatched;  // "name: checkpoint [..] vs network [..]"
  std::vector<std::string> adapted;     // e.g. input convolution 1 -> 4 channels
  std::vector<std::string> notes;       // from reading the file

  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;  // multi-line, for the CLI and the GUI
};

struct LoadOptions {
  // Strict (the default) refuses any missing, unexpected or mismatched key; lenient loads what
  // fits and reports the rest.
  bool strict = true;
  // The input convolution weight, whose channel count may be adapted to the network's.
  std::string input_conv_weight_name;
};

torch::Tensor to_torch(const TensorData& tensor);
TensorData from_torch(const torch::Tensor& tensor);

// The network's parameters and buffers as a StateDict (for safetensors export and tests).
StateDict state_dict_of(torch::nn::Module& module);

// timm's adapt_input_conv, generalised: the weight's I input channels are repeated to cover
// in_channels, truncated, and scaled by I / in_channels so a constant input gives the same
// response; for in_channels == 1 from 3 channels it is the sum over channels, exactly as timm.
torch::Tensor adapt_input_conv(const torch::Tensor& weight, int64_t in_channels);

// Copies matching tensors by name into the module's parameters and buffers. Throws graft::Error
// with the report's summary when strict and anything does not fit.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& tensors,
                           const LoadOptions& options, const std::string& source);

// read_checkpoint + load_state_dict, with the file's notes in the report.
LoadReport load_weights(BackboneImpl& backbone, const std::string& path, bool strict = true);

}  // namespace graft::backbones
