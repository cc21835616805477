#include "finetune/adapters.h"

#include <filesystem>
#include <set>

#include "backbones/factory.h"
#include "backbones/lora.h"
#include "backbones/block_checkpointing.h"
#include "backbones/timm_vit.h"
#include "finetune/model_folder.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

// The keys of an adapter file's metadata.
constexpr const char* kAdapterKey = "graft.adapter";
constexpr const char* kBaseWeightsKey = "graft.base_weights";
constexpr const char* kBaseFingerprintKey = "graft.base_fingerprint";

// The loaded parameters of `backbone`, in its parameter order, for the base fingerprint.
std::vector<std::pair<std::string, torch::Tensor>> loaded_parameters(torch::nn::Module& backbone,
                                                                      const backbones::LoadReport& loaded) {
  const std::set<std::string> names(loaded.loaded.begin(), loaded.loaded.end());
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : backbone.named_parameters()) {
    if (names.count(item.key()) != 0) tensors.emplace_back(item.key(), item.value());
  }
  return tensors;
}

std::string metadata_value(const backbones::CheckpointFile& file, const char* key) {
  return file.values.contains(key) && file.values[key].is_string() ? file.values[key].get<std::string>() : "";
}

// The adapter kind `module` holds: "lora", "side" or "".
std::string adapter_kind(torch::nn::Module& module) {
  if (backbones::has_lora(module)) return "lora";
  for (const auto& item : module.named_parameters()) {
    if (backbones::is_side_network_parameter(item.key())) return "side";
  }
  return "";
}

std::string adapter_description(const std::string& kind) { return kind == "side" ? "a side network" : "LoRA adapters"; }

}  // namespace

std::optional<FrozenBase> apply_tuning_settings(backbones::BackboneImpl& backbone, const RunConfig& config,
                                                const backbones::LoadReport* loaded) {
  const TrainSettings& train = config.train;
  if (train.activation_checkpointing && backbones::set_activation_checkpointing(backbone, true) == 0) {
    throw UsageError("train.activation_checkpointing: backbone " + config.backbone +
                     " has no blocks that can be checkpointed (the ViTs have)");
  }
  if (train.adapter == "none") return std::nullopt;
  if (train.adapter != "lora" && train.adapter != "side") {
    throw UsageError("train.adapter: unknown adapter '" + train.adapter + "' (expected none, lora or side)");
  }
  if (!config.init_from.empty()) {
    throw UsageError("train.adapter: " + train.adapter + " adapts the backbone's `weights`; it does not start from " +
                     "init_from (" + config.init_from + ")");
  }
  if (train.linear_probe) {
    throw UsageError("train.adapter: " + train.adapter + " trains adapters, and train.linear_probe trains none");
  }
  auto* vit = dynamic_cast<backbones::TimmVitImpl*>(&backbone);
  if (train.adapter == "side" && vit == nullptr) {
    throw UsageError("train.adapter side: backbone " + config.backbone + " is not a ViT; a side network reads a ViT's blocks");
  }
  std::optional<FrozenBase> base;
  if (loaded != nullptr) {
    const auto tensors = loaded_parameters(backbone, *loaded);
    base = FrozenBase{fs::absolute(config.weights).lexically_normal().string(), backbones::tensors_fingerprint(tensors),
                      {}};
    for (const auto& item : tensors) base->tensors.push_back(item.second);
  }
  if (train.adapter == "side") {
    vit->add_side_network(train.side_reduction, "train.side_reduction on backbone " + config.backbone);
    return base;
  }
  backbones::LoraSettings settings;
  settings.rank = train.lora_rank;
  settings.alpha = train.lora_alpha;
  settings.targets = train.lora_targets;
  backbones::add_lora(backbone, settings, "train.adapter lora on backbone " + config.backbone);
  return base;
}

bool is_adapter_parameter(const std::string& name) {
  return backbones::is_lora_parameter(name) || backbones::is_side_network_parameter(name);
}

bool has_adapters(torch::nn::Module& module) { return !adapter_kind(module).empty(); }

