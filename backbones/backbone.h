#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace graft::backbones {

// One level of a backbone's multi-scale output.
struct FeatureInfo {
  std::string name;        // "stem", "layer1", ...
  std::int64_t stride;     // input voxels per feature voxel, per spatial axis
  std::int64_t channels;
};

// A network that turns an input into multi-scale features. Submodules carry the reference
// implementation's names, so a PyTorch state_dict loads by name with no translation table.
class BackboneImpl : public torch::nn::Module {
 public:
  // One tensor per feature_info() entry, in the same order (shallow to deep).
  virtual std::vector<torch::Tensor> features(const torch::Tensor& input) = 0;
  virtual std::vector<FeatureInfo> feature_info() const = 0;
  // 3 for volumes (input B, C, D, H, W), 2 for images (B, C, H, W).
  virtual int spatial_dims() const { return 3; }
  // One vector per input: the deepest features averaged over space, unless the architecture has
  // its own (a ViT's class token).
  virtual torch::Tensor embedding(const torch::Tensor& input) { return features(input).back().flatten(2).mean(2); }
  // The name of the first convolution's weight, which input-channel adaptation rewrites.
  virtual std::string input_conv_weight_name() const = 0;
  // Checkpoint keys that belong to a classifier the backbone leaves out (timm's "fc."): a
  // checkpoint may carry them, and loading drops them with a note instead of refusing.
  virtual std::vector<std::string> classifier_prefixes() const { return {}; }
  // Layer-wise learning-rate decay: the depth of a parameter from the input (0: embeddings,
  // 1..layer_count - 1: blocks, layer_count: the final norm), or -1 for a backbone without layers.
  virtual int layer_of(const std::string& /*parameter_name*/) const { return -1; }
  virtual int layer_count() const { return 0; }
};

// Calls `apply(holder)` on every module of `model` (itself included) that inherits `Holder`, the
// way a setting reaches the parts of a backbone that take it; returns how many did.
template <typename Holder, typename Apply>
int apply_to_holders(torch::nn::Module& model, Apply&& apply) {
  int count = 0;
  for (const auto& module : model.modules(/*include_self=*/true)) {
    if (auto* holder = dynamic_cast<Holder*>(module.get())) {
      apply(*holder);
      ++count;
    }
  }
  return count;
}

}  // namespace graft::backbones
