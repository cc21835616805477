#include "finetune/tasks/classification/classification.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "backbones/checkpoint_file.h"
#include "backbones/factory.h"
#include "backbones/weight_loading.h"
#include "datasets/image_tensor.h"
#include "datasets/segmentation_data.h"
#include "finetune/device.h"
#include "finetune/distributed.h"
#include "finetune/run_config.h"
#include "finetune/tasks/segmentation/segmentation_model.h"
#include "finetune/trainer.h"
#include "io/atomic_file.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

torch::Tensor chip_targets(const std::vector<datasets::PreparedChip>& chips, int classes, bool multi_label) {
  std::vector<std::int64_t> all(chips.size());
  std::iota(all.begin(), all.end(), std::int64_t{0});
  return datasets::chip_targets(chips, all, classes, multi_label);
}

std::vector<std::int64_t> batch_indices(const std::vector<std::int64_t>& order, int step, int batch_size) {
  const auto begin = order.begin() + std::min<std::size_t>(order.size(), static_cast<std::size_t>(step) * batch_size);
  const auto end = order.begin() + std::min<std::size_t>(order.size(), static_cast<std::size_t>(step + 1) * batch_size);
  return {begin, end};
}

// Average precision of one class: mean precision at the rank of each positive.
double average_precision(const std::vector<std::pair<float, bool>>& scored) {
  std::vector<std::pair<float, bool>> ranked = scored;
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  double sum = 0.0;
  int positives = 0;
  for (std::size_t rank = 0; rank < ranked.size(); ++rank) {
    if (!ranked[rank].second) continue;
    ++positives;
    sum += static_cast<double>(positives) / static_cast<double>(rank + 1);
  }
  return positives ? sum / positives : NAN;
}

// Area under the ROC curve: the chance a random positive scores above a random negative (ties
// count half), from ranks (Mann-Whitney U). NaN without both positives and negatives.
double roc_auc(const std::vector<std::pair<float, bool>>& scored) {
  std::vector<std::pair<float, bool>> ranked = scored;
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double positive_rank_sum = 0.0;
  std::int64_t positives = 0;
  for (std::size_t i = 0; i < ranked.size();) {
    std::size_t j = i;
    while (j < ranked.size() && ranked[j].first == ranked[i].first) ++j;
    const double average_rank = (i + 1 + j) / 2.0;  // ranks i+1 .. j share their mean
    for (std::size_t k = i; k < j; ++k) {
      if (ranked[k].second) positive_rank_sum += average_rank, ++positives;
    }
    i = j;
  }
  const auto negatives = static_cast<std::int64_t>(ranked.size()) - positives;
  if (positives == 0 || negatives == 0) return NAN;
  return (positive_rank_sum - positives * (positives + 1) / 2.0) / (static_cast<double>(positives) * negatives);
}

double f1(std::int64_t true_positive, std::int64_t false_positive, std::int64_t false_negative) {
  const std::int64_t denominator = 2 * true_positive + false_positive + false_negative;
  return denominator ? 2.0 * true_positive / denominator : NAN;
}

double mean_ignoring_nan(const std::vector<double>& values) {
  double sum = 0.0;
  int counted = 0;
  for (double value : values) {
    if (std::isnan(value)) continue;
    sum += value;
    ++counted;
  }
  return counted ? sum / counted : 0.0;
}

// `run` on every chip in batches on `device`, without gradients, the results concatenated in chip
// order on the host in fp32.
template <typename Run>
torch::Tensor in_batches(const std::vector<datasets::PreparedChip>& chips, int batch_size, torch::Device device,
                         Run&& run) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (std::size_t start = 0; start < chips.size(); start += batch_size) {
    std::vector<torch::Tensor> images;
    for (std::size_t i = start; i < std::min(chips.size(), start + batch_size); ++i) images.push_back(chips[i].image);
    parts.push_back(to_host_float(run(to_device(torch::stack(images), device))));
  }
  return parts.empty() ? torch::Tensor() : torch::cat(parts);
}

}  // namespace

torch::Tensor chip_embeddings(backbones::BackboneImpl& backbone, const std::vector<datasets::PreparedChip>& chips,
                              int batch_size) {
  return in_batches(chips, batch_size, device_of(backbone),
                    [&](const torch::Tensor& images) { return backbone.embedding(images); });
}

