#pragma once

#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "datasets/manifest.h"
#include "datasets/preprocessed_cache.h"
#include "io/image.h"
#include "io/parallel.h"
#include "preprocess/plan.h"

namespace graft::datasets {

// One case after its Plan: the f32 image and u8 labels on the Plan's output grid, kept in memory
// for patch sampling (small-data fine-tuning is what graft is for).
struct PreparedCase {
  std::string id;
  std::string image_path, label_path;
  preprocess::Plan plan;
  io::Image image;   // (C, Z, Y, X) f32
  io::Image labels;  // (1, Z, Y, X) u8, empty for unlabelled cases
  std::vector<std::int64_t> foreground;  // linear voxel indices with a label > 0 (a sample)
};

// Throws graft::Error naming `path` and the count when a float image holds NaN voxels.
void refuse_nan_voxels(const io::Image& image, const std::string& path);

// Reads, checks and preprocesses one case; the label may be any form io::read_label_map reads
// (a label image, DICOM SEG, RTSTRUCT, .seg.nrrd, boxes). Errors name both files when the image
// and labels disagree on the grid, and the file and value for NaN voxels or labels outside [0, classes).
PreparedCase prepare_case(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, int classes);
// The same through a cache of preprocessed cases (datasets/preprocessed_cache.h). With
// `foreground_names` (the names of label values 1, 2, ...), labels that name their segments (DICOM
// SEG, RTSTRUCT, .seg.nrrd) are mapped to the classes by name (io::read_label_map).
PreparedCase prepare_case(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, int classes, PreprocessedCache& cache,
                          const std::vector<std::string>& foreground_names = {});

struct AugmentOptions {
  bool flip = true;          // each axis with p = 0.5
  bool rotate90 = true;      // in the x-y plane, when the patch is square there
  double affine_probability = 0.2;     // rotation about z up to 15 degrees, scale 0.85-1.15
  double intensity_probability = 0.3;  // x * U(0.9, 1.1) + U(-0.1, 0.1)
  double gamma_probability = 0.3;      // gamma U(0.7, 1.5) on the patch's own range
  double noise_probability = 0.2;      // + N(0, sigma), sigma U(0, 0.1)
  bool enabled = true;
};

struct PatchOptions {
  std::array<std::int64_t, 3> patch_xyz{64, 64, 32};
  double foreground_fraction = 0.33;  // nnU-Net's oversampling: a third of patches hold foreground
  AugmentOptions augment;
  // The loader's workers put each batch in page-locked memory, so its copy to a GPU runs
  // asynchronously (a training run on CUDA sets it; pinning needs a CUDA LibTorch).
  bool pin_memory = false;
};

struct Batch {
  torch::Tensor image;   // (B, C, D, H, W) float32
  torch::Tensor labels;  // (B, D, H, W) int64
};

// A part of every global batch: items [first, first + count). A data-parallel rank draws only
// its share; count < 0 is the whole batch.
struct BatchShare {
  int first = 0;
  int count = -1;
};

// One batch drawn with its own seed, so batch b of epoch e is the same whatever thread made it.
// Each item draws from its own generator, seeded from the batch seed and its position, so item i
// is the same whether a process draws the whole batch or only the share holding i: a run gives the
// same global batches for any number of processes.
Batch sample_batch(const std::vector<PreparedCase>& cases, const PatchOptions& options,
                   int batch_size, std::uint64_t seed, const BatchShare& share = {});

// Worker threads draw batches ahead of the trainer into a bounded queue. Batches come out in
// index order, so training is identical for any number of workers.
class BatchLoader {
 public:
  // `share`: the items of each global batch of `batch_size` that this loader draws.
  BatchLoader(const std::vector<PreparedCase>& cases, PatchOptions options, int batch_size,
              int batches_per_epoch, int workers, int prefetch, std::uint64_t seed, BatchShare share = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  void start_epoch(int epoch);
  Batch next();  // blocks until the next batch in order is ready

 private:
  void work();
  void stop();

  const std::vector<PreparedCase>& cases_;
  PatchOptions options_;
  int batch_size_, batches_per_epoch_, prefetch_;
  BatchShare share_;
  std::uint64_t seed_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int epoch_ = -1;
  int next_to_make_ = 0, next_to_take_ = 0;
  std::map<int, Batch> ready_;
  bool stopping_ = false;
  std::exception_ptr failure_;  // the first error a worker met, rethrown by next()
  std::unique_ptr<io::WorkerGroup> workers_;
};

}  // namespace graft::datasets
