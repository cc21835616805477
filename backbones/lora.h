#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace graft::backbones {

// Low-rank adaptation (Hu et al. 2022, "LoRA"): a frozen linear layer W x + b gains a trainable
// update (alpha / rank) * B A x, A (rank x in) drawn as torch.nn.Linear draws its weights and B
// (out x rank) zero, so an untrained adapter leaves the output unchanged, bit for bit.
struct LoraSettings {
  int rank = 8;
  double alpha = 16.0;
  // The last part of the adapted layers' names: "qkv" and "proj" (attention), "fc1" and "fc2" (MLP).
  std::vector<std::string> targets{"qkv", "proj"};
};

// torch.nn.Linear with its parameter names (weight, bias), so checkpoints load as before, that can
// take a LoRA adapter (lora_A, lora_B beside them).
class AdaptableLinearImpl : public torch::nn::Module {
 public:
  AdaptableLinearImpl(std::int64_t in_features, std::int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  // Registers lora_A and lora_B and freezes weight and bias.
  void add_adapter(int rank, double alpha);
  bool adapted() const { return lora_A.defined(); }
  // weight += (alpha / rank) B A, then the adapter is removed and weight and bias train again.
  void merge_adapter();

  torch::Tensor weight, bias, lora_A, lora_B;

 private:
  double scale_ = 0.0;
};
TORCH_MODULE(AdaptableLinear);

// Adds an adapter to every AdaptableLinear of `model` whose name ends in one of settings.targets,
// and freezes every other parameter of `model`. Returns the adapted layers' names. Throws
// graft::UsageError naming `where` for a rank below 1, or when no layer matches (the message
// lists the layer names that would).
std::vector<std::string> add_lora(torch::nn::Module& model, const LoraSettings& settings, const std::string& where);

// Whether any layer of `model` has an adapter.
bool has_lora(torch::nn::Module& model);

// Whether a parameter name (as named_parameters() gives it) is an adapter's.
bool is_lora_parameter(const std::string& name);

// Folds every adapter into its layer's weight; returns how many there were.
int merge_lora(torch::nn::Module& model);

// A 64-bit content hash (hexadecimal) of tensors, names and shapes included, in the order given:
// the record of which base weights an adapter was trained on.
std::string tensors_fingerprint(const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

}  // namespace graft::backbones
