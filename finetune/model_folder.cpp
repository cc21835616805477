#include "finetune/model_folder.h"

#include <filesystem>

#include "finetune/run_config.h"
#include "io/atomic_file.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

std::string config_path(const std::string& folder) { return folder + "/config.json"; }
std::string contract_path(const std::string& folder) { return folder + "/contract.json"; }

}  // namespace

std::string task_name(Task task) {
  switch (task) {
    case Task::kSegmentation:
      return "segmentation";
    case Task::kClassification:
      return "classification";
    case Task::kDetection:
      return "detection";
    case Task::kMil:
      return "mil";
  }
  return "segmentation";
}

Task task_from_name(const std::string& name, const std::string& where) {
  for (Task task : {Task::kSegmentation, Task::kClassification, Task::kDetection, Task::kMil}) {
    if (task_name(task) == name) return task;
  }
  throw Error(where + ": task '" + name +
              "' is not one of segmentation, classification, detection, mil");
}

ModelFolder::ModelFolder(std::string path) : path_(std::move(path)) {
  if (!std::filesystem::is_directory(path_))
    throw Error(path_ + ": not a model folder (no such directory)");
  config_ = read_run_folder_config(path_);
  task_ =
      task_from_name(config_.task, config_path(path_) + ": field 'task'");
  if (task_ != Task::kMil) {
    contract_ =
        preprocess::contract_from_json(read_json_file(contract_path(path_)), contract_path(path_));
    has_contract_ = true;
  }
  class_names_ = config_.class_names;
  if (!std::filesystem::is_regular_file(weights_path())) {
    throw Error(weights_path() +
                ": the model folder has no weights (a run that never finished an epoch?)");
  }
}

const preprocess::Contract& ModelFolder::contract() const {
  if (!has_contract_)
    throw Error(path_ + ": a " + task_name(task_) + " model has no image Contract");
  return contract_;
}

std::string ModelFolder::weights_path() const { return model_weights_path(path_); }

void ModelFolder::require_task(Task expected) const {
  if (task_ != expected) {
    throw Error(config_path(path_) + ": field 'task' is '" + task_name(task_) + "', not '" +
                task_name(expected) + "'");
  }
}

RunConfig read_run_folder_config(const std::string& folder) {
  return run_config_from_json(read_json_file(config_path(folder)), config_path(folder));
}

void write_run_folder_config(const std::string& folder, const RunConfig& config) {
  io::write_text_atomically(config_path(folder), to_json(config).dump(2) + "\n");
}

void write_run_folder_contract(const std::string& folder, const preprocess::Contract& contract) {
  io::write_text_atomically(contract_path(folder), preprocess::to_json(contract).dump(2) + "\n");
}

std::string model_weights_path(const std::string& folder) { return folder + "/model.safetensors"; }
std::string run_checkpoint_path(const std::string& folder) { return folder + "/checkpoint.pt"; }

}  // namespace graft::finetune