std::map<std::string, double> frozen_feature_metrics(const torch::Tensor& train_embeddings,
                                                     const torch::Tensor& train_labels,
                                                     const torch::Tensor& embeddings, const torch::Tensor& labels,
                                                     int classes, int k) {
  torch::NoGradGuard no_grad;
  // Centred on the training mean and L2-normalised (SimpleShot's CL2N), as UNI evaluates.
  const torch::Tensor mean = train_embeddings.mean(0, true);
  const torch::Tensor train = torch::nn::functional::normalize(train_embeddings - mean,
                                                               torch::nn::functional::NormalizeFuncOptions().dim(1));
  const torch::Tensor query = torch::nn::functional::normalize(embeddings - mean,
                                                               torch::nn::functional::NormalizeFuncOptions().dim(1));
  const torch::Tensor similarity = query.matmul(train.t());  // cosine
  const int neighbours = std::min<int>(k, static_cast<int>(train.size(0)));
  const auto [top_similarity, top_index] = similarity.topk(neighbours, 1);
  // Majority vote of the k nearest; a tie goes to the class with the larger summed similarity.
  const torch::Tensor neighbour_labels = train_labels.index({top_index});
  const torch::Tensor votes = torch::zeros({query.size(0), classes}).scatter_add_(1, neighbour_labels,
                                                                                 torch::ones_like(top_similarity));
  const torch::Tensor weight = torch::zeros({query.size(0), classes}).scatter_add_(1, neighbour_labels, top_similarity);
  const torch::Tensor knn = (votes + weight * 1e-3).argmax(1);
  // Prototypes: the class means of the normalised training features; nearest by distance.
  torch::Tensor prototypes = torch::zeros({classes, train.size(1)});
  prototypes.index_add_(0, train_labels, train);
  const torch::Tensor counts = torch::bincount(train_labels, {}, classes).to(torch::kFloat32).clamp_min(1);
  prototypes = prototypes / counts.unsqueeze(1);
  const torch::Tensor nearest = torch::cdist(query, prototypes).argmin(1);
  const double n = static_cast<double>(std::max<std::int64_t>(1, labels.size(0)));
  return {{"knn" + std::to_string(k) + "_accuracy", (knn == labels).sum().item<double>() / n},
          {"prototype_accuracy", (nearest == labels).sum().item<double>() / n}};
}

ClassificationModelImpl::ClassificationModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone, int classes)
    : backbone_(std::move(backbone)) {
  if (classes < 2) throw Error("a classification model needs at least 2 classes");
  register_module("backbone", backbone_);
  head_ = register_module("head", torch::nn::Linear(backbone_->feature_info().back().channels, classes));
}

ClassificationModel build_classifier(const RunConfig& config) {
  auto backbone = backbones::create_backbone(config.backbone, config.in_channels);
  return ClassificationModel(backbone, config.classes);
}

torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& targets, bool multi_label) {
  // fp32 whatever precision autocast ran the forward pass at.
  if (multi_label) return F::binary_cross_entropy_with_logits(logits.to(torch::kFloat32), targets);
  return F::cross_entropy(logits.to(torch::kFloat32), targets);
}

