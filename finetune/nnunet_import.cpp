#include "finetune/nnunet_import.h"

#include <algorithm>
#include <filesystem>

#include "backbones/checkpoint_file.h"
#include "backbones/nnunet_architecture.h"
#include "backbones/nnunet_contract.h"
#include "backbones/nnunet_unet.h"
#include "backbones/weight_loading.h"
#include "finetune/model_folder.h"
#include "finetune/trainer.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

// fold_N folder names' N, numbers in numeric order.
std::vector<std::string> fold_names(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind("fold_", 0) == 0 && name != "fold_all") names.push_back(name.substr(5));
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return names;
}

std::string configuration_of(const NnUNetImportOptions& options) {
  if (!options.configuration.empty()) return options.configuration;
  // nnU-Net names a results folder Trainer__Plans__configuration.
  const std::string name = fs::path(options.folder).lexically_normal().filename().string();
  const auto separator = name.rfind("__");
  if (separator != std::string::npos && separator + 2 < name.size()) return name.substr(separator + 2);
  return "3d_fullres";
}

std::string fold_list(const std::string& folder) {
  std::string folds;
  for (const auto& name : fold_names(folder)) folds += (folds.empty() ? "" : ", ") + name;
  return folds.empty() ? "none" : folds;
}

// "0", "0,1,2", or "all": fold_all when nnU-Net trained one (its model of every case), else every
// fold_N there is.
std::vector<std::string> folds_of(const NnUNetImportOptions& options) {
  std::vector<std::string> folds;
  if (options.fold == "all") {
    if (fs::is_directory(options.folder + "/fold_all")) return {"all"};
    folds = fold_names(options.folder);
    if (folds.empty()) throw Error(options.folder + ": no fold_N folders");
    return folds;
  }
  std::size_t start = 0;
  for (std::size_t comma; (comma = options.fold.find(',', start)) != std::string::npos; start = comma + 1) {
    folds.push_back(options.fold.substr(start, comma - start));
  }
  folds.push_back(options.fold.substr(start));
  for (const auto& fold : folds) {
    if (fold.empty()) throw UsageError("--fold " + options.fold + ": an empty fold name");
  }
  return folds;
}

