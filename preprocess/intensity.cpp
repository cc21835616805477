#include "preprocess/intensity.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <sstream>

#include "io/error.h"
#include "preprocess/named_enum.h"
#include "io/parallel.h"

namespace graft::preprocess {
namespace {

std::vector<float> channel_as_float(const io::Image& image, std::int64_t channel) {
  const std::int64_t voxels = image.voxels_per_channel();
  std::vector<float> out(static_cast<std::size_t>(voxels));
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = image.data<T>() + channel * voxels;
    for (std::int64_t i = 0; i < voxels; ++i) out[i] = static_cast<float>(in[i]);
  });
  return out;
}

std::string number(double value) {
  std::ostringstream s;
  s << value;
  return s.str();
}

std::string list(const std::vector<double>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + number(values[i]);
  return text + "]";
}

}  // namespace

namespace {
constexpr NameTable<IntensityKind, 7> kIntensityKinds{{{IntensityKind::kZScore, "zscore"},
                                                       {IntensityKind::kPercentileClip, "percentile_clip"},
                                                       {IntensityKind::kWindow, "window"},
                                                       {IntensityKind::kScaleOffset, "scale_offset"},
                                                       {IntensityKind::kChannelMeanStd, "channel_mean_std"},
                                                       {IntensityKind::kClip, "clip"},
                                                       {IntensityKind::kRescaleTo01, "rescale_to_01"}}};
constexpr NameTable<OutsideMask, 3> kOutsideMasks{{{OutsideMask::kNormalize, "normalize"},
                                                   {OutsideMask::kZero, "zero"},
                                                   {OutsideMask::kNoise, "noise"}}};
}  // namespace

std::string intensity_kind_name(IntensityKind kind) { return name_of(kIntensityKinds, kind); }

IntensityKind intensity_kind_from_name(const std::string& name) {
  return value_of(kIntensityKinds, name, "intensity rule");
}

std::string outside_mask_name(OutsideMask outside) { return name_of(kOutsideMasks, outside); }

OutsideMask outside_mask_from_name(const std::string& name) {
  return value_of(kOutsideMasks, name, "outside_mask");
}

namespace {

std::string describe_for_channels(const IntensityStep& step) {
  switch (step.kind) {
    case IntensityKind::kZScore: {
      std::string text = std::string("z-score per channel over ") +
                         (step.over_nonzero ? "nonzero voxels" : "all voxels") +
                         " (mean and std measured on each image)";
      if (step.over_nonzero && step.outside_mask == OutsideMask::kZero) text += "; zero voxels stay 0";
      if (step.over_nonzero && step.outside_mask == OutsideMask::kNoise) {
        text += "; zero voxels become N(0,1) noise (seeded)";
      }
      return text;
    }
    case IntensityKind::kPercentileClip:
      return "clip each channel to its " + number(step.lower_percentile) + "th..." +
             number(step.upper_percentile) + "th percentile";
    case IntensityKind::kWindow:
      return "window center " + number(step.window_center) + ", width " +
             number(step.window_width) + " -> clip to [" +
             number(step.window_center - step.window_width / 2) + ", " +
             number(step.window_center + step.window_width / 2) + "], map to [0, 1]";
    case IntensityKind::kScaleOffset:
      return "x * " + number(step.scale) + " + " + number(step.offset);
    case IntensityKind::kChannelMeanStd:
      return "(x - mean) / std per channel, mean " + list(step.mean) + ", std " + list(step.std);
    case IntensityKind::kClip:
      return "clip to [" + number(step.clip_min) + ", " + number(step.clip_max) + "]";
    case IntensityKind::kRescaleTo01:
      return "rescale each channel's [min, max] to [0, 1] (measured on each image)";
  }
  return "";
}

}  // namespace

std::string describe(const IntensityStep& step) {
  const std::string text = describe_for_channels(step);
  return step.channel < 0 ? text : "channel " + std::to_string(step.channel) + ": " + text;
}

ChannelStatistics channel_statistics(const io::Image& image, std::int64_t channel,
                                     bool over_nonzero) {
  ChannelStatistics stats;
  const std::int64_t voxels = image.voxels_per_channel();
  // Per-thread partial sums in double, in two passes: the one-pass formula loses digits on CT
  // values near -1000.
  std::mutex merge;
  double sum = 0.0, sum_squares = 0.0;
  std::int64_t count = 0;
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = image.data<T>() + channel * voxels;
    io::parallel_for(voxels, [&](std::int64_t begin, std::int64_t end) {
      double partial = 0.0;
      std::int64_t partial_count = 0;
      for (std::int64_t i = begin; i < end; ++i) {
        if (over_nonzero && in[i] == T{0}) continue;
        partial += static_cast<double>(in[i]);
        ++partial_count;
      }
      std::lock_guard<std::mutex> lock(merge);
      sum += partial;
      count += partial_count;
    }, 1 << 16);
    if (count == 0) return;
    const double mean = sum / static_cast<double>(count);
    io::parallel_for(voxels, [&](std::int64_t begin, std::int64_t end) {
      double partial = 0.0;
      for (std::int64_t i = begin; i < end; ++i) {
        if (over_nonzero && in[i] == T{0}) continue;
        const double d = static_cast<double>(in[i]) - mean;
        partial += d * d;
      }
      std::lock_guard<std::mutex> lock(merge);
      sum_squares += partial;
    }, 1 << 16);
  });
  stats.count = count;
  if (count > 0) {
    stats.mean = sum / static_cast<double>(count);
    stats.std = std::sqrt(sum_squares / static_cast<double>(count));
  }
  return stats;
}

