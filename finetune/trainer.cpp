#include "finetune/trainer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "backbones/checkpoint_file.h"
#include "backbones/factory.h"
#include "backbones/nnunet_unet.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "datasets/manifest.h"
#include "finetune/device.h"
#include "finetune/distributed.h"
#include "finetune/model_folder.h"
#include "finetune/inference/sliding_window.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/label_file.h"
#include "io/segment_names.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

torch::Tensor loss_of(const std::string& name, const torch::Tensor& model_output, const torch::Tensor& labels) {
  // fp32 whatever precision autocast ran the forward pass at.
  const torch::Tensor logits = model_output.to(torch::kFloat32);
  if (name == "dice_ce") return dice_ce_loss(logits, labels);
  if (name == "focal") return focal_loss(logits, labels);
  if (name == "ce") return torch::nn::functional::cross_entropy(logits, labels);
  throw Error("unknown train.loss '" + name + "' (expected dice_ce, focal or ce)");
}

void require_one_network(const RunConfig& config) {
  if (config.ensemble_size > 1) {
    throw Error("an ensemble of " + std::to_string(config.ensemble_size) +
                " networks predicts but does not train: fine-tune one of its folds (graft import nnunet --fold N)");
  }
}

}  // namespace

datasets::PatchOptions patch_options(const RunConfig& config) {
  datasets::PatchOptions options;
  const auto patch = config.data.patch_size;
  const bool planar = run_contract(config).spatial_dims == 2;
  if (patch.size() != 3 || patch[0] < 8 || patch[1] < 8 || (planar ? patch[2] != 1 : patch[2] < 8)) {
    throw Error(planar ? "data.patch_size must be [x, y, 1] with x, y at least 8 for the 2D backbone " +
                             config.backbone + " (tiles, e.g. [256, 256, 1])"
                       : std::string("data.patch_size must be three sizes (x, y, z) of at least 8"));
  }
  options.patch_xyz = {patch[0], patch[1], patch[2]};
  options.foreground_fraction = config.data.foreground_fraction;
  // Batches bound for a GPU are pinned by the loader's workers, ahead of the step that copies them.
  options.pin_memory = parse_device(config.train.device, "train.device").is_cuda();
  options.augment.enabled = config.data.augment;
  return options;
}

preprocess::Contract run_contract(const RunConfig& config) {
  // An imported network's Contract came with it, whole (graft import nnunet writes every field).
  if (uses_network_description(config)) return preprocess::contract_from_json(config.data.contract, "data.contract");
  const auto& info = backbones::find_backbone(config.backbone);
  nlohmann::json contract = preprocess::to_json(info.contract);
  for (const auto& item : config.data.contract.items()) {
    if (!contract.contains(item.key())) throw Error("data.contract: unknown contract field '" + item.key() + "'");
    contract[item.key()] = item.value();
  }
  // Segmentation and detection on tiles keep the raster's own pixel size: a 2D contract's input
  // size (224 px for chips) becomes the tile size instead of a resize, as TorchGeo's segmentation
  // trainers do.
  const bool tiles = config.task != "classification" && contract["spatial_dims"] == 2 &&
                     contract["resize"] == "size" && !config.data.contract.contains("resize");
  if (tiles) {
    contract["resize"] = "none";
    auto deviations = contract["deviations"].get<std::vector<std::string>>();
    deviations.push_back("segmentation on tiles: the raster keeps its pixel size; data.patch_size is the tile");
    contract["deviations"] = deviations;
  }
  if (!config.data.contract.empty()) {
    auto deviations = contract["deviations"].get<std::vector<std::string>>();
    deviations.push_back("this run overrides the contract: " + config.data.contract.dump());
    contract["deviations"] = deviations;
  }
  return preprocess::contract_from_json(contract, "run config data.contract");
}

std::uint64_t seed_run(const RunConfig& config) {
  set_compute_threads(config.train.threads);
  const std::uint64_t seed = config.seed;
  torch::manual_seed(seed);
  return seed;
}