// inference_allowed_mirroring_axes counts the network's spatial axes (z, y, x; 2D: y, x); null
// forbids mirroring. As graft's x y z axes; every axis when the checkpoint does not say.
std::vector<int> mirror_axes_xyz(const nlohmann::json& values, int dims) {
  if (!values.contains("inference_allowed_mirroring_axes")) return {0, 1, 2};
  const nlohmann::json& allowed = values["inference_allowed_mirroring_axes"];
  std::vector<int> axes;
  if (allowed.is_null()) return axes;
  if (!allowed.is_array()) throw Error("checkpoint field 'inference_allowed_mirroring_axes' is not a list: " + allowed.dump());
  for (const auto& axis : allowed) {
    if (!axis.is_number_integer() || axis.get<int>() < 0 || axis.get<int>() >= dims) {
      throw Error("checkpoint field 'inference_allowed_mirroring_axes' names axis " + axis.dump() + " of a " +
                  std::to_string(dims) + "D network");
    }
    axes.push_back(dims - 1 - axis.get<int>());
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

}  // namespace

NnUNetImport import_nnunet(const NnUNetImportOptions& options) {
  if (!fs::is_directory(options.folder)) throw Error(options.folder + ": not an nnU-Net model folder (no such directory)");
  if (options.output.empty()) throw UsageError("import nnunet needs --output MODEL_DIR");
  NnUNetImport result;
  const std::string plans_path = options.folder + "/plans.json", dataset_path = options.folder + "/dataset.json";
  const nlohmann::json plans = read_json_file(plans_path);
  const backbones::NnUNetDataset dataset = backbones::nnunet_dataset(read_json_file(dataset_path), dataset_path);
  const std::string configuration = configuration_of(options);
  const nlohmann::json plan_configuration = backbones::nnunet_configuration(plans, configuration, plans_path);
  if (plan_configuration.contains("previous_stage") && !plan_configuration["previous_stage"].is_null()) {
    throw Error(plans_path + ": configuration '" + configuration + "' is a cascade stage (field 'previous_stage': " +
                plan_configuration["previous_stage"].dump() +
                "): its network also takes the previous stage's segmentation, which graft does not run; import "
                "3d_fullres or the previous stage instead");
  }
  const int channels = static_cast<int>(dataset.channel_names.size());
  const int classes = static_cast<int>(dataset.class_names.size());
  const backbones::NnUNetArchitecture architecture =
      backbones::nnunet_architecture_from_plans(plans, configuration, channels, classes, plans_path);
  preprocess::Contract contract = backbones::nnunet_contract(plans, dataset, configuration, plans_path);
  if (!options.orientation.empty()) {
    if (contract.axis_order_xyz != std::array<int, 3>{0, 1, 2}) {
      throw UsageError(plans_path + ": transpose_forward reorders the axes, which --orientation " + options.orientation +
                       " would undo; import without --orientation");
    }
    contract.orientation = options.orientation;
    contract.dicom_in_dcm2niix_order = false;
    contract.deviations.push_back("every input is reoriented to " + options.orientation +
                                  " first (graft import nnunet --orientation), as the model's training data were");
    // Checks the code, naming the option.
    preprocess::contract_from_json(preprocess::to_json(contract), "--orientation");
  }

  const std::vector<std::string> folds = folds_of(options);
  std::vector<backbones::CheckpointFile> checkpoints;
  for (const std::string& fold : folds) {
    const std::string path = options.folder + "/fold_" + fold + "/" + options.checkpoint;
    if (!fs::is_regular_file(path)) {
      throw Error(path + ": no such checkpoint (folds in " + options.folder + ": " + fold_list(options.folder) + ")");
    }
    checkpoints.push_back(backbones::read_checkpoint(path));
    const nlohmann::json& values = checkpoints.back().values;
    if (values.contains("init_args") && values["init_args"].contains("configuration") &&
        values["init_args"]["configuration"].is_string() && values["init_args"]["configuration"] != configuration) {
      throw Error(path + ": field 'init_args.configuration' is '" +
                  values["init_args"]["configuration"].get<std::string>() + "', not '" + configuration +
                  "' (give --configuration to match the checkpoint)");
    }
    result.checkpoint_paths.push_back(path);
  }
  const nlohmann::json& values = checkpoints.front().values;

  RunConfig& config = result.config;
  config.task = "segmentation";
  config.backbone = "nnunet";
  config.head = "nnunet";
  config.network = backbones::to_json(architecture);
  config.in_channels = channels;
  config.classes = classes;
  config.class_names = dataset.class_names;
  config.output = options.output;
  config.data.patch_size = backbones::nnunet_patch_size_xyz(plans, configuration, plans_path);
  config.data.contract = preprocess::to_json(contract);
  if (plan_configuration.contains("batch_size") && plan_configuration["batch_size"].is_number_integer()) {
    config.data.batch_size = plan_configuration["batch_size"].get<int>();
  }
  // nnU-Net's own training settings (nnUNetTrainer): SGD with momentum 0.99, lr 1e-2 with poly
  // decay, weight decay 3e-5, one rate for the whole network, Dice + CE. nnU-Net's SGD is Nesterov's
  // and its loss is deep-supervised; graft's fine-tuning uses plain momentum and the full-resolution
  // output.
  config.train.optimizer = "sgd";
  config.train.lr = 1e-2;
  config.train.momentum = 0.99;
  config.train.weight_decay = 3e-5;
  config.train.schedule = "poly";
  config.train.head_lr_multiplier = 1.0;
  config.train.loss = "dice_ce";
  config.predict.overlap = 0.5;
  config.ensemble_size = static_cast<int>(folds.size());
  config.predict.mirror_axes = mirror_axes_xyz(checkpoints.front().values, architecture.spatial_dims);

  // The network the model folder will be read back as, so a checkpoint that does not fit fails here.
  SegmentationModel model = build_model(config);
  // Fold k > 0 is the model's ensemble member k - 1.
  backbones::StateDict weights;
  std::size_t listed_twice = 0;
  for (std::size_t k = 0; k < checkpoints.size(); ++k) {
    const backbones::StateDict fold = backbones::nnunet_canonical_weights(checkpoints[k].tensors);
    listed_twice += checkpoints[k].tensors.size() - fold.size();
    const std::string prefix = k == 0 ? "" : "ensemble." + std::to_string(k - 1) + ".";
    for (const auto& [name, tensor] : fold) weights.emplace_back(prefix + name, tensor);
  }
  backbones::LoadOptions strict;
  std::string sources;
  for (const auto& path : result.checkpoint_paths) sources += (sources.empty() ? "" : ", ") + path;
  const backbones::LoadReport report = backbones::load_state_dict(*model, weights, strict, sources);

  fs::create_directories(options.output);
  write_run_folder_config(options.output, config);
  write_run_folder_contract(options.output, contract);
  backbones::write_safetensors(backbones::state_dict_of(*model), model_weights_path(options.output));

  result.notes.push_back("read " + plans_path + " (configuration " + configuration + ", " +
                         backbones::nnunet_class_name(architecture.network_class) + ", " +
                         std::to_string(architecture.stages()) + " stages) and " + dataset_path + " (" +
                         std::to_string(channels) + " channel(s), " + std::to_string(classes) + " classes)");
  result.notes.push_back("loaded " + std::to_string(report.loaded.size()) + " tensors from " + sources + " (" +
                         std::to_string(listed_twice) + " listed twice by PyTorch left out)");
  if (folds.size() > 1) {
    result.notes.push_back(std::to_string(folds.size()) +
                           " folds: predictions average their logits, as nnU-Net averages its folds'");
  }
  std::string axes;
  for (int axis : config.predict.mirror_axes) axes += (axes.empty() ? "" : ", ") + std::string(1, "xyz"[axis]);
  result.notes.push_back("--tta mirrors over " + (axes.empty() ? std::string("no axis") : "axes " + axes) +
                         (values.contains("inference_allowed_mirroring_axes")
                              ? " (the checkpoint's inference_allowed_mirroring_axes " +
                                    values["inference_allowed_mirroring_axes"].dump() + ")"
                              : " (the checkpoint names none: every axis)"));
  result.notes.push_back("wrote " + options.output + " (config.json, contract.json, model.safetensors)");
  return result;
}

}  // namespace graft::finetune