std::vector<torch::Tensor> tunable_parameters(torch::nn::Module& backbone) {
  if (!has_adapters(backbone)) return backbone.parameters();
  std::vector<torch::Tensor> adapters;
  for (const auto& item : backbone.named_parameters()) {
    if (is_adapter_parameter(item.key())) adapters.push_back(item.value());
  }
  return adapters;
}

backbones::BackboneImpl* model_backbone(torch::nn::Module& model) {
  for (const auto& child : model.named_children()) {
    if (child.key() == "backbone") return dynamic_cast<backbones::BackboneImpl*>(child.value().get());
  }
  return nullptr;
}

void write_model_weights(torch::nn::Module& model, const std::optional<FrozenBase>& base, const std::string& path) {
  const std::string kind = adapter_kind(model);
  if (!base) {
    backbones::write_safetensors(backbones::state_dict_of(model), path,
                                 kind.empty() ? std::map<std::string, std::string>{}
                                              : std::map<std::string, std::string>{{kAdapterKey, kind}});
    return;
  }
  std::set<const void*> left_out;
  for (const auto& tensor : base->tensors) left_out.insert(tensor.unsafeGetTensorImpl());
  backbones::StateDict kept;
  for (const auto& item : model.named_parameters()) {
    if (left_out.count(item.value().unsafeGetTensorImpl()) == 0) kept.emplace_back(item.key(), backbones::from_torch(item.value()));
  }
  for (const auto& item : model.named_buffers()) kept.emplace_back(item.key(), backbones::from_torch(item.value()));
  backbones::write_safetensors(kept, path,
                               {{kAdapterKey, kind}, {kBaseWeightsKey, base->weights_path},
                                {kBaseFingerprintKey, base->fingerprint}});
}

bool holds_adapters(const backbones::CheckpointFile& file) {
  const std::string kind = metadata_value(file, kAdapterKey);
  return kind == "lora" || kind == "side";
}

void load_adapter_weights(torch::nn::Module& model, const backbones::CheckpointFile& file, const std::string& path,
                          const std::string& folder) {
  const std::string kind = metadata_value(file, kAdapterKey);
  backbones::BackboneImpl* backbone = model_backbone(model);
  if (backbone == nullptr) {
    throw Error(path + ": holds " + adapter_description(kind) + ", and this model has no backbone to take them");
  }
  const std::string recorded_base = metadata_value(file, kBaseWeightsKey);
  if (!has_adapters(*backbone)) {
    const RunConfig config = read_run_folder_config(folder);
    if (config.train.adapter != kind) {
      throw Error(path + ": holds " + adapter_description(kind) + " (field graft.adapter '" + kind + "'), but " +
                  folder + "/config.json has train.adapter '" + config.train.adapter + "'");
    }
    if (recorded_base.empty()) {
      apply_tuning_settings(*backbone, config, nullptr);
    } else {
      // The absolute path recorded at training, else `weights` as the config gives it.
      std::string base_path = recorded_base;
      if (!fs::exists(base_path) && !config.weights.empty() && fs::exists(config.weights)) base_path = config.weights;
      if (!fs::exists(base_path)) {
        throw Error(path + ": the adapters' base checkpoint " + recorded_base +
                    " (field graft.base_weights; config.json's weights: '" + config.weights + "') is not there");
      }
      const backbones::LoadReport report = backbones::load_weights(*backbone, base_path, !config.lenient);
      const std::optional<FrozenBase> base = apply_tuning_settings(*backbone, config, &report);
      const std::string recorded_fingerprint = metadata_value(file, kBaseFingerprintKey);
      if (base->fingerprint != recorded_fingerprint) {
        throw Error(path + ": the adapters were trained on other base weights than " + base_path +
                    " now holds (field graft.base_fingerprint is " + recorded_fingerprint + ", the file gives " +
                    base->fingerprint + ")");
      }
    }
  }
  backbones::LoadOptions lenient;
  lenient.strict = false;
  const backbones::LoadReport report = backbones::load_state_dict(model, file.tensors, lenient, path);
  std::vector<std::string> unexplained = report.unexpected;
  unexplained.insert(unexplained.end(), report.mismatched.begin(), report.mismatched.end());
  // A tensor the file lacks must be a frozen base weight, and only a file that names its base has any.
  std::set<std::string> frozen;
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad() && !is_adapter_parameter(item.key())) frozen.insert(item.key());
  }
  for (const auto& name : report.missing) {
    if (recorded_base.empty() || frozen.count(name) == 0) unexplained.push_back(name + " (missing)");
  }
  if (!unexplained.empty()) {
    std::string names;
    for (const auto& name : unexplained) names += "\n  " + name;
    throw Error(path + ": the adapter file does not fit the model its folder describes:" + names);
  }
  model.eval();
}