void start_run_folder(const RunConfig& config, torch::nn::Module& model, backbones::BackboneImpl& backbone,
                      TrainingTask& task) {
  if (!config.init_from.empty()) task.notes.push_back(load_initial_model(model, config).summary());
  backbones::LoadReport report;
  if (!config.weights.empty()) {
    report = backbones::load_weights(backbone, config.weights, !config.lenient);
    task.notes.push_back(report.summary());
  }
  task.frozen_base = apply_tuning_settings(backbone, config, config.weights.empty() ? nullptr : &report);
  // Before anything runs the model (a linear probe's embeddings): every task's tensors then go
  // where the model is.
  model.to(parse_device(config.train.device, "train.device"));
  const std::string output = config.output;
  fs::create_directories(output);
  if (is_writing_rank()) write_run_folder_contract(output, run_contract(config));
}

preprocess::PlanOptions run_plan_options(const RunConfig& config, std::uint64_t seed) {
  preprocess::PlanOptions options;
  options.seed = seed;
  // Model folders from before these settings existed lack them.
  options.band_names = config.data.band_names;
  options.fill_missing_bands = config.data.fill_missing_bands;
  return options;
}

void report_cache_use(const datasets::PreprocessedCache& cache) {
  if (!cache.enabled()) return;
  std::fprintf(stderr, "graft: preprocessed cache %s: %d read, %d prepared and stored\n", cache.folder().c_str(),
               cache.hits(), cache.misses());
}

backbones::LoadReport load_initial_model(torch::nn::Module& model, const RunConfig& config) {
  const ModelFolder folder(config.init_from);
  const std::string path = folder.weights_path();
  const backbones::CheckpointFile file = backbones::read_checkpoint(path);
  if (holds_adapters(file)) {
    throw UsageError("init_from: " + path + " holds LoRA adapters, not a whole network; merge them first (graft " +
                     "merge-adapter --model " + config.init_from + " --output MERGED) and start from MERGED");
  }
  backbones::LoadOptions options;
  const int model_classes = folder.config().classes;
  // Another class count keeps every tensor but the layers that score the classes: those whose
  // first dimension was the old count and no longer fits.
  backbones::StateDict tensors;
  std::vector<std::string> restarted;
  const auto targets = model.named_parameters(true);
  for (const auto& [name, tensor] : file.tensors) {
    const torch::Tensor* target = targets.find(name);
    const bool class_layer = model_classes != config.classes && target && !tensor.shape.empty() &&
                             tensor.shape[0] == model_classes && target->size(0) == config.classes;
    if (class_layer) {
      restarted.push_back(name);
    } else {
      tensors.emplace_back(name, tensor);
    }
  }
  if (!restarted.empty()) options.strict = false;
  backbones::LoadReport report = backbones::load_state_dict(model, tensors, options, path);
  if (!restarted.empty()) {
    if (!report.unexpected.empty() || !report.mismatched.empty() || report.missing.size() != restarted.size()) {
      throw Error(path + ": the model does not fit this run beyond its class layers\n" + report.summary());
    }
    report.notes.push_back(std::to_string(model_classes) + " classes in " + config.init_from + ", " +
                           std::to_string(config.classes) + " here: the class layers start afresh");
  }
  return report;
}

backbones::LoadReport load_medicalnet_head(torch::nn::Module& head, const std::string& path, int classes) {
  const backbones::CheckpointFile file = backbones::read_checkpoint(path);
  backbones::StateDict tensors;
  std::string other_classes;
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind("conv_seg.", 0) != 0) continue;
    // The last layer's rows are the checkpoint's classes; another class count starts it afresh.
    if (name == "conv_seg.6.weight" && !tensor.shape.empty() && tensor.shape[0] != classes) {
      other_classes = std::to_string(tensor.shape[0]);
      continue;
    }
    tensors.emplace_back(name, tensor);
  }
  backbones::LoadReport report;
  if (tensors.empty()) {
    report.source = path;
    report.notes.push_back("no conv_seg tensors (MedicalNet's head): the head starts from random weights");
    return report;
  }
  backbones::LoadOptions options;
  options.strict = other_classes.empty();
  report = backbones::load_state_dict(head, tensors, options, path + " (MedicalNet head)");
  if (!other_classes.empty()) {
    report.notes.push_back("conv_seg.6.weight has " + other_classes + " classes and this run " +
                           std::to_string(classes) + ": that layer starts from random weights");
  }
  return report;
}