double channel_percentile(const io::Image& image, std::int64_t channel, double percent) {
  std::vector<float> values = channel_as_float(image, channel);
  if (values.empty()) return 0.0;
  return percentile_linear(values, std::clamp(percent, 0.0, 100.0));
}

io::Image apply_intensity(io::Image image, const IntensityStep& step, std::uint64_t seed) {
  const std::int64_t channels = image.channels();
  const std::int64_t voxels = image.voxels_per_channel();
  if (step.channel >= channels) {
    throw Error("an intensity step for channel " + std::to_string(step.channel) + " met an image with " +
                std::to_string(channels) + " channels");
  }
  const std::size_t means_wanted = step.channel >= 0 ? 1 : static_cast<std::size_t>(channels);
  if (step.kind == IntensityKind::kChannelMeanStd &&
      (step.mean.size() != means_wanted || step.std.size() != step.mean.size())) {
    throw Error("channel_mean_std has " + std::to_string(step.mean.size()) + " means and " +
                std::to_string(step.std.size()) + " stds for " + std::to_string(means_wanted) + " channel(s)");
  }
  io::Image out = image.dtype() == io::DType::kF32 ? std::move(image) : image.cast(io::DType::kF32);
  float* data = out.data<float>();
  for (std::int64_t c = 0; c < channels; ++c) {
    if (step.channel >= 0 && c != step.channel) continue;
    const std::size_t statistics_index = step.channel >= 0 ? 0 : static_cast<std::size_t>(c);
    float* values = data + c * voxels;
    double scale = 1.0, offset = 0.0;  // y = x * scale + offset, then clip when needed
    double low = -INFINITY, high = INFINITY;
    switch (step.kind) {
      case IntensityKind::kZScore: {
        const ChannelStatistics stats = channel_statistics(out, c, step.over_nonzero);
        // A constant channel has no spread; dividing by ~0 would only amplify noise.
        const double std = std::max(stats.std, 1e-8);
        scale = 1.0 / std;
        offset = -stats.mean / std;
        break;
      }
      case IntensityKind::kPercentileClip:
        low = channel_percentile(out, c, step.lower_percentile);
        high = channel_percentile(out, c, step.upper_percentile);
        break;
      case IntensityKind::kWindow: {
        if (!(step.window_width > 0)) throw Error("window width must be positive");
        const double lower = step.window_center - step.window_width / 2;
        scale = 1.0 / step.window_width;
        offset = -lower / step.window_width;
        low = 0.0;
        high = 1.0;
        break;
      }
      case IntensityKind::kScaleOffset:
        scale = step.scale;
        offset = step.offset;
        break;
      case IntensityKind::kChannelMeanStd: {
        const double mean = step.mean[statistics_index], std = step.std[statistics_index];
        if (!(std > 0)) throw Error("channel_mean_std: std must be positive");
        scale = 1.0 / std;
        offset = -mean / std;
        break;
      }
      case IntensityKind::kClip:
        low = step.clip_min;
        high = step.clip_max;
        break;
      case IntensityKind::kRescaleTo01: {
        const auto [lowest, highest] = std::minmax_element(values, values + voxels);
        const double minimum = voxels ? *lowest : 0.0, maximum = voxels ? *highest : 0.0;
        // nnU-Net's RescaleTo01Normalization: a constant channel becomes 0, not NaN.
        scale = 1.0 / std::max(maximum - minimum, 1e-8);
        offset = -minimum * scale;
        break;
      }
    }
    const bool keep_outside = step.kind == IntensityKind::kZScore && step.over_nonzero &&
                              step.outside_mask != OutsideMask::kNormalize;
    // The background is where the input was 0; remember it before the voxels change.
    std::vector<std::uint8_t> background;
    if (keep_outside) {
      background.resize(static_cast<std::size_t>(voxels));
      for (std::int64_t i = 0; i < voxels; ++i) background[i] = values[i] == 0.0f;
    }
    // In double, rounded once: (x - mean) / std in float would round twice and the folded
    // scale and offset once more, ~1e-6 off at the values a z-score gives CT.
    const auto low_f = static_cast<float>(low), high_f = static_cast<float>(high);
    io::parallel_for(voxels, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        if (keep_outside && background[i]) continue;
        const auto y = static_cast<float>(static_cast<double>(values[i]) * scale + offset);
        values[i] = std::min(std::max(y, low_f), high_f);
      }
    }, 1 << 16);
    if (keep_outside && step.outside_mask == OutsideMask::kNoise) {
      // Noise is drawn in voxel order from a per-channel stream, so it does not depend on threads.
      std::mt19937_64 generator(seed + static_cast<std::uint64_t>(c));
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (std::int64_t i = 0; i < voxels; ++i) {
        if (background[i]) values[i] = normal(generator);
      }
    }
  }
  return out;
}

}  // namespace graft::preprocess