std::map<std::string, double> classification_metrics(const torch::Tensor& logits, const torch::Tensor& targets,
                                                     bool multi_label) {
  const torch::Tensor scores = to_host_float(logits.detach()).contiguous();
  const std::int64_t count = scores.size(0), classes = scores.size(1);
  std::vector<std::int64_t> true_positive(classes, 0), false_positive(classes, 0), false_negative(classes, 0);
  std::map<std::string, double> metrics;
  if (!multi_label) {
    const torch::Tensor predicted = scores.argmax(1);
    std::int64_t correct = 0;
    std::vector<std::int64_t> support(classes, 0);
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t truth = targets[i].item<std::int64_t>(), guess = predicted[i].item<std::int64_t>();
      ++support[truth];
      if (truth == guess) {
        ++correct;
        ++true_positive[truth];
      } else {
        ++false_positive[guess];
        ++false_negative[truth];
      }
    }
    std::vector<double> recall, f1_per_class, auc;
    const torch::Tensor probabilities = torch::softmax(scores, 1);
    const auto p = probabilities.accessor<float, 2>();
    for (std::int64_t c = 0; c < classes; ++c) {
      if (support[c] > 0) recall.push_back(static_cast<double>(true_positive[c]) / support[c]);
      f1_per_class.push_back(f1(true_positive[c], false_positive[c], false_negative[c]));
      std::vector<std::pair<float, bool>> scored(count);
      for (std::int64_t i = 0; i < count; ++i) scored[i] = {p[i][c], targets[i].item<std::int64_t>() == c};
      auc.push_back(roc_auc(scored));
    }
    metrics["accuracy"] = count ? static_cast<double>(correct) / count : 0.0;
    // Two classes: the AUC of class 1's probability; more: one-vs-rest, averaged over classes.
    metrics["auc"] = classes == 2 ? (std::isnan(auc[1]) ? 0.0 : auc[1]) : mean_ignoring_nan(auc);
    metrics["balanced_accuracy"] = mean_ignoring_nan(recall);
    metrics["f1_macro"] = mean_ignoring_nan(f1_per_class);
    return metrics;
  }
  const torch::Tensor probabilities = torch::sigmoid(scores);
  const auto p = probabilities.accessor<float, 2>();
  const torch::Tensor truth_tensor = targets.to(torch::kFloat32).contiguous();
  const auto truth = truth_tensor.accessor<float, 2>();
  std::int64_t exact = 0;
  std::vector<double> ap(classes), f1_per_class(classes), auc(classes);
  for (std::int64_t i = 0; i < count; ++i) {
    bool all_right = true;
    for (std::int64_t c = 0; c < classes; ++c) {
      const bool positive = truth[i][c] > 0.5f, guessed = p[i][c] >= 0.5f;
      true_positive[c] += positive && guessed;
      false_positive[c] += !positive && guessed;
      false_negative[c] += positive && !guessed;
      all_right = all_right && positive == guessed;
    }
    exact += all_right;
  }
  std::int64_t tp = 0, fp = 0, fn = 0;
  for (std::int64_t c = 0; c < classes; ++c) {
    std::vector<std::pair<float, bool>> scored(count);
    for (std::int64_t i = 0; i < count; ++i) scored[i] = {p[i][c], truth[i][c] > 0.5f};
    ap[c] = average_precision(scored);
    auc[c] = roc_auc(scored);
    f1_per_class[c] = f1(true_positive[c], false_positive[c], false_negative[c]);
    tp += true_positive[c];
    fp += false_positive[c];
    fn += false_negative[c];
  }
  const double micro = f1(tp, fp, fn);
  metrics["f1_micro"] = std::isnan(micro) ? 0.0 : micro;
  metrics["f1_macro"] = mean_ignoring_nan(f1_per_class);
  metrics["subset_accuracy"] = count ? static_cast<double>(exact) / count : 0.0;
  metrics["map_macro"] = mean_ignoring_nan(ap);
  metrics["auc_macro"] = mean_ignoring_nan(auc);
  return metrics;
}

ChipSplits read_chip_splits(RunConfig& config) {
  const std::string manifest = config.data.manifest;
  if (manifest.empty()) {
    throw UsageError("data.manifest is not set (a CSV/JSON manifest with image and classes, or a MedMNIST .npz)");
  }
  const std::uint64_t seed = config.seed;
  const bool multi_label = config.multi_label;
  ChipSplits splits;
  auto place = [&](datasets::PreparedChip chip, const std::string& split) {
    (split == "test" ? splits.test : split == "val" ? splits.val : splits.train).push_back(std::move(chip));
  };
  const bool npz = manifest.size() > 4 && manifest.compare(manifest.size() - 4, 4, ".npz") == 0;
  if (npz) {
    auto chips = datasets::read_medmnist_npz(manifest, config.class_names, multi_label);
    if (config.class_names.empty()) {
      // Label indices, in numeric order ("2" before "10").
      std::set<std::int64_t> indices;
      for (const auto& chip : chips)
        for (const auto& name : chip.classes) indices.insert(std::stoll(name));
      if (indices.empty()) throw Error(manifest + ": no labels");
      std::vector<std::string> names;
      for (std::int64_t k = 0; k <= *indices.rbegin(); ++k) names.push_back(std::to_string(k));
      config.class_names = names;
    }
    config.classes = config.class_names.size();
    const preprocess::Contract contract = run_contract(config);
    const auto class_names = config.class_names;
    for (std::size_t i = 0; i < chips.size(); ++i) {
      place(datasets::prepare_chip(chips[i], contract, run_plan_options(config, seed + i), class_names, multi_label),
            chips[i].split);
      chips[i].image = io::Image();  // the prepared copy is what training keeps
    }
    return splits;
  }
  std::vector<datasets::CaseEntry> cases = datasets::read_manifest(manifest);
  datasets::assign_folds(cases, config.data.folds, config.data.fold, seed);
  if (config.class_names.empty()) config.class_names = datasets::class_names_of(cases);
  const auto class_names = config.class_names;
  config.classes = class_names.size();
  const preprocess::Contract contract = run_contract(config);
  datasets::PreprocessedCache cache(config.data.cache_dir);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].classes.empty()) throw Error(manifest + ": case " + cases[i].id + " has no classes");
    place(datasets::prepare_chip(cases[i], contract, run_plan_options(config, seed + i), class_names, multi_label,
                                 cache),
          cases[i].split);
  }
  report_cache_use(cache);
  return splits;
}

