#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backbones/backbone.h"
#include "datasets/chip_data.h"
#include "finetune/device.h"
#include "finetune/training_loop.h"
#include "io/image.h"
#include "preprocess/contract.h"

namespace graft::finetune {

// A backbone (submodule "backbone") and a linear classifier (submodule "head") on its embedding:
// the deepest features averaged over space, or a ViT's class token.
class ClassificationModelImpl : public torch::nn::Module {
 public:
  ClassificationModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone, int classes);
  torch::Tensor forward(const torch::Tensor& image) { return classify(embed(image)); }
  torch::Tensor embed(const torch::Tensor& image) { return backbone_->embedding(image); }
  torch::Tensor classify(const torch::Tensor& embedding) { return head_->forward(embedding); }

  backbones::BackboneImpl& backbone() { return *backbone_; }
  torch::nn::Linear& head() { return head_; }

 private:
  std::shared_ptr<backbones::BackboneImpl> backbone_;
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(ClassificationModel);

// The backbone + linear head a classification run config describes (weights untouched).
ClassificationModel build_classifier(const RunConfig& config);

// Cross-entropy for single-label, binary cross-entropy per class for multi-label targets.
torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& targets, bool multi_label);

// Metrics of logits (N, K) against targets (N int64, or N x K 0/1 for multi-label).
// Single-label: accuracy, balanced_accuracy (mean recall over the classes present), f1_macro, auc
// (class 1's for two classes, else one-vs-rest averaged). Multi-label, thresholded at probability
// 0.5: f1_micro, f1_macro, subset_accuracy, map_macro (average precision per class, averaged over
// classes with a positive) and auc_macro.
std::map<std::string, double> classification_metrics(const torch::Tensor& logits, const torch::Tensor& targets,
                                                     bool multi_label);

// Reads the chips a classification run config names (a manifest, or a MedMNIST .npz with its
// train/val/test splits) and fixes config.class_names (sorted names from the manifest, label
// indices from an .npz, when the config gives none) and config.classes.
struct ChipSplits {
  std::vector<datasets::PreparedChip> train, val, test;
};
ChipSplits read_chip_splits(RunConfig& config);

// Scene classification by full fine-tuning or, with train.linear_probe, by a linear probe: the
// backbone's embeddings are computed once (backbone frozen, in eval mode) and only the head
// trains on them; KNN and prototype accuracies on the same frozen features come with it. Writes a model folder like segmentation does, tracking val_accuracy
// (single-label) or val_f1_micro (multi-label). A test split is scored once, by the best model,
// into result.test_metrics and test_metrics.json.
TrainResult train_classifier(RunConfig config, const std::vector<TrainEventSink>& sinks, bool resume);
TrainResult train_classifier_prepared(const RunConfig& config, const std::vector<datasets::PreparedChip>& train,
                                      const std::vector<datasets::PreparedChip>& val,
                                      const std::vector<TrainEventSink>& sinks, bool resume,
                                      const std::vector<datasets::PreparedChip>& test = {});

// Classifiers that need no training, on frozen embeddings (N, D) as UNI evaluates them: features
// centred on the training mean and L2-normalised; k-nearest-neighbour majority vote by cosine
// similarity ("knn20_accuracy") and nearest class prototype, the class mean ("prototype_accuracy").
std::map<std::string, double> frozen_feature_metrics(const torch::Tensor& train_embeddings,
                                                     const torch::Tensor& train_labels,
                                                     const torch::Tensor& embeddings, const torch::Tensor& labels,
                                                     int classes, int k = 20);

// The embedding of every chip through `backbone`, in order, in batches, without gradients, on the
// host in fp32.
torch::Tensor chip_embeddings(backbones::BackboneImpl& backbone, const std::vector<datasets::PreparedChip>& chips,
                              int batch_size);

// Logits of every chip, in order, in batches.
torch::Tensor chip_logits(ClassificationModelImpl& model, const std::vector<datasets::PreparedChip>& chips,
                          int batch_size);

// A trained classification model folder, ready to label images.
class Classifier {
 public:
  // The model runs on `target.device` at `target.precision` (autocast for the forward passes).
  explicit Classifier(const ModelFolder& model_folder, const ComputeTarget& target = {});
  // Probability per class (softmax, or a sigmoid per class for multi-label) of one 2D image.
  std::vector<double> probabilities(const io::Image& image, const std::string& source);
  const std::vector<std::string>& class_names() const { return class_names_; }
  bool multi_label() const { return multi_label_; }

 private:
  RunConfig config_;
  preprocess::Contract contract_;
  std::vector<std::string> class_names_;
  bool multi_label_ = false;
  Precision precision_ = Precision::kFloat32;
  ClassificationModel model_{nullptr};
};

}  // namespace graft::finetune
