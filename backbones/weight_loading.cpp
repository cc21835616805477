#include "backbones/weight_loading.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

#include "backbones/checkpoint_file.h"
#include "io/error.h"

namespace graft::backbones {
namespace {

torch::ScalarType scalar_type(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF32: return torch::kFloat32;
    case TensorDType::kF64: return torch::kFloat64;
    case TensorDType::kF16: return torch::kFloat16;
    case TensorDType::kBF16: return torch::kBFloat16;
    case TensorDType::kI64: return torch::kInt64;
    case TensorDType::kI32: return torch::kInt32;
    case TensorDType::kI16: return torch::kInt16;
    case TensorDType::kI8: return torch::kInt8;
    case TensorDType::kU8: return torch::kUInt8;
    case TensorDType::kBool: return torch::kBool;
  }
  return torch::kFloat32;
}

std::string shape_text(torch::IntArrayRef sizes) {
  std::string text = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) text += (i ? ", " : "") + std::to_string(sizes[i]);
  return text + "]";
}

}  // namespace

std::string LoadReport::summary() const {
  std::ostringstream out;
  out << source << ": loaded " << loaded.size() << " tensors";
  if (clean()) out << ", every key matched";
  out << "\n";
  for (const auto& note : notes) out << "  note: " << note << "\n";
  for (const auto& line : adapted) out << "  adapted: " << line << "\n";
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    out << "  " << what << " (" << names.size() << "):";
    for (std::size_t i = 0; i < names.size() && i < 12; ++i) out << (i ? ", " : " ") << names[i];
    if (names.size() > 12) out << ", ...";
    out << "\n";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("shape mismatch", mismatched);
  return out.str();
}

torch::Tensor to_torch(const TensorData& tensor) {
  torch::Tensor out = torch::empty(tensor.shape, torch::TensorOptions().dtype(scalar_type(tensor.dtype)));
  std::memcpy(out.data_ptr(), tensor.bytes.data(), tensor.bytes.size());
  return out;
}

TensorData from_torch(const torch::Tensor& tensor) {
  const torch::Tensor contiguous = tensor.detach().cpu().contiguous();
  TensorData out;
  switch (contiguous.scalar_type()) {
    case torch::kFloat64: out.dtype = TensorDType::kF64; break;
    case torch::kFloat16: out.dtype = TensorDType::kF16; break;
    case torch::kBFloat16: out.dtype = TensorDType::kBF16; break;
    case torch::kInt64: out.dtype = TensorDType::kI64; break;
    case torch::kInt32: out.dtype = TensorDType::kI32; break;
    case torch::kInt16: out.dtype = TensorDType::kI16; break;
    case torch::kInt8: out.dtype = TensorDType::kI8; break;
    case torch::kUInt8: out.dtype = TensorDType::kU8; break;
    case torch::kBool: out.dtype = TensorDType::kBool; break;
    default: out.dtype = TensorDType::kF32;
  }
  const torch::Tensor typed = out.dtype == TensorDType::kF32 ? contiguous.to(torch::kFloat32) : contiguous;
  out.shape = typed.sizes().vec();
  out.bytes.resize(typed.numel() * typed.element_size());
  std::memcpy(out.bytes.data(), typed.data_ptr(), out.bytes.size());
  return out;
}

StateDict state_dict_of(torch::nn::Module& module) {
  StateDict out;
  for (const auto& item : module.named_parameters(true)) out.emplace_back(item.key(), from_torch(item.value()));
  for (const auto& item : module.named_buffers(true)) out.emplace_back(item.key(), from_torch(item.value()));
  return out;
}

torch::Tensor adapt_input_conv(const torch::Tensor& weight, int64_t in_channels) {
  const int64_t source_channels = weight.size(1);
  if (in_channels == source_channels) return weight;
  torch::Tensor w = weight.to(torch::kFloat32);
  if (in_channels == 1 && source_channels == 3) return w.sum(1, true).to(weight.scalar_type());
  const int64_t repeats = (in_channels + source_channels - 1) / source_channels;
  std::vector<int64_t> repeat_counts(w.dim(), 1);
  repeat_counts[1] = repeats;
  w = w.repeat(repeat_counts).narrow(1, 0, in_channels) *
      (static_cast<double>(source_channels) / static_cast<double>(in_channels));
  return w.to(weight.scalar_type());
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& tensors,
                           const LoadOptions& options, const std::string& source) {
  LoadReport report;
  report.source = source;
  std::map<std::string, const TensorData*> by_name;
  for (const auto& [name, tensor] : tensors) by_name[name] = &tensor;
  std::map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters(true)) targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers(true)) targets[item.key()] = item.value();

  // Everything is checked before anything is copied, so a refused checkpoint leaves the network
  // as it was.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (auto& [name, target] : targets) {
    const auto found = by_name.find(name);
    if (found == by_name.end()) {
      report.missing.push_back(name);
      continue;
    }
    torch::Tensor value = to_torch(*found->second);
    if (value.sizes() != target.sizes() && name == options.input_conv_weight_name &&
        value.dim() == target.dim() && value.size(0) == target.size(0) &&
        value.sizes().slice(2) == target.sizes().slice(2)) {
      report.adapted.push_back(name + ": " + std::to_string(value.size(1)) + " -> " +
                               std::to_string(target.size(1)) + " input channels (timm adapt_input_conv rule)");
      value = adapt_input_conv(value, target.size(1));
    }
    if (value.sizes() != target.sizes()) {
      report.mismatched.push_back(name + ": checkpoint " + shape_text(value.sizes()) + " vs network " +
                                  shape_text(target.sizes()));
      continue;
    }
    if (value.is_floating_point() && !torch::isfinite(value).all().item<bool>()) {
      throw Error(source + ": tensor " + name + " holds NaN or infinite values");
    }
    copies.emplace_back(target, value);
    report.loaded.push_back(name);
  }
  for (const auto& [name, tensor] : tensors) {
    if (!targets.count(name)) report.unexpected.push_back(name);
  }
  if (options.strict && !report.clean()) {
    std::string why = report.summary();
    std::replace(why.begin(), why.end(), '\n', ';');
    throw Error(why + " (strict loading; --lenient loads what fits)");
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value.to(target.scalar_type()));
  return report;
}

LoadReport load_weights(BackboneImpl& backbone, const std::string& path, bool strict) {
  const CheckpointFile file = read_checkpoint(path);
  LoadOptions options;
  options.strict = strict;
  options.input_conv_weight_name = backbone.input_conv_weight_name();
  StateDict tensors;
  std::vector<std::string> dropped;
  for (const auto& [name, tensor] : file.tensors) {
    const auto prefixes = backbone.classifier_prefixes();
    const bool classifier = std::any_of(prefixes.begin(), prefixes.end(),
                                        [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; });
    if (classifier) dropped.push_back(name);
    else tensors.emplace_back(name, tensor);
  }
  LoadReport report = load_state_dict(backbone, tensors, options, path);
  if (!dropped.empty()) {
    std::string names;
    for (const auto& name : dropped) names += (names.empty() ? "" : ", ") + name;
    report.notes.push_back("classifier tensors not used by the backbone: " + names);
  }
  report.notes.insert(report.notes.begin(), "format " + file.format);
  report.notes.insert(report.notes.end(), file.notes.begin(), file.notes.end());
  return report;
}

}  // namespace graft::backbones
