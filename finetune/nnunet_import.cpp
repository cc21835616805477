#include "finetune/nnunet_import.h"

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

std::string configuration_of(const NnUNetImportOptions& options) {
  if (!options.configuration.empty()) return options.configuration;
  // nnU-Net names a results folder Trainer__Plans__configuration.
  const std::string name = fs::path(options.folder).lexically_normal().filename().string();
  const auto separator = name.rfind("__");
  if (separator != std::string::npos && separator + 2 < name.size()) return name.substr(separator + 2);
  return "3d_fullres";
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
  const int channels = static_cast<int>(dataset.channel_names.size());
  const int classes = static_cast<int>(dataset.class_names.size());
  const backbones::NnUNetArchitecture architecture =
      backbones::nnunet_architecture_from_plans(plans, configuration, channels, classes, plans_path);
  const preprocess::Contract contract = backbones::nnunet_contract(plans, dataset, configuration, plans_path);

  const std::string fold_folder = options.folder + "/fold_" + options.fold;
  result.checkpoint_path = fold_folder + "/" + options.checkpoint;
  if (!fs::is_regular_file(result.checkpoint_path)) {
    std::string folds;
    for (const auto& entry : fs::directory_iterator(options.folder)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() && name.rfind("fold_", 0) == 0) folds += (folds.empty() ? "" : ", ") + name.substr(5);
    }
    throw Error(result.checkpoint_path + ": no such checkpoint (folds in " + options.folder + ": " +
                (folds.empty() ? "none" : folds) + ")");
  }
  const backbones::CheckpointFile checkpoint = backbones::read_checkpoint(result.checkpoint_path);
  const nlohmann::json& values = checkpoint.values;
  if (values.contains("init_args") && values["init_args"].contains("configuration") &&
      values["init_args"]["configuration"].is_string() && values["init_args"]["configuration"] != configuration) {
    throw Error(result.checkpoint_path + ": field 'init_args.configuration' is '" +
                values["init_args"]["configuration"].get<std::string>() + "', not '" + configuration +
                "' (give --configuration to match the checkpoint)");
  }

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
  const nlohmann::json plan_configuration = backbones::nnunet_configuration(plans, configuration, plans_path);
  if (plan_configuration.contains("batch_size") && plan_configuration["batch_size"].is_number_integer()) {
    config.data.batch_size = plan_configuration["batch_size"].get<int>();
  }
  // nnU-Net's own training settings (nnUNetTrainer): SGD with Nesterov-free momentum 0.99, lr 1e-2
  // with poly decay, weight decay 3e-5, one rate for the whole network, dice + CE.
  config.train.optimizer = "sgd";
  config.train.lr = 1e-2;
  config.train.momentum = 0.99;
  config.train.weight_decay = 3e-5;
  config.train.schedule = "poly";
  config.train.head_lr_multiplier = 1.0;
  config.train.loss = "dice_ce";
  config.predict.overlap = 0.5;

  // The network the model folder will be read back as, so a checkpoint that does not fit fails here.
  SegmentationModel model = build_model(config);
  backbones::LoadOptions strict;
  const backbones::StateDict weights = backbones::nnunet_canonical_weights(checkpoint.tensors);
  const backbones::LoadReport report = backbones::load_state_dict(*model, weights, strict, result.checkpoint_path);

  fs::create_directories(options.output);
  write_run_folder_config(options.output, config);
  write_run_folder_contract(options.output, contract);
  backbones::write_safetensors(backbones::state_dict_of(*model), model_weights_path(options.output));

  result.notes.push_back("read " + plans_path + " (configuration " + configuration + ", " +
                         backbones::nnunet_class_name(architecture.network_class) + ", " +
                         std::to_string(architecture.stages()) + " stages) and " + dataset_path + " (" +
                         std::to_string(channels) + " channel(s), " + std::to_string(classes) + " classes)");
  result.notes.push_back("loaded " + std::to_string(report.loaded.size()) + " tensors from " + result.checkpoint_path +
                         " (" + std::to_string(checkpoint.tensors.size() - weights.size()) +
                         " listed twice by PyTorch left out)");
  if (values.contains("inference_allowed_mirroring_axes")) {
    result.notes.push_back("the checkpoint allows mirroring over axes " +
                           values["inference_allowed_mirroring_axes"].dump() +
                           "; graft predict --tta mirrors over every axis");
  }
  result.notes.push_back("wrote " + options.output + " (config.json, contract.json, model.safetensors)");
  return result;
}

}  // namespace graft::finetune
