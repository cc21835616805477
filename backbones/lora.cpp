#include "backbones/lora.h"

#include <cmath>
#include <cstring>
#include <set>

#include "io/error.h"

namespace graft::backbones {

AdaptableLinearImpl::AdaptableLinearImpl(std::int64_t in_features, std::int64_t out_features, bool with_bias) {
  // torch.nn.Linear's initialisation: Kaiming-uniform with a = sqrt(5), bias uniform in +-1/sqrt(in).
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

torch::Tensor AdaptableLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = torch::linear(x, weight, bias);
  if (!lora_A.defined()) return out;
  return out + torch::linear(torch::linear(x, lora_A), lora_B) * scale_;
}

void AdaptableLinearImpl::add_adapter(int rank, double alpha) {
  if (adapted()) throw Error("this layer already has a LoRA adapter");
  torch::NoGradGuard no_grad;
  const auto options = weight.options();
  lora_A = register_parameter("lora_A", torch::empty({rank, weight.size(1)}, options));
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  lora_B = register_parameter("lora_B", torch::zeros({weight.size(0), rank}, options));
  scale_ = alpha / rank;
  weight.set_requires_grad(false);
  if (bias.defined()) bias.set_requires_grad(false);
}

void AdaptableLinearImpl::merge_adapter() {
  if (!adapted()) return;
  {
    torch::NoGradGuard no_grad;
    weight.add_(torch::matmul(lora_B, lora_A), scale_);
  }
  parameters_.erase("lora_A");
  parameters_.erase("lora_B");
  lora_A = lora_B = torch::Tensor();
  weight.set_requires_grad(true);
  if (bias.defined()) bias.set_requires_grad(true);
}

std::vector<std::string> add_lora(torch::nn::Module& model, const LoraSettings& settings, const std::string& where) {
  if (settings.rank < 1) throw UsageError(where + ": lora_rank must be at least 1, got " + std::to_string(settings.rank));
  if (settings.targets.empty()) throw UsageError(where + ": lora_targets names no layer");
  const std::set<std::string> targets(settings.targets.begin(), settings.targets.end());
  std::vector<std::string> adapted;
  std::set<std::string> adaptable;
  for (const auto& item : model.named_modules()) {
    auto* linear = item.value()->as<AdaptableLinearImpl>();
    if (linear == nullptr) continue;
    const std::string& name = item.key();
    const std::size_t dot = name.rfind('.');
    const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
    adaptable.insert(last);
    if (targets.count(last) == 0) continue;
    linear->add_adapter(settings.rank, settings.alpha);
    adapted.push_back(name);
  }
  if (adapted.empty()) {
    std::string names;
    for (const auto& name : adaptable) names += (names.empty() ? "" : ", ") + name;
    throw UsageError(where + ": no layer named by lora_targets; " +
                     (names.empty() ? "this backbone has no layer LoRA adapts (the ViTs have)"
                                    : "this backbone's adaptable layers are " + names));
  }
  for (auto& item : model.named_parameters()) {
    if (!is_lora_parameter(item.key())) item.value().set_requires_grad(false);
  }
  return adapted;
}

bool has_lora(torch::nn::Module& model) {
  for (const auto& module : model.modules()) {
    if (const auto* linear = module->as<AdaptableLinearImpl>(); linear != nullptr && linear->adapted()) return true;
  }
  return false;
}

bool is_lora_parameter(const std::string& name) {
  const auto ends_with = [&](const char* suffix) {
    const std::size_t length = std::strlen(suffix);
    return name.size() >= length && name.compare(name.size() - length, length, suffix) == 0 &&
           (name.size() == length || name[name.size() - length - 1] == '.');
  };
  return ends_with("lora_A") || ends_with("lora_B");
}

int merge_lora(torch::nn::Module& model) {
  int merged = 0;
  for (const auto& module : model.modules()) {
    auto* linear = module->as<AdaptableLinearImpl>();
    if (linear == nullptr || !linear->adapted()) continue;
    linear->merge_adapter();
    ++merged;
  }
  return merged;
}

std::string tensors_fingerprint(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  // FNV-1a over names and shapes, then a multiply-xorshift mix over the data's 64-bit words: a
  // record that tells weights apart, not a cryptographic hash.
  std::uint64_t hash = 1469598103934665603ull;
  const auto mix_byte = [&](unsigned char byte) { hash = (hash ^ byte) * 1099511628211ull; };
  const auto mix_word = [&](std::uint64_t word) {
    hash ^= word + 0x9e3779b97f4a7c15ull + (hash << 6) + (hash >> 2);
    hash *= 0xff51afd7ed558ccdull;
    hash ^= hash >> 33;
  };
  for (const auto& [name, tensor] : tensors) {
    for (char c : name) mix_byte(static_cast<unsigned char>(c));
    for (const auto size : tensor.sizes()) mix_word(static_cast<std::uint64_t>(size));
    const torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const unsigned char*>(data.data_ptr());
    const std::size_t count = data.numel() * data.element_size();
    std::size_t i = 0;
    for (; i + 8 <= count; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, bytes + i, 8);
      mix_word(word);
    }
    for (; i < count; ++i) mix_byte(bytes[i]);
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace graft::backbones
