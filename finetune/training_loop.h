#pragma once

#include <torch/torch.h>

#include "finetune/adapters.h"
#include "finetune/model_folder.h"
#include "finetune/train_events.h"

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace graft::finetune {

struct TrainResult {
  std::string metric;  // the validation metric that picks the best epoch ("val_dice", ...)
  int epochs_run = 0;
  double best_val_metric = 0.0;
  int best_epoch = -1;
  std::vector<double> val_metric_per_epoch;  // NaN for epochs without validation
  std::vector<double> train_loss_per_epoch;
  std::map<std::string, double> test_metrics;  // "test_accuracy", ...: when the task has a test split
  bool cancelled = false;                      // a sink threw TrainingCancelled
};

// What a task (segmentation, classification) hands the shared training loop.
struct TrainingTask {
  torch::nn::Module* model = nullptr;     // every weight: checkpointed and kept as model.safetensors
  torch::nn::Module* backbone = nullptr;  // its parameters get the base learning rate
  torch::nn::Module* head = nullptr;      // its parameters get lr * head_lr_multiplier
  int steps_per_epoch = 0;
  int frozen_epochs = 0;     // the backbone is frozen (and in eval mode) for epochs below this
  std::string metric;        // higher is better, e.g. "val_dice"
  std::string metric_label;  // for the plot, e.g. "validation Dice"
  std::function<void(int epoch)> start_epoch;
  std::function<torch::Tensor()> next_loss;  // loss of the next batch, with the graph attached
  // Draws the next batch and drops it, so a run resumed mid-epoch sees the batches it would have
  // seen; without it, a resumed epoch draws its remaining batches from the epoch's start.
  std::function<void()> skip_batch;
  // Metrics on the validation data, containing `metric`; empty when there is none.
  std::function<std::map<std::string, double>()> validate;
  std::vector<std::string> notes;  // written to events.jsonl first (weight-loading reports)
  // For layer-wise learning-rate decay (train.layer_decay < 1): the layer of a backbone parameter
  // (0 = embeddings ... layer_count), as BackboneImpl::layer_of gives it.
  std::function<int(const std::string&)> layer_of;
  int layer_count = 0;
  // An adapter run's base weights (apply_tuning_settings), which model.safetensors leaves out.
  std::optional<FrozenBase> frozen_base;
};

// The optimizer's parameter groups (a backbone with adapters contributes only those): the backbone at train.lr (or, with train.layer_decay < 1 and
// a layered backbone, one group per layer at lr * decay^(layer_count - layer)), then the head at
// lr * head_lr_multiplier.
struct ParameterGroup {
  std::vector<torch::Tensor> parameters;
  std::vector<std::string> names;
  double lr = 0.0;
};
std::vector<ParameterGroup> parameter_groups(const TrainingTask& task, const TrainSettings& train);

// The loop every task shares: optimizer with a backbone and a head parameter group, learning-rate
// schedule, gradient clipping, a finite-loss check, per-epoch validation, model.safetensors at the
// best validation metric (or the last epoch without validation), checkpoint.pt every epoch
// (atomic, with optimizer state, so `resume` continues exactly where a killed run stopped),
// events.jsonl, metrics.csv, training.svg and early stopping. Writes config.json in config.output.
TrainResult run_training(const RunConfig& config, TrainingTask& task, const std::vector<TrainEventSink>& sinks,
                         bool resume);

// Writes a LibTorch archive to `path` (not atomically: wrap it in io::write_atomically). A write that
// fails, such as on a full disk, throws an Error naming the path and the system's reason, where
// LibTorch's own file writer would end the process from a destructor.
void write_archive(torch::serialize::OutputArchive& archive, const std::string& path);

// Loads `output`/model.safetensors (the best epoch's weights) into `model`, strictly (an adapter
// folder's through load_adapter_weights), in eval mode.
void load_best_weights(torch::nn::Module& model, const std::string& output);

// Records metrics on a test split, seen once: result.test_metrics ("test_" + name) and
// `output`/test_metrics.json (with the case count and the epoch that produced the model).
void record_test_metrics(TrainResult& result, const std::map<std::string, double>& metrics, std::size_t cases,
                         const std::string& output);

}  // namespace graft::finetune