bool uses_network_description(const RunConfig& config) {
  return backbones::find_backbone(config.backbone).needs_model_folder;
}

namespace {

SegmentationModel build_one_network(const RunConfig& config) {
  if (uses_network_description(config)) {
    if (config.head != "nnunet") {
      throw Error("backbone 'nnunet' takes head 'nnunet' (its own decoder), not '" + config.head + "'");
    }
    backbones::NnUNetArchitecture architecture = backbones::nnunet_architecture_from_json(config.network, "network");
    if (config.in_channels > 0) architecture.input_channels = config.in_channels;
    return SegmentationModel(std::make_shared<backbones::NnUNetEncoderImpl>(architecture), HeadKind::kNnUNet,
                             config.classes);
  }
  auto backbone = backbones::create_backbone(config.backbone, config.in_channels);
  return SegmentationModel(backbone, head_kind_from_name(config.head), config.classes);
}

}  // namespace

SegmentationModel build_model(const RunConfig& config) {
  if (config.ensemble_size < 1) throw Error("ensemble_size must be at least 1, got " + std::to_string(config.ensemble_size));
  SegmentationModel model = build_one_network(config);
  for (int member = 1; member < config.ensemble_size; ++member) model->add_ensemble_member(build_one_network(config).ptr());
  return model;
}

SegmentationModel load_segmentation_model(const ModelFolder& folder, torch::Device device) {
  folder.require_task(Task::kSegmentation);
  SegmentationModel model = build_model(folder.config());
  load_best_weights(*model, folder.path());
  model->to(device);
  return model;
}

std::vector<double> validation_dice(SegmentationModelImpl& model, const std::vector<datasets::PreparedCase>& cases,
                                    const RunConfig& config) {
  const int classes = model.classes();
  std::vector<double> overlap(classes, 0.0), total(classes, 0.0);
  SlidingWindowOptions options;
  const auto patch = config.data.patch_size;
  options.patch_xyz = {patch[0], patch[1], patch[2]};
  options.overlap_fraction = config.predict.overlap;
  options.windows_per_batch = 4;
  std::vector<double> dice(classes, 0.0);
  std::vector<int> counted(classes, 0);
  for (const auto& item : cases) {
    const SlidingWindowResult result = predict_sliding_window(model, item.image, options);
    const std::uint8_t* predicted = result.labels.data<std::uint8_t>();
    const std::uint8_t* reference = item.labels.data<std::uint8_t>();
    std::vector<std::int64_t> both(classes, 0), sum(classes, 0);
    for (std::int64_t i = 0; i < item.labels.element_count(); ++i) {
      ++sum[predicted[i]];
      ++sum[reference[i]];
      if (predicted[i] == reference[i]) ++both[predicted[i]];
    }
    // Per case, then averaged over cases, as nnU-Net reports it; a class absent from both the
    // prediction and the reference of a case is skipped for that case.
    for (int c = 1; c < classes; ++c) {
      if (sum[c] == 0) continue;
      dice[c] += 2.0 * both[c] / sum[c];
      ++counted[c];
    }
  }
  for (int c = 1; c < classes; ++c) dice[c] = counted[c] ? dice[c] / counted[c] : 0.0;
  return dice;
}

std::unique_ptr<datasets::BatchLoader> patch_loader(const RunConfig& config,
                                                    const std::vector<datasets::PreparedCase>& cases,
                                                    std::uint64_t seed) {
  // A data-parallel rank draws only its share of every global batch.
  return std::make_unique<datasets::BatchLoader>(cases, patch_options(config), config.data.batch_size,
                                                 config.data.batches_per_epoch, config.data.workers,
                                                 config.data.prefetch, seed,
                                                 rank_share_of_batch(config.data.batch_size));
}

