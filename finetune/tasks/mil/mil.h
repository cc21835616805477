#pragma once

#include <torch/torch.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "finetune/device.h"
#include "finetune/training_loop.h"

namespace graft::finetune {

// Gated attention-based multiple-instance learning (ABMIL; Ilse et al. 2018, as CLAM and UNI's
// slide-level evaluations use it): instance features (N, D) -> projector (Linear, ReLU, dropout)
// -> gated attention (tanh branch * sigmoid branch -> one score per instance, softmax over the
// bag) -> attention-weighted mean -> linear classifier.
class MilModelImpl : public torch::nn::Module {
 public:
  MilModelImpl(std::int64_t feature_dim, int classes, std::int64_t hidden = 512, std::int64_t attention = 256,
               double dropout = 0.25);
  // Logits (classes) of one bag (N, D).
  torch::Tensor forward(const torch::Tensor& bag);
  // The attention weights (N), summing to 1, of one bag.
  torch::Tensor attention(const torch::Tensor& bag);

  torch::nn::Sequential& projector() { return projector_; }
  torch::nn::Module& pooling_and_classifier() { return *pooling_and_classifier_; }

 private:
  torch::Tensor scores(const torch::Tensor& hidden);
  torch::nn::Sequential projector_{nullptr};
  std::shared_ptr<torch::nn::Module> pooling_and_classifier_;
  torch::nn::Linear attention_a_{nullptr}, attention_b_{nullptr}, attention_c_{nullptr}, classifier_{nullptr};
};
TORCH_MODULE(MilModel);

// One slide: its instance features and its label.
struct Bag {
  std::string path;
  torch::Tensor features;  // (N, D) float32
  int label = 0;
};

// Reads the bags a MIL run config's manifest names: CSV/JSON rows with `image` (an HDF5 feature
// bag, dataset /features [N, D]) and `classes` (one class per slide), split by `split` or k-fold.
// Fixes config.class_names and config.classes like classification runs do.
struct BagSplits {
  std::vector<Bag> train, val, test;
};
BagSplits read_bag_splits(RunConfig& config);

// Trains ABMIL one bag per step (as CLAM does) through the shared training loop, tracking
// val_accuracy (with balanced accuracy, macro F1 and AUC); a test split is scored once by the best
// epoch's model into test_metrics.json.
TrainResult train_mil(RunConfig config, const std::vector<TrainEventSink>& sinks, bool resume);
TrainResult train_mil_prepared(const RunConfig& config, const std::vector<Bag>& train, const std::vector<Bag>& val,
                               const std::vector<TrainEventSink>& sinks, bool resume, const std::vector<Bag>& test = {});

// A trained MIL model folder, ready to label slides from their feature bags.
class MilPredictor {
 public:
  // The model runs on `target.device` (attention pooling is small: always fp32).
  explicit MilPredictor(const ModelFolder& model_folder, const ComputeTarget& target = {});
  struct Prediction {
    std::vector<double> probabilities;  // per class
    std::vector<double> attention;      // per patch, summing to 1
    std::vector<std::array<std::int64_t, 2>> coords;  // per patch, from the bag's /coords when present
  };
  Prediction predict(const std::string& bag_path);
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  std::vector<std::string> class_names_;
  std::int64_t feature_dim_ = 0;
  MilModel model_{nullptr};
};

}  // namespace graft::finetune
