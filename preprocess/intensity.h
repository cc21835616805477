#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace graft::preprocess {

enum class IntensityKind {
  kZScore,          // (x - mean) / std per channel, over all voxels or the nonzero ones
  kPercentileClip,  // clip each channel to its [lower, upper] percentiles
  kWindow,          // CT window: clip to [center - width/2, center + width/2], map to [0, 1]
  kScaleOffset,     // x * scale + offset (e.g. / 255, / 10000)
  kChannelMeanStd,  // (x - mean[c]) / std[c] with fixed numbers (ImageNet, per-band statistics)
  kClip,            // clip to [clip_min, clip_max]
  kRescaleTo01,     // (x - min) / (max - min) per channel, measured on each image
};

// Which voxels a z-score over nonzero voxels measures and normalises.
enum class NonzeroMask {
  kThisChannel,            // the channel's own nonzero voxels
  kAnyChannelHolesFilled,  // nonzero in any channel, with enclosed holes filled (nnU-Net's use_mask_for_norm)
};

// What to do with voxels outside the z-score mask (value == 0 when over_nonzero).
enum class OutsideMask {
  kNormalize,  // treat them like any other voxel
  kZero,       // set them to 0 (nnU-Net's use_mask_for_norm)
  kNoise,      // replace them with N(0, 1) noise from the plan's seed (MedicalNet)
};

struct IntensityStep {
  IntensityKind kind = IntensityKind::kZScore;
  bool over_nonzero = false;
  NonzeroMask nonzero_mask = NonzeroMask::kThisChannel;
  OutsideMask outside_mask = OutsideMask::kNormalize;
  double lower_percentile = 0.5;
  double upper_percentile = 99.5;
  double window_center = 40.0;
  double window_width = 400.0;
  double scale = 1.0;
  double offset = 0.0;
  std::vector<double> mean;
  std::vector<double> std;
  double clip_min = 0.0;
  double clip_max = 1.0;
  // The one channel this step applies to (nnU-Net normalises each channel by its own scheme), or
  // -1 for every channel. With a channel, channel_mean_std takes one mean and one std.
  int channel = -1;
};

std::string intensity_kind_name(IntensityKind kind);
IntensityKind intensity_kind_from_name(const std::string& name);
std::string outside_mask_name(OutsideMask outside);
OutsideMask outside_mask_from_name(const std::string& name);
std::string nonzero_mask_name(NonzeroMask mask);  // "this_channel", "any_channel_holes_filled"
NonzeroMask nonzero_mask_from_name(const std::string& name);

// One line for a Plan printout, with the numbers: "z-score over nonzero voxels, ...".
std::string describe(const IntensityStep& step);

// 1 where any channel is nonzero or the voxel lies in a hole of that region: a zero region that
// no 6-connected path of zero voxels joins to the volume's faces (scipy's binary_fill_holes).
std::vector<std::uint8_t> nonzero_region_holes_filled(const io::Image& image);

// Applies one step; the result is f32, each voxel computed in double and rounded once.
// `region` is the kAnyChannelHolesFilled mask of the image before any step changed it (a Plan
// measures it once); without it, a step that needs it measures it on `image`. `seed` drives kNoise so that runs are repeatable. An f32
// image passed by rvalue is transformed in place.
io::Image apply_intensity(io::Image image, const IntensityStep& step, std::uint64_t seed = 0,
                          const std::vector<std::uint8_t>* region = nullptr);

// Per-channel statistics, exposed for tests and for the Plan printout.
struct ChannelStatistics {
  double mean = 0.0;
  double std = 0.0;
  std::int64_t count = 0;
};
ChannelStatistics channel_statistics(const io::Image& image, std::int64_t channel,
                                     bool over_nonzero);
// Over the voxels where `mask` is nonzero.
ChannelStatistics channel_statistics(const io::Image& image, std::int64_t channel, const std::uint8_t* mask);
// The p-th percentile (0..100) of one channel by linear interpolation between order statistics,
// as numpy.percentile computes it.
double channel_percentile(const io::Image& image, std::int64_t channel, double percent);

// numpy.percentile's default ("linear") rule: interpolate between the order statistics at ranks
// floor and ceil of q (n - 1). `values` must not be empty; they are reordered.
template <typename T>
double percentile_linear(std::vector<T>& values, double percent) {
  const double rank = percent / 100.0 * static_cast<double>(values.size() - 1);
  const auto lower = static_cast<std::size_t>(std::floor(rank));
  std::nth_element(values.begin(), values.begin() + lower, values.end());
  const double below = values[lower];
  if (lower + 1 >= values.size()) return below;
  const double above = *std::min_element(values.begin() + lower + 1, values.end());
  return below + (above - below) * (rank - static_cast<double>(lower));
}

}  // namespace graft::preprocess
