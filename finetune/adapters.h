#pragma once

// What train.adapter and train.activation_checkpointing do to a backbone, and how an adapter run's
// model folder keeps its weights: model.safetensors holds the adapters, the head and any backbone
// tensor the base checkpoint did not give, and its metadata names the base checkpoint and a
// fingerprint of the base weights, which loading checks.
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backbones/backbone.h"
#include "backbones/checkpoint_file.h"
#include "backbones/weight_loading.h"
#include "finetune/model_folder.h"
#include "finetune/run_config.h"

namespace graft::finetune {

// The base weights an adapter run loads from `weights`, keeps frozen and leaves out of its model
// folder.
struct FrozenBase {
  std::string weights_path;  // absolute
  std::string fingerprint;   // backbones::tensors_fingerprint of `tensors`, in parameter order
  std::vector<torch::Tensor> tensors;
};

// Applies train.adapter ("none", "lora" or "side") and train.activation_checkpointing to `backbone`
// once its base weights are loaded (`loaded`: the report of loading config.weights, or null when
// there are none). Returns the frozen base of an adapter run with weights. Throws graft::UsageError naming the
// setting when the backbone cannot take it.
std::optional<FrozenBase> apply_tuning_settings(backbones::BackboneImpl& backbone, const RunConfig& config,
                                                const backbones::LoadReport* loaded);

// Whether a parameter name (as named_parameters() gives it) is a LoRA adapter's or a side network's.
bool is_adapter_parameter(const std::string& name);

// Whether `module` has LoRA adapters or a side network.
bool has_adapters(torch::nn::Module& module);

// Parameters of `backbone` that fine-tuning updates: its adapters when it has any, else all of them.
std::vector<torch::Tensor> tunable_parameters(torch::nn::Module& backbone);

// The backbone of a task's model (its submodule named "backbone"), or null.
backbones::BackboneImpl* model_backbone(torch::nn::Module& model);

// Writes `model`'s tensors to `path` (safetensors), leaving out `base`'s, whose checkpoint and
// fingerprint the file's metadata records instead.
void write_model_weights(torch::nn::Module& model, const std::optional<FrozenBase>& base, const std::string& path);

// Whether a weights file read from a model folder holds adapters (LoRA or a side network).
bool holds_adapters(const backbones::CheckpointFile& file);

// Loads an adapter model folder's weights file into `model`, built from the folder's config: the
// base checkpoint into its backbone first (checked against the recorded fingerprint) and the
// adapters added, unless the backbone has them already (the model that just trained). Every tensor
// of the file must fit, and every tensor of the model must come from the file or the base.
void load_adapter_weights(torch::nn::Module& model, const backbones::CheckpointFile& file, const std::string& path,
                          const std::string& folder);

// The fine-tuned backbone of a model folder with its weights (the "backbone." tensors of
// model.safetensors; for a LoRA folder, the base checkpoint checked against its fingerprint and
// the adapters or side network on it), in eval mode: a model's backbone as a feature extractor (MIL's slide
// features), or for merging.
std::shared_ptr<backbones::BackboneImpl> load_folder_backbone(const ModelFolder& folder);

// Folds a LoRA model folder's adapters into its backbone's weights and writes a plain model folder
// at `output` (the same folder to merge in place), whose model.safetensors holds every tensor and
// whose config says adapter "none"; a resumable checkpoint.pt of the adapter run is not kept there.
// Returns the number of merged layers. A side network adds layers rather than changing weights, so
// its folder cannot be merged (graft::UsageError).
int merge_adapter_folder(const std::string& folder, const std::string& output);

}  // namespace graft::finetune