void describe_patch_task(TrainingTask& task, const RunConfig& config, torch::nn::Module& model,
                         backbones::BackboneImpl& backbone, torch::nn::Module& head, datasets::BatchLoader& loader) {
  task.model = &model;
  task.backbone = &backbone;
  task.head = &head;
  task.layer_of = [&backbone](const std::string& name) { return backbone.layer_of(name); };
  task.layer_count = backbone.layer_count();
  task.steps_per_epoch = config.data.batches_per_epoch;
  task.frozen_epochs = config.train.freeze_backbone_epochs;
  task.start_epoch = [&loader](int epoch) { loader.start_epoch(epoch); };
  task.skip_batch = [&loader] { loader.next(); };
}

TrainResult train_prepared(const RunConfig& config, const std::vector<datasets::PreparedCase>& train_cases,
                           const std::vector<datasets::PreparedCase>& val_cases,
                           const std::vector<TrainEventSink>& sinks, bool resume) {
  if (train_cases.empty()) throw Error("no training cases (every case went to validation?)");
  require_one_network(config);
  const std::uint64_t seed = seed_run(config);
  SegmentationModel model = build_model(config);
  TrainingTask task;
  if (!config.weights.empty() && head_kind_from_name(config.head) == HeadKind::kMedicalNet) {
    task.notes.push_back(load_medicalnet_head(model->head(), config.weights, config.classes).summary());
  }
  start_run_folder(config, *model, model->backbone(), task);

  const auto loader = patch_loader(config, train_cases, seed);
  const std::string loss_name = config.train.loss;
  describe_patch_task(task, config, *model, model->backbone(), model->head(), *loader);
  task.metric = "val_dice";
  task.metric_label = "validation Dice";
  task.next_loss = [&] {
    datasets::Batch batch = loader->next();
    const torch::Device device = device_of(*model);
    return loss_of(loss_name, model->forward(to_device(batch.image, device)), to_device(batch.labels, device));
  };
  if (!val_cases.empty()) {
    task.validate = [&] {
      const auto dice = validation_dice(*model, val_cases, config);
      std::map<std::string, double> metrics;
      double sum = 0;
      for (int c = 1; c < model->classes(); ++c) {
        metrics["val_dice_" + std::to_string(c)] = dice[c];
        sum += dice[c];
      }
      metrics["val_dice"] = sum / (model->classes() - 1);
      return metrics;
    };
  }
  return run_training(config, task, sinks, resume);
}

CaseSplits read_case_splits(const RunConfig& config) {
  const std::string manifest = config.data.manifest;
  if (manifest.empty()) throw UsageError("data.manifest is not set (a CSV/JSON manifest or an imagesTr/labelsTr folder)");
  std::vector<datasets::CaseEntry> cases = datasets::read_manifest(manifest);
  const std::uint64_t seed = config.seed;
  datasets::assign_folds(cases, config.data.folds, config.data.fold, seed);
  const preprocess::Contract contract = run_contract(config);
  CaseSplits splits;
  datasets::PreprocessedCache cache(config.data.cache_dir);
  const int max_val = config.train.max_validation_cases;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].label.empty()) throw Error(manifest + ": case " + cases[i].id + " has no label");
    if (cases[i].split == "test") continue;
    if (cases[i].split == "val" && max_val > 0 && static_cast<int>(splits.val.size()) >= max_val) continue;
    auto prepared = datasets::prepare_case(cases[i], contract, run_plan_options(config, seed + i), config.classes,
                                           cache, io::foreground_class_names(config.class_names, config.classes));
    (cases[i].split == "val" ? splits.val : splits.train).push_back(std::move(prepared));
  }
  report_cache_use(cache);
  return splits;
}

