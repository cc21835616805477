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
constexpr NameTable<NonzeroMask, 2> kNonzeroMasks{{{NonzeroMask::kThisChannel, "this_channel"},
                                                   {NonzeroMask::kAnyChannelHolesFilled, "any_channel_holes_filled"}}};
constexpr NameTable<OutsideMask, 3> kOutsideMasks{{{OutsideMask::kNormalize, "normalize"},
                                                   {OutsideMask::kZero, "zero"},
                                                   {OutsideMask::kNoise, "noise"}}};
}  // namespace

std::string intensity_kind_name(IntensityKind kind) { return name_of(kIntensityKinds, kind); }

IntensityKind intensity_kind_from_name(const std::string& name) {
  return value_of(kIntensityKinds, name, "intensity rule");
}

std::string outside_mask_name(OutsideMask outside) { return name_of(kOutsideMasks, outside); }

std::string nonzero_mask_name(NonzeroMask mask) { return name_of(kNonzeroMasks, mask); }

NonzeroMask nonzero_mask_from_name(const std::string& name) { return value_of(kNonzeroMasks, name, "nonzero_mask"); }

OutsideMask outside_mask_from_name(const std::string& name) {
  return value_of(kOutsideMasks, name, "outside_mask");
}

namespace {

std::string describe_for_channels(const IntensityStep& step) {
  switch (step.kind) {
    case IntensityKind::kZScore: {
      const bool region = step.nonzero_mask == NonzeroMask::kAnyChannelHolesFilled;
      std::string text = std::string("z-score per channel over ") +
                         (!step.over_nonzero ? "all voxels"
                          : region           ? "the nonzero region of all channels, holes filled"
                                             : "nonzero voxels") +
                         " (mean and std measured on each image)";
      if (step.over_nonzero && step.outside_mask == OutsideMask::kZero) {
        text += region ? "; voxels outside it become 0" : "; zero voxels stay 0";
      }
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

namespace {

// Mean and population std of one channel's voxels i for which counted(i, value) holds.
template <typename Counted>
ChannelStatistics statistics_where(const io::Image& image, std::int64_t channel, Counted counted) {
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
        if (!counted(i, in[i])) continue;
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
        if (!counted(i, in[i])) continue;
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

}  // namespace

ChannelStatistics channel_statistics(const io::Image& image, std::int64_t channel, bool over_nonzero) {
  return statistics_where(image, channel, [over_nonzero](std::int64_t, auto value) {
    return !over_nonzero || value != decltype(value){0};
  });
}

ChannelStatistics channel_statistics(const io::Image& image, std::int64_t channel, const std::uint8_t* mask) {
  return statistics_where(image, channel, [mask](std::int64_t i, auto) { return mask[i] != 0; });
}

std::vector<std::uint8_t> nonzero_region_holes_filled(const io::Image& image) {
  const auto& n = image.geometry().size_xyz;
  const std::int64_t voxels = image.voxels_per_channel();
  std::vector<std::uint8_t> region(static_cast<std::size_t>(voxels), 0);
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    for (std::int64_t c = 0; c < image.channels(); ++c) {
      const T* in = image.data<T>() + c * voxels;
      for (std::int64_t i = 0; i < voxels; ++i) region[i] |= in[i] != T{0};
    }
  });
  // Zero voxels reachable from a face through 6-connected zero voxels are outside; the zero
  // voxels left over are holes, and join the region.
  constexpr std::uint8_t kOutside = 2;
  std::vector<std::int64_t> pending;
  const auto visit = [&](std::int64_t i) {
    if (region[i] == 0) {
      region[i] = kOutside;
      pending.push_back(i);
    }
  };
  for (std::int64_t z = 0; z < n[2]; ++z)
    for (std::int64_t y = 0; y < n[1]; ++y)
      for (std::int64_t x = 0; x < n[0]; ++x) {
        const bool face = x == 0 || y == 0 || z == 0 || x == n[0] - 1 || y == n[1] - 1 || z == n[2] - 1;
        if (face) visit((z * n[1] + y) * n[0] + x);
      }
  const std::int64_t row = n[0], plane = n[0] * n[1];
  while (!pending.empty()) {
    const std::int64_t i = pending.back();
    pending.pop_back();
    const std::int64_t x = i % row, y = (i / row) % n[1], z = i / plane;
    if (x > 0) visit(i - 1);
    if (x + 1 < n[0]) visit(i + 1);
    if (y > 0) visit(i - row);
    if (y + 1 < n[1]) visit(i + row);
    if (z > 0) visit(i - plane);
    if (z + 1 < n[2]) visit(i + plane);
  }
  for (auto& value : region) value = value != kOutside;
  return region;
}

double channel_percentile(const io::Image& image, std::int64_t channel, double percent) {
  std::vector<float> values = channel_as_float(image, channel);
  if (values.empty()) return 0.0;
  return percentile_linear(values, std::clamp(percent, 0.0, 100.0));
}

io::Image apply_intensity(io::Image image, const IntensityStep& step, std::uint64_t seed,
                          const std::vector<std::uint8_t>* region) {
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
  const bool region_masked = step.kind == IntensityKind::kZScore && step.over_nonzero &&
                             step.nonzero_mask == NonzeroMask::kAnyChannelHolesFilled;
  std::vector<std::uint8_t> own_region;
  if (region_masked && !region) {
    own_region = nonzero_region_holes_filled(image);
    region = &own_region;
  }
  if (region_masked && static_cast<std::int64_t>(region->size()) != voxels) {
    throw Error("a z-score's region mask has " + std::to_string(region->size()) + " voxels, the image " +
                std::to_string(voxels));
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
        const ChannelStatistics stats =
            region_masked ? channel_statistics(out, c, region->data()) : channel_statistics(out, c, step.over_nonzero);
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
    // The background is where the input was 0 (or outside the region); remember it before the
    // voxels change.
    std::vector<std::uint8_t> background;
    if (keep_outside) {
      background.resize(static_cast<std::size_t>(voxels));
      for (std::int64_t i = 0; i < voxels; ++i) background[i] = region_masked ? !(*region)[i] : values[i] == 0.0f;
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
