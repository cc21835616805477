#pragma once

// Choosing a backbone before training: LogME (You et al. 2021, "LogME: Practical Assessment of
// Pre-trained Models for Transfer Learning") scores how well a backbone's frozen features explain a
// dataset's labels, and `graft rank` scores several backbones on one dataset that way.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "finetune/run_config.h"

namespace graft::finetune {

// LogME of features (N, D) for targets (N, K): for each target column, the log of the maximum
// evidence of a Bayesian linear model y = F w + noise, with prior w ~ N(0, I / alpha) and noise
// N(0, 1 / beta), alpha and beta found by the paper's fixed-point iteration (from 1 and 1, at most
// 11 rounds, stopping when alpha / beta moves by less than 1 %); divided by N and averaged over the
// columns. Computed in float64 from one thin SVD of F. Higher is better.
double logme(const torch::Tensor& features, const torch::Tensor& targets);
// Class labels (N, int64 in [0, classes)) as one-hot targets, as the paper scores classification.
double logme_for_labels(const torch::Tensor& features, const torch::Tensor& labels, int classes);

// The features and labels `graft rank` scores for one backbone: pooled embeddings per image for
// classification; for segmentation, features of the deepest stride-8 map (stride 4 when there is
// none, the finest level otherwise), interpolated at labelled voxels of patches drawn as training
// draws them (half centred on foreground), the same number of voxels per class.
struct RankSamples {
  torch::Tensor features;  // (N, D) float64
  torch::Tensor targets;   // (N, classes) float64, one-hot (several ones for multi-label chips)
  int classes = 0;
  std::string level;       // the feature level used ("layer2", "pooled", ...)
  std::int64_t stride = 0;
};

struct RankRequest {
  // The run settings that describe the data (data.manifest, task, classes, class_names, data.*),
  // as `graft train` takes them; backbone and weights are each candidate's.
  RunConfig settings;
  // "classification" or "segmentation"; empty: classification when the manifest gives classes
  // and no label files (or is a MedMNIST .npz), else segmentation.
  std::string task;
  std::vector<std::string> backbones;
  std::vector<std::string> weights;  // one per backbone ("" or "random": random initialisation), or empty
  // Segmentation: the feature level to score ("layer2", ...); empty: the deepest at stride 8, else
  // at stride 4, else the finest.
  std::string level;
  int patches_per_case = 4;          // segmentation
  int samples_per_class = 512;       // segmentation: at most this many labelled voxels per class
};

struct RankRow {
  std::string backbone, weights;
  double logme = 0.0;
  std::int64_t samples = 0, dims = 0;
  std::string level;
  double seconds = 0.0;  // reading, preprocessing, embedding and scoring this backbone
};

// Embeds the labelled cases (training and validation; the test split stays unseen) once per
// backbone through that backbone's own Contract, and scores them with LogME. Rows come back sorted
// by score, best first. `progress` hears "backbone i of n: NAME" before each.
std::vector<RankRow> rank_backbones(const RankRequest& request,
                                    const std::function<void(const std::string&)>& progress = {});

// The samples one backbone gives (request.settings with that backbone and weights).
RankSamples rank_samples(const RunConfig& config, const RankRequest& request);

// The rows as an aligned text table.
std::string rank_table(const std::vector<RankRow>& rows);

}  // namespace graft::finetune
