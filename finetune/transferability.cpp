#include "finetune/transferability.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "backbones/factory.h"
#include "backbones/weight_loading.h"
#include "datasets/manifest.h"
#include "finetune/tasks/classification/classification.h"
#include "finetune/trainer.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

// One target column's log evidence per sample, from F's thin SVD (F = U diag(S) V^T, k = rank of
// the decomposition) and the column's projections U^T y. With sigma^2 = S^2 and
// A = alpha I + beta F^T F: gamma = sum beta sigma^2 / (alpha + beta sigma^2),
// m = beta A^-1 F^T y, and the D - k directions F does not span add log(alpha) each to log|A|.
double column_evidence(const std::vector<double>& sigma2, const std::vector<double>& projections,
                       double outside_norm2, std::int64_t samples, std::int64_t dims) {
  const double n = static_cast<double>(samples), d = static_cast<double>(dims);
  double alpha = 1.0, beta = 1.0, ratio = alpha / beta;
  double weights_norm2 = 0.0, residual_norm2 = 0.0;
  for (int round = 0; round < 11; ++round) {
    double gamma = 0.0;
    weights_norm2 = 0.0;
    residual_norm2 = outside_norm2;
    for (std::size_t i = 0; i < sigma2.size(); ++i) {
      const double denominator = alpha + beta * sigma2[i];
      gamma += beta * sigma2[i] / denominator;
      // m's component along v_i: beta sigma_i (u_i . y) / (alpha + beta sigma_i^2).
      const double along = beta * std::sqrt(sigma2[i]) * projections[i] / denominator;
      weights_norm2 += along * along;
      // y - F m along u_i: (u_i . y) alpha / (alpha + beta sigma_i^2).
      const double left = projections[i] * alpha / denominator;
      residual_norm2 += left * left;
    }
    weights_norm2 = std::max(weights_norm2, 1e-300);
    residual_norm2 = std::max(residual_norm2, 1e-300);
    alpha = gamma / weights_norm2;
    beta = (n - gamma) / residual_norm2;
    const double next_ratio = alpha / beta;
    if (std::abs(next_ratio - ratio) / ratio < 0.01) break;
    ratio = next_ratio;
  }
  double log_det = (d - static_cast<double>(sigma2.size())) * std::log(alpha);
  for (const double value : sigma2) log_det += std::log(alpha + beta * value);
  const double evidence = d / 2.0 * std::log(alpha) + n / 2.0 * std::log(beta) - 0.5 * log_det -
                          beta / 2.0 * residual_norm2 - alpha / 2.0 * weights_norm2 - n / 2.0 * std::log(2.0 * M_PI);
  return evidence / n;
}

// The deepest level at stride 8, else at stride 4, else the finest.
std::size_t segmentation_level(const std::vector<backbones::FeatureInfo>& levels) {
  for (const std::int64_t wanted : {8, 4}) {
    for (std::size_t i = levels.size(); i-- > 0;) {
      if (levels[i].stride == wanted) return i;
    }
  }
  std::size_t finest = 0;
  for (std::size_t i = 1; i < levels.size(); ++i) {
    if (levels[i].stride < levels[finest].stride) finest = i;
  }
  return finest;
}

RankSamples classification_samples(RunConfig config, backbones::BackboneImpl& backbone) {
  const ChipSplits splits = read_chip_splits(config);
  std::vector<datasets::PreparedChip> chips = splits.train;
  chips.insert(chips.end(), splits.val.begin(), splits.val.end());
  if (chips.empty()) throw Error(config.data.manifest + ": no labelled training or validation images to rank on");
  std::vector<std::int64_t> all(chips.size());
  std::iota(all.begin(), all.end(), std::int64_t{0});
  RankSamples samples;
  samples.features = chip_embeddings(backbone, chips, std::max(1, config.data.batch_size)).to(torch::kFloat64);
  // Multi-hot, so a multi-label chip scores against each of its classes; one-hot otherwise.
  samples.targets = datasets::chip_targets(chips, all, config.classes, /*multi_label=*/true).to(torch::kFloat64);
  samples.classes = config.classes;
  samples.level = "pooled";
  return samples;
}