namespace {

// A module whose one child is a backbone named "backbone", so a model folder's "backbone."
// tensors load into it by name.
struct BackboneHolder : torch::nn::Module {
  explicit BackboneHolder(std::shared_ptr<backbones::BackboneImpl> backbone) {
    register_module("backbone", std::move(backbone));
  }
};

// The backbone of `folder` with the "backbone." tensors of its weights file, already read as `file`
// (taken by value: a caller that is done with it moves it in, and a whole model is not copied).
std::shared_ptr<backbones::BackboneImpl> backbone_from_file(const ModelFolder& folder, backbones::CheckpointFile file) {
  const std::string path = folder.weights_path();
  backbones::CheckpointFile backbone_file;
  backbone_file.values = std::move(file.values);
  for (auto& item : file.tensors) {
    if (item.first.rfind("backbone.", 0) == 0) backbone_file.tensors.push_back(std::move(item));
  }
  if (backbone_file.tensors.empty()) throw Error(path + ": holds no backbone tensors (a MIL model folder?)");
  const RunConfig& config = folder.config();
  auto backbone = backbones::create_backbone(config.backbone, config.in_channels);
  BackboneHolder holder(backbone);
  if (holds_adapters(backbone_file)) {
    load_adapter_weights(holder, backbone_file, path, folder.path());
  } else {
    backbones::LoadOptions strict;
    backbones::load_state_dict(holder, backbone_file.tensors, strict, path);
  }
  backbone->eval();
  return backbone;
}

}  // namespace

std::shared_ptr<backbones::BackboneImpl> load_folder_backbone(const ModelFolder& folder) {
  return backbone_from_file(folder, backbones::read_checkpoint(folder.weights_path()));
}

int merge_adapter_folder(const std::string& folder, const std::string& output) {
  const ModelFolder model_folder(folder);
  const RunConfig config = model_folder.config();
  const std::string path = model_folder.weights_path();
  const backbones::CheckpointFile file = backbones::read_checkpoint(path);
  if (!holds_adapters(file)) throw UsageError(path + ": holds no LoRA adapters to merge");
  if (metadata_value(file, kAdapterKey) == "side") {
    throw UsageError(path + ": holds a side network (field graft.adapter 'side'), which adds layers to the backbone "
                     "rather than changing its weights, so there is nothing to merge; the folder predicts as it is");
  }
  // The task's head stays as the file has it, so only the backbone needs building.
  const auto backbone = backbone_from_file(model_folder, file);
  const int merged = backbones::merge_lora(*backbone);
  BackboneHolder holder(backbone);
  backbones::StateDict all = backbones::state_dict_of(holder);
  for (const auto& item : file.tensors) {
    if (item.first.rfind("backbone.", 0) != 0) all.push_back(item);
  }
  RunConfig merged_config = config;
  merged_config.train.adapter = "none";
  merged_config.output = output;
  if (fs::absolute(output).lexically_normal() != fs::absolute(folder).lexically_normal()) {
    fs::create_directories(output);
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name != "checkpoint.pt") {
        fs::copy_file(entry.path(), fs::path(output) / name, fs::copy_options::overwrite_existing);
      }
    }
  }
  backbones::write_safetensors(all, model_weights_path(output));
  write_run_folder_config(output, merged_config);
  fs::remove(run_checkpoint_path(output));
  return merged;
}

}  // namespace graft::finetune
