#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "finetune/device.h"
#include "finetune/tasks/segmentation/segmentation_model.h"
#include "io/image.h"

namespace graft::finetune {

struct SlidingWindowOptions {
  std::array<std::int64_t, 3> patch_xyz{64, 64, 32};
  double overlap_fraction = 0.5;
  bool mirror = false;            // average over the axis flips (test-time augmentation)
  std::array<bool, 3> mirror_axes_xyz{true, true, true};  // the axes flips may reverse: all 8 flips, or fewer
  bool keep_probabilities = false;
  int windows_per_batch = 2;
  Precision precision = Precision::kFloat32;  // autocast for the forward passes (bf16/fp16)
  // On a GPU, the whole preprocessed volume goes to the device when it is at most this size, so
  // windows are cut there; larger volumes send each batch of windows from pinned host memory.
  std::int64_t device_volume_limit_bytes = std::int64_t{4} << 30;
  std::function<void(double fraction_done)> progress;  // optional
};

struct SlidingWindowResult {
  io::Image labels;                         // u8, argmax over classes, on the input grid
  std::optional<io::Image> probabilities;   // f32 (classes, Z, Y, X), only on request
};

// Sliding-window inference with nnU-Net's Gaussian weighting (sigma = patch / 8). Windows are
// processed slab by slab along z, and planes no later window can touch are turned into labels
// at once, so memory holds one slab of class scores, not classes x the whole volume. Runs on the
// model's device: there the slab's scores and weights accumulate, and only finished labels (and
// probabilities, when kept) come back to the host.
SlidingWindowResult predict_sliding_window(SegmentationModelImpl& model, const io::Image& image,
                                           const SlidingWindowOptions& options);

// Window starts along one axis: evenly spaced, first at 0 and last at n - p, with steps of at
// most p * (1 - overlap); a single start when the axis is no longer than the patch.
std::vector<std::int64_t> window_starts(std::int64_t n, std::int64_t p, double overlap_fraction);

}  // namespace graft::finetune