RankSamples segmentation_samples(RunConfig config, backbones::BackboneImpl& backbone, const RankRequest& request) {
  const int patches_per_case = request.patches_per_case, samples_per_class = request.samples_per_class;
  if (config.classes == 0) infer_segmentation_classes(config);
  const CaseSplits splits = read_case_splits(config);
  std::vector<datasets::PreparedCase> cases = splits.train;
  cases.insert(cases.end(), splits.val.begin(), splits.val.end());
  if (cases.empty()) throw Error(config.data.manifest + ": no labelled training or validation cases to rank on");
  datasets::PatchOptions options = patch_options(config);
  options.augment.enabled = false;
  options.foreground_fraction = 0.5;
  const int patch_count = std::max(1, patches_per_case) * static_cast<int>(cases.size());
  const datasets::Batch patches = datasets::sample_batch(cases, options, patch_count, config.seed);
  const auto levels = backbone.feature_info();
  std::size_t level = segmentation_level(levels);
  if (!request.level.empty()) {
    std::string names;
    level = levels.size();
    for (std::size_t i = 0; i < levels.size(); ++i) {
      if (levels[i].name == request.level) level = i;
      names += (names.empty() ? "" : ", ") + levels[i].name;
    }
    if (level == levels.size()) {
      throw UsageError("--level " + request.level + ": backbone " + config.backbone + " has the levels " + names);
    }
  }
  const std::int64_t stride = levels[level].stride;
  const bool planar = backbone.spatial_dims() == 2;
  const std::int64_t batch = std::max(1, config.data.batch_size);
  std::vector<torch::Tensor> maps;
  for (std::int64_t first = 0; first < patch_count; first += batch) {
    const torch::Tensor image = patches.image.narrow(0, first, std::min<std::int64_t>(batch, patch_count - first));
    maps.push_back(planar ? backbone.features(image.squeeze(2))[level].unsqueeze(2) : backbone.features(image)[level]);
  }
  const torch::Tensor map = torch::cat(maps).to(torch::kFloat32);  // (P, C, d, h, w)
  // Labelled voxels, the same number per class, so background does not outvote the organs: rows
  // of (patch, z, y, x).
  std::vector<torch::Tensor> chosen, chosen_labels;
  for (int c = 0; c < config.classes; ++c) {
    const torch::Tensor where = torch::nonzero(patches.labels == c);
    if (where.size(0) == 0) continue;
    const std::int64_t keep = std::min<std::int64_t>(where.size(0), samples_per_class);
    chosen.push_back(where.index_select(0, torch::randperm(where.size(0), torch::kLong).narrow(0, 0, keep)));
    chosen_labels.push_back(torch::full({keep}, c, torch::kLong));
  }
  const torch::Tensor voxels = torch::cat(chosen), voxel_labels = torch::cat(chosen_labels);
  // Each voxel's features, interpolated (trilinearly) from the map at the voxel's centre: feature
  // cell j covers input voxels [j s, (j + 1) s).
  const auto normalized = [](const torch::Tensor& index, std::int64_t covered) {
    return ((index.to(torch::kFloat32) + 0.5) / static_cast<double>(covered)) * 2.0 - 1.0;
  };
  std::vector<torch::Tensor> features, labels;
  for (std::int64_t p = 0; p < patch_count; ++p) {
    const torch::Tensor rows = torch::nonzero(voxels.select(1, 0) == p).reshape({-1});
    if (rows.numel() == 0) continue;
    const torch::Tensor at = voxels.index_select(0, rows);
    const torch::Tensor z = planar ? torch::zeros({rows.numel()}) : normalized(at.select(1, 1), map.size(2) * stride);
    const torch::Tensor grid = torch::stack({normalized(at.select(1, 3), map.size(4) * stride),
                                             normalized(at.select(1, 2), map.size(3) * stride), z},
                                            1)
                                   .reshape({1, 1, 1, -1, 3});
    namespace F = torch::nn::functional;
    const torch::Tensor sampled = F::grid_sample(map.narrow(0, p, 1), grid,
                                                 F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(
                                                     torch::kBorder).align_corners(false));
    features.push_back(sampled.reshape({map.size(1), -1}).transpose(0, 1).to(torch::kFloat64));
    labels.push_back(voxel_labels.index_select(0, rows));
  }
  RankSamples samples;
  samples.features = torch::cat(features);
  samples.targets = torch::one_hot(torch::cat(labels), config.classes).to(torch::kFloat64);
  samples.classes = config.classes;
  samples.level = levels[level].name;
  samples.stride = stride;
  return samples;
}

// classification when the manifest gives classes and no label files (or is a MedMNIST .npz).
std::string task_of_manifest(const std::string& manifest) {
  if (manifest.size() > 4 && manifest.compare(manifest.size() - 4, 4, ".npz") == 0) return "classification";
  for (const auto& entry : datasets::read_manifest(manifest)) {
    if (!entry.label.empty()) return "segmentation";
  }
  return "classification";
}

}  // namespace