namespace {

// nnU-Net's dataset.json labels: v2 maps names to values ({"background": 0, "liver": 1}), v1 values
// to names ({"0": "background", "1": "liver"}). Returns the names in value order.
std::vector<std::string> dataset_json_class_names(const std::string& path) {
  const nlohmann::json dataset = read_json_file(path);
  if (!dataset.contains("labels") || !dataset["labels"].is_object()) {
    throw Error(path + ": no 'labels' object to take the classes from");
  }
  std::map<std::int64_t, std::string> by_value;
  for (const auto& [key, value] : dataset["labels"].items()) {
    if (value.is_array()) {
      throw Error(path + ": label '" + key + "' is a region (a list of labels); graft trains one class per voxel, "
                  "so region-based labels are not supported");
    }
    std::int64_t number = 0;
    std::string name;
    if (value.is_number_integer()) {
      number = value.get<std::int64_t>();
      name = key;
    } else if (value.is_string() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
      number = std::stoll(key);
      name = value.get<std::string>();
    } else {
      throw Error(path + ": label '" + key + "' must map a name to a whole number (or a number to a name)");
    }
    if (!by_value.emplace(number, name).second) {
      throw Error(path + ": labels '" + by_value[number] + "' and '" + name + "' share the value " + std::to_string(number));
    }
  }
  if (by_value.empty() || by_value.begin()->first != 0 || by_value.rbegin()->first + 1 != static_cast<std::int64_t>(by_value.size())) {
    throw Error(path + ": the label values must be 0, 1, 2, ... without gaps");
  }
  std::vector<std::string> names;
  for (const auto& entry : by_value) names.push_back(entry.second);
  return names;
}

}  // namespace

void infer_segmentation_classes(RunConfig& config) {
  if (config.classes != 0) return;
  const std::string manifest = config.data.manifest;
  const std::string dataset_json = (std::filesystem::path(manifest) / "dataset.json").string();
  if (std::filesystem::is_directory(manifest) && std::filesystem::exists(dataset_json)) {
    const std::vector<std::string> names = dataset_json_class_names(dataset_json);
    config.classes = static_cast<int>(names.size());
    if (config.class_names.empty()) config.class_names = names;
    std::fprintf(stderr, "graft: classes = %d, from %s\n", config.classes, dataset_json.c_str());
    return;
  }
  if (!config.class_names.empty()) {
    config.classes = static_cast<int>(config.class_names.size()) + 1;
    std::fprintf(stderr, "graft: classes = %d, background and the %zu class_names\n", config.classes,
                 config.class_names.size());
    return;
  }
  double largest = 0;
  std::vector<io::LabelSegment> named;
  for (const datasets::CaseEntry& entry : datasets::read_manifest(manifest)) {
    if (entry.label.empty() || entry.split == "test") continue;
    // An RTSTRUCT or a box list has no grid of its own: it is drawn on the image's.
    const io::Image label = io::label_needs_image_grid(entry.label)
                                ? io::read_label_map(entry.label, entry.image, io::read(entry.image).geometry())
                                : io::read(entry.label);
    for (std::int64_t i = 0; i < label.element_count(); ++i) largest = std::max(largest, label.value_at(i));
    if (named.empty()) named = label.metadata().segments;
  }
  if (largest < 1) throw Error(manifest + ": every label is 0, so there is no class to learn; set classes");
  config.classes = static_cast<int>(largest) + 1;
  std::fprintf(stderr, "graft: classes = %d, one more than the largest label in %s\n", config.classes, manifest.c_str());
  // Labels that name their segments (SEG, .seg.nrrd, RTSTRUCT) name the classes, so predictions
  // carry the names back.
  std::vector<std::string> names(static_cast<std::size_t>(largest));
  for (const io::LabelSegment& segment : named) {
    if (segment.label_value >= 1 && segment.label_value <= largest) names[segment.label_value - 1] = segment.name;
  }
  if (std::all_of(names.begin(), names.end(), [](const std::string& name) { return !name.empty(); })) {
    config.class_names = names;
  }
}

TrainResult train(const RunConfig& config, const std::vector<TrainEventSink>& sinks, bool resume) {
  require_one_network(config);
  RunConfig resolved = config;
  infer_segmentation_classes(resolved);
  const CaseSplits splits = read_case_splits(resolved);
  return train_prepared(resolved, splits.train, splits.val, sinks, resume);
}

}  // namespace graft::finetune
