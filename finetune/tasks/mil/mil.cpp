#include "finetune/tasks/mil/mil.h"

#include "datasets/chip_data.h"
#include "datasets/image_tensor.h"
#include "datasets/manifest.h"
#include "finetune/tasks/classification/classification.h"
#include "finetune/device.h"
#include "finetune/distributed.h"
#include "finetune/run_config.h"
#include "finetune/tasks/segmentation/segmentation_model.h"
#include "finetune/trainer.h"
#include "io/error.h"
#include "io/hdf5/hdf5_file.h"

namespace graft::finetune {

MilModelImpl::MilModelImpl(std::int64_t feature_dim, int classes, std::int64_t hidden, std::int64_t attention,
                           double dropout) {
  if (classes < 2) throw Error("a MIL model needs at least 2 classes");
  projector_ = register_module("projector", torch::nn::Sequential(torch::nn::Linear(feature_dim, hidden),
                                                                  torch::nn::ReLU(), torch::nn::Dropout(dropout)));
  pooling_and_classifier_ = register_module("pooling", std::make_shared<torch::nn::Module>());
  attention_a_ = pooling_and_classifier_->register_module("attention_a", torch::nn::Linear(hidden, attention));
  attention_b_ = pooling_and_classifier_->register_module("attention_b", torch::nn::Linear(hidden, attention));
  attention_c_ = pooling_and_classifier_->register_module("attention_c", torch::nn::Linear(attention, 1));
  classifier_ = pooling_and_classifier_->register_module("classifier", torch::nn::Linear(hidden, classes));
}

torch::Tensor MilModelImpl::scores(const torch::Tensor& hidden) {
  const torch::Tensor gated = torch::tanh(attention_a_->forward(hidden)) * torch::sigmoid(attention_b_->forward(hidden));
  return attention_c_->forward(gated).squeeze(1);  // (N)
}

torch::Tensor MilModelImpl::forward(const torch::Tensor& bag) {
  const torch::Tensor hidden = projector_->forward(bag);
  const torch::Tensor weights = torch::softmax(scores(hidden), 0);
  return classifier_->forward(weights.matmul(hidden));
}

torch::Tensor MilModelImpl::attention(const torch::Tensor& bag) {
  return torch::softmax(scores(projector_->forward(bag)), 0);
}

namespace {

// A bag's /features as (N, D) float32; errors name the file, and `expected_by` says what asked
// for `expected_dim` (-1: any width).
torch::Tensor read_bag_features(const std::string& path, std::int64_t expected_dim, const std::string& expected_by) {
  const io::Image features = io::read_hdf5(path, "/features");
  const auto& size = features.geometry().size_xyz;
  if (size[2] != 1 || features.channels() != 1 || size[1] < 1) {
    throw Error(path + ": dataset /features must be [N, D] with N >= 1");
  }
  if (expected_dim >= 0 && size[0] != expected_dim) {
    throw Error(path + ": /features are " + std::to_string(size[0]) + "-dimensional, " + expected_by + " " +
                std::to_string(expected_dim) + " (one backbone for every slide)");
  }
  datasets::refuse_nan_voxels(features, path);
  return datasets::image_to_tensor(features).to(torch::kFloat32).reshape({size[1], size[0]});
}

}  // namespace

BagSplits read_bag_splits(RunConfig& config) {
  const std::string manifest = config.data.manifest;
  if (manifest.empty()) throw UsageError("data.manifest is not set (a CSV/JSON manifest of HDF5 feature bags and classes)");
  std::vector<datasets::CaseEntry> cases = datasets::read_manifest(manifest);
  datasets::assign_folds(cases, config.data.folds, config.data.fold, config.seed);
  if (config.class_names.empty()) config.class_names = datasets::class_names_of(cases);
  const auto names = config.class_names;
  config.classes = static_cast<int>(names.size());
  BagSplits splits;
  std::int64_t dim = -1;
  for (const auto& entry : cases) {
    if (entry.classes.size() != 1) {
      throw Error(manifest + ": case " + entry.id + " needs exactly one class (has " +
                  std::to_string(entry.classes.size()) + ")");
    }
    const auto found = std::find(names.begin(), names.end(), entry.classes[0]);
    if (found == names.end()) throw Error(entry.image + ": class '" + entry.classes[0] + "' is not in class_names");
    Bag bag{entry.image, read_bag_features(entry.image, dim, "other bags"), static_cast<int>(found - names.begin())};
    dim = bag.features.size(1);
    (entry.split == "test" ? splits.test : entry.split == "val" ? splits.val : splits.train).push_back(std::move(bag));
  }
  return splits;
}

TrainResult train_mil_prepared(const RunConfig& config, const std::vector<Bag>& train, const std::vector<Bag>& val,
                               const std::vector<TrainEventSink>& sinks, bool resume, const std::vector<Bag>& test) {
  if (train.empty()) throw Error("no training bags");
  const std::uint64_t seed = seed_run(config);
  const int classes = config.classes;
  const MilSettings& settings = config.mil;
  MilModel model(train.front().features.size(1), classes, settings.hidden, settings.attention,
                 settings.dropout);
  // The saved config records the feature width, so a model folder rebuilds its network alone.
  RunConfig saved = config;
  saved.mil.feature_dim = train.front().features.size(1);
  TrainingTask task;
  task.model = model.get();
  task.backbone = model->projector().get();
  task.head = &model->pooling_and_classifier();
  task.steps_per_epoch = static_cast<int>(train.size());
  task.metric = "val_accuracy";
  task.metric_label = "validation accuracy";
  std::vector<std::int64_t> order;
  std::size_t next = 0;
  task.start_epoch = [&](int epoch) {
    order = datasets::epoch_order(static_cast<std::int64_t>(train.size()), seed, epoch);
    next = 0;
  };
  task.skip_batch = [&] { ++next; };
  if (process_group()) throw Error("task mil trains one bag per step, in one process; run it without a world size > 1");
  task.next_loss = [&] {
    const Bag& bag = train[order[next++]];
    const torch::Device device = device_of(*model);
    return classification_loss(model->forward(to_device(bag.features, device)).unsqueeze(0),
                               torch::tensor({static_cast<std::int64_t>(bag.label)}, torch::kInt64).to(device), false);
  };
  auto score = [&](const std::vector<Bag>& bags) {
    std::vector<torch::Tensor> logits;
    std::vector<std::int64_t> labels;
    for (const Bag& bag : bags) {
      logits.push_back(model->forward(to_device(bag.features, device_of(*model))));
      labels.push_back(bag.label);
    }
    return classification_metrics(torch::stack(logits), torch::tensor(labels, torch::kInt64), false);
  };
  if (!val.empty()) {
    task.validate = [&] {
      std::map<std::string, double> metrics;
      for (const auto& [name, value] : score(val)) metrics["val_" + name] = value;
      return metrics;
    };
  }
  TrainResult result = run_training(saved, task, sinks, resume);
  if (test.empty()) return result;
  load_best_weights(*model, config.output);
  torch::NoGradGuard no_grad;
  record_test_metrics(result, score(test), test.size(), config.output);
  return result;
}

TrainResult train_mil(RunConfig config, const std::vector<TrainEventSink>& sinks, bool resume) {
  const BagSplits splits = read_bag_splits(config);
  return train_mil_prepared(config, splits.train, splits.val, sinks, resume, splits.test);
}

MilPredictor::MilPredictor(const ModelFolder& model_folder, const ComputeTarget& target) {
  model_folder.require_task(Task::kMil);
  class_names_ = model_folder.class_names();
  const MilSettings& settings = model_folder.config().mil;
  if (settings.feature_dim < 1) throw Error(model_folder.path() + ": config field 'mil.feature_dim' is missing");
  feature_dim_ = settings.feature_dim;
  model_ = MilModel(feature_dim_, static_cast<int>(class_names_.size()),
                    settings.hidden, settings.attention, settings.dropout);
  load_best_weights(*model_, model_folder.path());
  model_->to(target.device);
}

MilPredictor::Prediction MilPredictor::predict(const std::string& bag_path) {
  const torch::Tensor bag = to_device(read_bag_features(bag_path, feature_dim_, "the model takes"), device_of(*model_));
  torch::NoGradGuard no_grad;
  Prediction prediction;
  const torch::Tensor probabilities = to_host_float(torch::softmax(model_->forward(bag), 0));
  const torch::Tensor attention = model_->attention(bag).to(torch::kCPU, torch::kFloat64).contiguous();
  prediction.probabilities.assign(probabilities.data_ptr<float>(), probabilities.data_ptr<float>() + probabilities.numel());
  prediction.attention.assign(attention.data_ptr<double>(), attention.data_ptr<double>() + attention.numel());
  if (io::hdf5_has_dataset(bag_path, "/coords")) {
    const io::Image coords = io::read_hdf5(bag_path, "/coords");
    for (std::int64_t i = 0; i + 1 < coords.element_count(); i += 2) {
      prediction.coords.push_back({static_cast<std::int64_t>(coords.value_at(i)), static_cast<std::int64_t>(coords.value_at(i + 1))});
    }
  }
  return prediction;
}

}  // namespace graft::finetune