double logme(const torch::Tensor& features, const torch::Tensor& targets) {
  if (features.dim() != 2 || targets.dim() != 2 || features.size(0) != targets.size(0)) {
    throw Error("LogME takes features (N, D) and targets (N, K) of the same N");
  }
  const std::int64_t samples = features.size(0), dims = features.size(1);
  if (samples < 2) throw Error("LogME needs at least 2 samples, got " + std::to_string(samples));
  const torch::Tensor f = features.to(torch::kFloat64).contiguous();
  const torch::Tensor y = targets.to(torch::kFloat64).contiguous();
  if (!torch::isfinite(f).all().item<bool>()) throw Error("LogME: the features hold NaN or infinite values");
  const auto [u, s, vh] = torch::linalg::svd(f, /*full_matrices=*/false, c10::nullopt);
  const torch::Tensor projections = u.transpose(0, 1).matmul(y);  // (k, K)
  const torch::Tensor outside = (y.square().sum(0) - projections.square().sum(0)).clamp_min(0.0);
  const torch::Tensor sigma2_tensor = s.square().contiguous();
  const std::vector<double> sigma2(sigma2_tensor.data_ptr<double>(), sigma2_tensor.data_ptr<double>() + s.numel());
  double total = 0.0;
  for (std::int64_t column = 0; column < y.size(1); ++column) {
    const torch::Tensor p = projections.select(1, column).contiguous();
    const std::vector<double> along(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
    total += column_evidence(sigma2, along, outside[column].item<double>(), samples, dims);
  }
  return total / static_cast<double>(y.size(1));
}

double logme_for_labels(const torch::Tensor& features, const torch::Tensor& labels, int classes) {
  return logme(features, torch::one_hot(labels.to(torch::kLong), classes).to(torch::kFloat64));
}

RankSamples rank_samples(const RunConfig& config, const RankRequest& request) {
  torch::manual_seed(config.seed);
  auto backbone = backbones::create_backbone(config.backbone, config.in_channels);
  if (!config.weights.empty()) backbones::load_weights(*backbone, config.weights, !config.lenient);
  backbone->eval();
  torch::NoGradGuard no_grad;
  if (config.task == "classification") return classification_samples(config, *backbone);
  if (config.task == "segmentation") return segmentation_samples(config, *backbone, request);
  throw UsageError("graft rank scores classification and segmentation data, not task '" + config.task + "'");
}

std::vector<RankRow> rank_backbones(const RankRequest& request, const std::function<void(const std::string&)>& progress) {
  if (request.backbones.empty()) throw UsageError("--backbones names no backbone to rank");
  if (!request.weights.empty() && request.weights.size() != request.backbones.size()) {
    throw UsageError("--weights gives " + std::to_string(request.weights.size()) + " checkpoints for " +
                     std::to_string(request.backbones.size()) + " backbones (one each; an empty entry for random weights)");
  }
  RunConfig settings = request.settings;
  set_compute_threads(settings.train.threads);
  if (settings.data.manifest.empty()) throw UsageError("--manifest is not set");
  settings.task = request.task.empty() ? task_of_manifest(settings.data.manifest) : request.task;
  // Once for all candidates: the classes of the label files.
  if (settings.task == "segmentation" && settings.classes == 0) infer_segmentation_classes(settings);
  std::vector<RankRow> rows;
  for (std::size_t i = 0; i < request.backbones.size(); ++i) {
    RunConfig config = settings;
    config.backbone = request.backbones[i];
    config.weights = request.weights.empty() || request.weights[i] == "random" ? "" : request.weights[i];
    if (progress) {
      progress("backbone " + std::to_string(i + 1) + " of " + std::to_string(request.backbones.size()) + ": " +
               config.backbone);
    }
    const auto started = std::chrono::steady_clock::now();
    const RankSamples samples = rank_samples(config, request);
    RankRow row;
    row.backbone = config.backbone;
    row.weights = config.weights;
    row.logme = logme(samples.features, samples.targets);
    row.samples = samples.features.size(0);
    row.dims = samples.features.size(1);
    row.level = samples.level;
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    rows.push_back(row);
  }
  std::stable_sort(rows.begin(), rows.end(), [](const RankRow& a, const RankRow& b) { return a.logme > b.logme; });
  return rows;
}

std::string rank_table(const std::vector<RankRow>& rows) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-4s %-24s %10s %8s %6s %-10s %9s  %s\n", "rank", "backbone", "logme", "samples",
                "dims", "features", "seconds", "weights");
  out << line;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const RankRow& row = rows[i];
    std::snprintf(line, sizeof line, "%-4zu %-24s %10.4f %8lld %6lld %-10s %9.1f  %s\n", i + 1, row.backbone.c_str(),
                  row.logme, static_cast<long long>(row.samples), static_cast<long long>(row.dims), row.level.c_str(),
                  row.seconds, row.weights.empty() ? "(random)" : row.weights.c_str());
    out << line;
  }
  return out.str();
}

}  // namespace graft::finetune
