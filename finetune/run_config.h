#pragma once

// A training run's settings as one typed value: every field with its default here, read from a run
// file (YAML or JSON) and `--set a.b=c` overrides, checked for unknown keys, and saved beside every
// checkpoint as config.json so a prediction months later uses the same settings.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace graft::finetune {

struct DataSettings {
  std::string manifest;  // CSV or JSON manifest, or an nnU-Net dataset folder
  int folds = 5;
  int fold = 0;  // the k-fold split held out for validation when the manifest has no split column
  std::vector<std::int64_t> patch_size{64, 64, 32};  // x y z (2D backbones: x y, z 1)
  int batch_size = 2;
  int batches_per_epoch = 50;
  double foreground_fraction = 0.33;  // patches centred on a labelled voxel
  int workers = 2;                    // loader threads
  int prefetch = 4;                   // batches made ahead
  bool augment = true;
  std::vector<std::string> band_names;  // the inputs' bands in order, instead of the files'
  bool fill_missing_bands = false;
  std::string cache_dir;  // preprocessed cases kept as HDF5 here when set
  nlohmann::json contract = nlohmann::json::object();  // Contract fields overriding the backbone's
};

struct TrainSettings {
  int epochs = 20;
  std::string optimizer = "sgd";  // sgd or adamw
  double lr = 0.001;
  double momentum = 0.9;
  double weight_decay = 0.0001;
  double head_lr_multiplier = 100.0;
  double layer_decay = 1.0;  // < 1: layer-wise decay for layered backbones (ViTs)
  std::string schedule = "poly";  // poly, cosine, exponential, constant
  double poly_power = 0.9;
  double exponential_gamma = 0.95;
  int freeze_backbone_epochs = 0;
  double grad_clip_norm = 12.0;
  std::string loss = "dice_ce";
  int early_stopping_patience = 0;
  int threads = 0;  // LibTorch threads; 0: the cores
  std::string device = "cpu";
  std::string precision = "fp32";
  int max_validation_cases = 0;  // 0: all
  bool linear_probe = false;
  // How the backbone's convolution + BatchNorm pairs train: "train" (batch statistics), "eval"
  // (running statistics) or "tune" (the eval function as one folded convolution, which keeps less
  // for the backward pass; backbones/batchnorm_mode.h).
  std::string batchnorm = "train";
  // Parameter-efficient fine-tuning of a ViT: "none"; "lora": low-rank adapters (backbones/lora.h)
  // on the layers named in lora_targets, scaled by lora_alpha / lora_rank; or "side": a ladder side
  // network side_reduction times narrower than the backbone (backbones/timm_vit.h), with no
  // backward pass through the backbone. The backbone's own weights stay frozen and out of the
  // optimizer, and model.safetensors keeps only the adapters and the head, with a record of the
  // base weights (`weights`) that prediction loads under them.
  std::string adapter = "none";
  int lora_rank = 8;
  double lora_alpha = 16.0;
  std::vector<std::string> lora_targets{"qkv", "proj"};
  int side_reduction = 8;
  // Activation checkpointing of the backbone's blocks (the ViTs'): each block keeps only its input
  // for the backward pass and runs again there (backbones/block_checkpointing.h).
  bool activation_checkpointing = false;
};

struct DetectionSettings {
  std::int64_t fpn_channels = 64;
  double score_threshold = 0.05;
  double nms_iou = 0.3;
  int max_detections = 100;
  std::vector<std::int64_t> window_size;  // x y z; empty: twice data.patch_size
};

struct MilSettings {
  std::int64_t feature_dim = 0;  // set from the bags
  std::int64_t hidden = 512;
  std::int64_t attention = 256;
  double dropout = 0.25;
};

struct PredictSettings {
  double overlap = 0.5;
  bool mirror = false;
  // The axes mirroring may flip (0 x, 1 y, 2 z): an nnU-Net checkpoint's
  // inference_allowed_mirroring_axes, where a model trained on one side of the body excludes x.
  std::vector<int> mirror_axes{0, 1, 2};
};

struct RunConfig {
  std::string task = "segmentation";  // segmentation, classification, detection, mil
  std::string backbone = "med3d-resnet10";
  std::string weights;  // pretrained checkpoint; empty: random initialisation
  // A model folder whose settings this run starts from (its config.json under the run file's
  // keys) and whose whole network's weights it starts with: fine-tuning an imported or trained
  // model. A different class count starts the last layer afresh.
  std::string init_from;
  bool lenient = false;
  int in_channels = 0;  // 0: the Contract's
  std::string head = "medicalnet";
  // A whole network described by its own architecture, for backbones built from a model folder
  // (backbone "nnunet": backbones::NnUNetArchitecture's JSON). Empty for registered backbones.
  nlohmann::json network = nlohmann::json::object();
  // Networks of this architecture whose logits are averaged (an imported nnU-Net's folds); only a
  // model of one network trains.
  int ensemble_size = 1;
  // With background for segmentation and detection. A run file (or --set) without it gives 0:
  // training then takes the classes from the label images (infer_segmentation_classes) or the
  // class names (classification, MIL).
  int classes = 2;
  std::vector<std::string> class_names;
  bool multi_label = false;
  std::uint64_t seed = 0;
  std::string output = "graft-run";
  DataSettings data;
  TrainSettings train;
  DetectionSettings detection;
  MilSettings mil;
  PredictSettings predict;
};

// Every field, as config.json holds it.
nlohmann::json to_json(const RunConfig& config);
// `json` over the defaults: an unknown key, or a value of the wrong type, is an error naming
// `where` and the key.
RunConfig run_config_from_json(const nlohmann::json& json, const std::string& where);

RunConfig default_run_config();

// Reads YAML or JSON (JSON is YAML), merges it over the defaults, applies `a.b=value` overrides
// (value parsed as JSON when it parses, else taken as a string), and checks that every key is a
// known one, so a typo is an error naming the key rather than a silently ignored setting. With
// init_from set, the run file and overrides are merged over that model folder's config.json
// instead of the defaults (its output, manifest, cache, weights and init_from are the run's own).
RunConfig resolve_run_config(const std::string& path, const std::vector<std::string>& overrides);

// Merges `overrides` into `base` key by key (objects recursively), refusing unknown keys.
void merge_config(nlohmann::json& base, const nlohmann::json& overrides, const std::string& where);

// One JSON file; errors name the file (missing, or not JSON).
nlohmann::json read_json_file(const std::string& path);

}  // namespace graft::finetune
