#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/manifest.h"
#include "datasets/preprocessed_cache.h"
#include "io/image.h"
#include "preprocess/plan.h"

namespace graft::datasets {

// One scene-classification chip after its Plan (bands selected and ordered, scaled, resized to
// the backbone's input size), kept in memory: chip datasets are small.
struct PreparedChip {
  std::string id;
  std::string image_path;
  preprocess::Plan plan;
  torch::Tensor image;       // (C, H, W) float32
  std::vector<int> classes;  // indices into the run's class names
};

// The class names a set of cases uses, sorted, for runs that do not name them.
std::vector<std::string> class_names_of(const std::vector<CaseEntry>& cases);

// Reads and preprocesses one chip. Errors name the file: a 3D image, NaN pixels, a class name the
// run does not know, no class at all, or several classes in a single-label run.
PreparedChip prepare_chip(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label);
// A chip's pixels through its Plan, for training and prediction alike. Errors name `source`: a 3D
// image, NaN pixels.
PreprocessedVolumes prepare_chip_pixels(const std::string& source, const io::Image& image,
                                        const preprocess::Contract& contract,
                                        const preprocess::PlanOptions& plan_options);

// The same through a cache of preprocessed chips (datasets/preprocessed_cache.h).
PreparedChip prepare_chip(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label, PreprocessedCache& cache);

// A labelled chip already in memory (MedMNIST's .npz), the counterpart of a manifest row.
struct InMemoryChip {
  std::string id;
  std::string split;  // "train", "val" or "test"
  io::Image image;
  std::vector<std::string> classes;
};

// MedMNIST's layout: {train,val,test}_images as (N, H, W) or (N, H, W, 3) uint8 and
// {split}_labels as (N, 1) class indices, or (N, K) 0/1 columns for multi-label. A label k is
// named class_names[k] when names are given, else "k". Errors name the file and the key.
std::vector<InMemoryChip> read_medmnist_npz(const std::string& path, const std::vector<std::string>& class_names,
                                            bool multi_label);
PreparedChip prepare_chip(const InMemoryChip& chip, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label);

struct ChipBatch {
  torch::Tensor image;    // (B, C, H, W) float32
  torch::Tensor targets;  // (B) int64 class indices, or (B, K) float32 0/1 for multi-label
};

// The targets of the chips at `indices`: (B) int64 class indices, or (B, K) float32 0/1 for
// multi-label.
torch::Tensor chip_targets(const std::vector<PreparedChip>& chips, const std::vector<std::int64_t>& indices, int classes,
                           bool multi_label);

// The chips at `indices` stacked into a batch. With augment, each chip gets a random flip and a
// random multiple of 90 degrees (a scene's class does not depend on its orientation), drawn from
// `seed` so batch b of epoch e is the same on every run.
ChipBatch chip_batch(const std::vector<PreparedChip>& chips, const std::vector<std::int64_t>& indices, int classes,
                     bool multi_label, bool augment, std::uint64_t seed);

// The order chips are visited in during `epoch`: a permutation drawn from (seed, epoch).
std::vector<std::int64_t> epoch_order(std::int64_t count, std::uint64_t seed, int epoch);

}  // namespace graft::datasets
