#pragma once

#include <string>

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace graft::backbones {

// How a convolution followed by BatchNorm runs while fine-tuning (train.batchnorm), after "Efficient
// ConvBN Blocks for Transfer Learning and Beyond" (Huang et al.):
// - kTrain: batch statistics, running statistics updated (the module's own training flag decides);
// - kEval: the running statistics, never updated, with the convolution's output kept for the
//   backward pass as two separate layers do;
// - kTune: the same function as kEval, computed as one convolution whose weight and bias fold in the
//   BatchNorm (W * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var + eps)) on every forward,
//   so gradients still reach the convolution and BatchNorm's affine parameters, but only the
//   convolution's input is kept for the backward pass.
enum class BatchNormMode { kTrain, kEval, kTune };

// "train", "eval" or "tune"; anything else throws graft::UsageError naming `where`.
BatchNormMode batchnorm_mode_from_name(const std::string& name, const std::string& where);
std::string batchnorm_mode_name(BatchNormMode mode);

// What a module that runs convolution + BatchNorm pairs inherits, so set_batchnorm_mode finds it.
struct ConvBnModeHolder {
  virtual ~ConvBnModeHolder() = default;
  BatchNormMode batchnorm_mode = BatchNormMode::kTrain;
};

// Sets the mode of every convolution + BatchNorm pair in `model` (the ResNets' stems, blocks and
// shortcuts) and returns how many modules took it: 0 means the model has no such pairs.
int set_batchnorm_mode(torch::nn::Module& model, BatchNormMode mode);

}  // namespace graft::backbones
