#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/segmentation_data.h"
#include "finetune/segmentation_model.h"
#include "preprocess/contract.h"

namespace graft::finetune {

// One stream of training progress. The terminal progress bar, the JSON-lines log, the metrics
// CSV and the GUI's chart all read these.
struct TrainEvent {
  std::string kind;  // "epoch_start", "step", "epoch_end", "checkpoint", "early_stop", "done"
  int epoch = 0;
  int step = 0;
  int steps_per_epoch = 0;
  int epochs = 0;
  double loss = 0.0;
  double learning_rate = 0.0;
  double seconds = 0.0;                   // since the run (or resume) started
  std::map<std::string, double> metrics;  // "train_loss", "val_dice", "val_dice_1", ...
  std::string path;                       // for "checkpoint"
};
using TrainEventSink = std::function<void(const TrainEvent&)>;

// The effective Contract of a run: the backbone's, with data.contract's fields laid over it.
preprocess::Contract run_contract(const nlohmann::json& config);

// Builds the backbone + head a run config describes (weights untouched).
SegmentationModel build_model(const nlohmann::json& config);

struct TrainResult {
  int epochs_run = 0;
  double best_val_dice = 0.0;
  int best_epoch = -1;
  std::vector<double> val_dice_per_epoch;
  std::vector<double> train_loss_per_epoch;
};

// Trains a segmentation model as the resolved config says and writes a model folder at
// config.output: config.json, contract.json, model.safetensors (best validation Dice, or the last
// epoch without validation), checkpoint.pt (every epoch, atomic, with optimizer state for
// resume), events.jsonl, metrics.csv and training.png. With resume, training continues from
// checkpoint.pt exactly where it stopped: batches depend only on (seed, epoch, index).
TrainResult train(const nlohmann::json& config, const std::vector<TrainEventSink>& sinks, bool resume);

// Same, on cases already prepared (the demo and tests use this to skip file I/O).
TrainResult train_prepared(const nlohmann::json& config, const std::vector<datasets::PreparedCase>& train_cases,
                           const std::vector<datasets::PreparedCase>& val_cases,
                           const std::vector<TrainEventSink>& sinks, bool resume);

// Mean foreground Dice of a model on prepared validation cases, per class (index 0 unused).
std::vector<double> validation_dice(SegmentationModelImpl& model, const std::vector<datasets::PreparedCase>& cases,
                                    const nlohmann::json& config);

}  // namespace graft::finetune