torch::Tensor chip_logits(ClassificationModelImpl& model, const std::vector<datasets::PreparedChip>& chips,
                          int batch_size) {
  return in_batches(chips, batch_size, device_of(model),
                    [&](const torch::Tensor& images) { return model.forward(images); });
}

TrainResult train_classifier_prepared(const RunConfig& config, const std::vector<datasets::PreparedChip>& train,
                                      const std::vector<datasets::PreparedChip>& val,
                                      const std::vector<TrainEventSink>& sinks, bool resume,
                                      const std::vector<datasets::PreparedChip>& test) {
  if (train.empty()) throw Error("no training chips (every chip went to validation or test?)");
  for (const auto* set : {&train, &val}) {
    for (const auto& chip : *set) {
      if (!chip.image.sizes().equals(train.front().image.sizes())) {
        throw Error(chip.image_path + ": preprocessed to " + c10::str(chip.image.sizes()) + " but " +
                    train.front().image_path + " to " + c10::str(train.front().image.sizes()) +
                    "; a batch needs one size (keep the contract's resize rule)");
      }
    }
  }
  const std::uint64_t seed = seed_run(config);
  ClassificationModel model = build_classifier(config);
  TrainingTask task;
  start_run_folder(config, *model, model->backbone(), task);

  const bool multi_label = config.multi_label, linear_probe = config.train.linear_probe;
  const bool augment = config.data.augment;
  const int classes = config.classes, batch_size = config.data.batch_size;
  const torch::Tensor train_targets = chip_targets(train, classes, multi_label);
  const torch::Tensor val_targets = chip_targets(val, classes, multi_label);
  task.model = model.get();
  task.backbone = &model->backbone();
  task.head = model->head().get();
  task.layer_of = [&](const std::string& name) { return model->backbone().layer_of(name); };
  task.layer_count = model->backbone().layer_count();
  task.steps_per_epoch = static_cast<int>((train.size() + batch_size - 1) / batch_size);
  task.metric = multi_label ? "val_f1_micro" : "val_accuracy";
  task.metric_label = multi_label ? "validation F1 (micro)" : "validation accuracy";
  std::vector<std::int64_t> order;
  int epoch_now = 0, step_now = 0;
  task.start_epoch = [&](int epoch) {
    order = datasets::epoch_order(static_cast<std::int64_t>(train.size()), seed, epoch);
    epoch_now = epoch;
    step_now = 0;
  };
  task.skip_batch = [&] { ++step_now; };
  auto prefixed = [](const std::map<std::string, double>& metrics) {
    std::map<std::string, double> out;
    for (const auto& [name, value] : metrics) out["val_" + name] = value;
    return out;
  };

  torch::Tensor train_embeddings, val_embeddings;
  if (linear_probe) {
    // The backbone never changes in a linear probe, so its embeddings are computed once, without
    // augmentation, and each epoch costs only the head.
    task.frozen_epochs = config.train.epochs;
    model->eval();
    train_embeddings = chip_embeddings(model->backbone(), train, batch_size);
    val_embeddings = chip_embeddings(model->backbone(), val, batch_size);
    task.next_loss = [&] {
      const auto indices = shard_of_batch(torch::tensor(batch_indices(order, step_now++, batch_size), torch::kInt64));
      const torch::Device device = device_of(*model);
      return classification_loss(model->classify(to_device(train_embeddings.index_select(0, indices), device)),
                                 to_device(train_targets.index_select(0, indices), device), multi_label);
    };
    if (!val.empty()) {
      // KNN and prototypes see only the frozen features, so they are scored once.
      const std::map<std::string, double> frozen =
          multi_label ? std::map<std::string, double>{}
                      : frozen_feature_metrics(train_embeddings, train_targets, val_embeddings, val_targets, classes);
      task.validate = [&, frozen] {
        auto metrics = classification_metrics(model->classify(to_device(val_embeddings, device_of(*model))),
                                              val_targets, multi_label);
        metrics.insert(frozen.begin(), frozen.end());
        return prefixed(metrics);
      };
    }
  } else {
    task.frozen_epochs = config.train.freeze_backbone_epochs;
    task.next_loss = [&] {
      const std::uint64_t batch_seed = seed * 7919ULL + static_cast<std::uint64_t>(epoch_now) * 100003ULL + step_now;
      const datasets::ChipBatch batch =
          datasets::chip_batch(train, batch_indices(order, step_now++, batch_size), classes, multi_label, augment, batch_seed);
      // The whole global batch is drawn (its augmentation draws are sequential), then sharded.
      const torch::Device device = device_of(*model);
      return classification_loss(model->forward(to_device(shard_of_batch(batch.image), device)),
                                 to_device(shard_of_batch(batch.targets), device), multi_label);
    };
    if (!val.empty()) {
      task.validate = [&] { return prefixed(classification_metrics(chip_logits(*model, val, batch_size), val_targets, multi_label)); };
    }
  }
  TrainResult result = run_training(config, task, sinks, resume);
  if (test.empty()) return result;
  // The test split, seen once, by the model the validation metric chose.
  load_best_weights(*model, config.output);
  const torch::Tensor test_targets = chip_targets(test, classes, multi_label);
  torch::Tensor test_logits;
  std::map<std::string, double> metrics;
  if (linear_probe) {
    const torch::Tensor test_embeddings = chip_embeddings(model->backbone(), test, batch_size);
    torch::NoGradGuard no_grad;
    test_logits = model->classify(to_device(test_embeddings, device_of(*model)));
    if (!multi_label) {
      metrics = frozen_feature_metrics(train_embeddings, train_targets, test_embeddings, test_targets, classes);
    }
  } else {
    test_logits = chip_logits(*model, test, batch_size);
  }
  const auto scored = classification_metrics(test_logits, test_targets, multi_label);
  metrics.insert(scored.begin(), scored.end());
  record_test_metrics(result, metrics, test.size(), config.output);
  return result;
}

