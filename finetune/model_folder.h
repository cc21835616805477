#pragma once

// A trained model folder, the unit every front end predicts with: the resolved run config it was
// trained under (config.json), the Contract its preprocessing follows (contract.json), the best
// weights (model.safetensors) and, while a run is unfinished, checkpoint.pt. This is the one
// place that knows those file names; nothing outside reads them directly.
#include <string>
#include <vector>

#include "finetune/run_config.h"
#include "preprocess/contract.h"

namespace graft::finetune {

enum class Task { kSegmentation, kClassification, kDetection, kMil };

// "segmentation", "classification", "detection", "mil".
std::string task_name(Task task);
// Throws graft::Error naming `where` and the accepted names.
Task task_from_name(const std::string& name, const std::string& where);

class ModelFolder {
 public:
  // Reads config.json and (except for MIL, which reads feature bags) contract.json, and checks
  // that the weights are there, so a bad folder fails here naming the file, not halfway through
  // a batch.
  explicit ModelFolder(std::string path);

  const std::string& path() const { return path_; }
  Task task() const { return task_; }
  // The resolved run config the model was trained with.
  const RunConfig& config() const { return config_; }
  // Throws graft::Error for a MIL model, which has no image preprocessing.
  const preprocess::Contract& contract() const;
  const std::vector<std::string>& class_names() const { return class_names_; }
  std::string weights_path() const;
  // Throws graft::Error naming the folder unless it holds a model of `expected`.
  void require_task(Task expected) const;

 private:
  std::string path_;
  RunConfig config_;
  Task task_ = Task::kSegmentation;
  bool has_contract_ = false;
  preprocess::Contract contract_;
  std::vector<std::string> class_names_;
};

// The resolved run config of a run folder, finished or not (a resumed run reads it back).
RunConfig read_run_folder_config(const std::string& folder);
// The writers of a model folder's two descriptive files, atomically.
void write_run_folder_config(const std::string& folder, const RunConfig& config);
void write_run_folder_contract(const std::string& folder, const preprocess::Contract& contract);
// Where the best weights and the resumable checkpoint of a run folder live.
std::string model_weights_path(const std::string& folder);
std::string run_checkpoint_path(const std::string& folder);

}  // namespace graft::finetune