TrainResult train_classifier(RunConfig config, const std::vector<TrainEventSink>& sinks, bool resume) {
  const ChipSplits splits = read_chip_splits(config);
  return train_classifier_prepared(config, splits.train, splits.val, sinks, resume, splits.test);
}

Classifier::Classifier(const ModelFolder& model_folder, const ComputeTarget& target) : precision_(target.precision) {
  model_folder.require_task(Task::kClassification);
  config_ = model_folder.config();
  contract_ = model_folder.contract();
  class_names_ = model_folder.class_names();
  multi_label_ = config_.multi_label;
  model_ = build_classifier(config_);
  load_best_weights(*model_, model_folder.path());  // strict: a model folder must match its own config exactly
  model_->to(target.device);
}

std::vector<double> Classifier::probabilities(const io::Image& image, const std::string& source) {
  const datasets::PreprocessedVolumes prepared =
      datasets::prepare_chip_pixels(source, image, contract_, run_plan_options(config_, config_.seed));
  const torch::Tensor input = datasets::image_to_tensor(prepared.image).squeeze(1).unsqueeze(0);
  torch::NoGradGuard no_grad;
  AutocastScope autocast(device_of(*model_), precision_);
  const torch::Tensor logits = to_host_float(model_->forward(to_device(input, device_of(*model_)))[0]);
  const torch::Tensor probabilities = multi_label_ ? torch::sigmoid(logits) : torch::softmax(logits, 0);
  return {probabilities.data_ptr<float>(), probabilities.data_ptr<float>() + probabilities.numel()};
}

}  // namespace graft::finetune
