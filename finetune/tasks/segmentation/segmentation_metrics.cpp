#include "finetune/tasks/segmentation/segmentation_metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "io/error.h"
#include "preprocess/intensity.h"

namespace graft::finetune {

std::map<std::int64_t, double> dice_per_label(const io::Image& prediction,
                                              const io::Image& reference) {
  if (!prediction.geometry().same_grid(reference.geometry(), 1e-3)) {
    throw Error("prediction and reference lie on different grids: " +
                prediction.geometry().describe_difference(reference.geometry(), 1e-3));
  }
  if (prediction.element_count() != reference.element_count()) {
    throw Error("prediction and reference have different channel counts");
  }
  struct Counts {
    std::int64_t predicted = 0, reference = 0, overlap = 0;
  };
  std::map<std::int64_t, Counts> counts;
  for (std::int64_t i = 0; i < prediction.element_count(); ++i) {
    const auto p = static_cast<std::int64_t>(std::llround(prediction.value_at(i)));
    const auto r = static_cast<std::int64_t>(std::llround(reference.value_at(i)));
    if (p != 0) ++counts[p].predicted;
    if (r != 0) ++counts[r].reference;
    if (p != 0 && p == r) ++counts[p].overlap;
  }
  std::map<std::int64_t, double> dice;
  for (const auto& [label, c] : counts) {
    dice[label] =
        2.0 * static_cast<double>(c.overlap) / static_cast<double>(c.predicted + c.reference);
  }
  return dice;
}

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

void require_same_single_channel_grid(const io::Image& prediction, const io::Image& reference) {
  if (!prediction.geometry().same_grid(reference.geometry(), 1e-3)) {
    throw Error("prediction and reference lie on different grids: " +
                prediction.geometry().describe_difference(reference.geometry(), 1e-3));
  }
  if (prediction.channels() != 1 || reference.channels() != 1) {
    // Surfaces are spatial; a second channel is not another slab of the same volume.
    throw Error("surface metrics need single-channel label maps: prediction has " +
                std::to_string(prediction.channels()) + " channels, reference has " +
                std::to_string(reference.channels()));
  }
}

// Rounded exactly as dice_per_label rounds, so both metrics see the same labels.
template <typename T>
std::int64_t label_of(T value) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<std::int64_t>(value);
  } else {
    return static_cast<std::int64_t>(std::llround(static_cast<double>(value)));
  }
}

// Inclusive index box, x y z.
struct Box {
  std::array<std::int64_t, 3> lo{std::numeric_limits<std::int64_t>::max(),
                                 std::numeric_limits<std::int64_t>::max(),
                                 std::numeric_limits<std::int64_t>::max()};
  std::array<std::int64_t, 3> hi{-1, -1, -1};

  void add(std::int64_t x, std::int64_t y, std::int64_t z) {
    lo = {std::min(lo[0], x), std::min(lo[1], y), std::min(lo[2], z)};
    hi = {std::max(hi[0], x), std::max(hi[1], y), std::max(hi[2], z)};
  }
};

// Grows each nonzero label's box to hold its voxels in `image`. The voxels are read in place:
// a widened copy of a label map would cost more memory than the distance transform.
void add_to_boxes(const io::Image& image, std::map<std::int64_t, Box>& boxes) {
  const auto& size = image.geometry().size_xyz;
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* voxel = image.data<T>();
    std::int64_t cached_label = 0;  // neighbours mostly share a label: skip the map lookup
    Box* cached_box = nullptr;
    for (std::int64_t z = 0; z < size[2]; ++z) {
      for (std::int64_t y = 0; y < size[1]; ++y) {
        for (std::int64_t x = 0; x < size[0]; ++x, ++voxel) {
          const std::int64_t label = label_of(*voxel);
          if (label == 0) continue;
          if (cached_box == nullptr || label != cached_label) {
            cached_label = label;
            cached_box = &boxes[label];
          }
          cached_box->add(x, y, z);
        }
      }
    }
  });
}

// The voxels of `box` in `image` that hold `label`, as 0/1 laid out z, y, x.
void crop_mask(const io::Image& image, const Box& box, std::int64_t label,
               std::vector<std::uint8_t>& mask) {
  const auto& size = image.geometry().size_xyz;
  mask.clear();
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* voxels = image.data<T>();
    for (std::int64_t z = box.lo[2]; z <= box.hi[2]; ++z) {
      for (std::int64_t y = box.lo[1]; y <= box.hi[1]; ++y) {
        const T* row = voxels + (z * size[1] + y) * size[0];
        for (std::int64_t x = box.lo[0]; x <= box.hi[0]; ++x) {
          mask.push_back(label_of(row[x]) == label);
        }
      }
    }
  });
}

// Felzenszwalb & Huttenlocher's lower envelope of parabolas along one line:
// out[q] = min_p (spacing² (q - p)² + f[p]), exact, in O(n). Infinite samples (no seed yet)
// never enter the envelope, so a line without seeds stays infinite.
class LineTransform {
 public:
  void run(const double* f, std::int64_t n, double spacing_mm, double* out) {
    if (static_cast<std::int64_t>(apex_.size()) < n) {
      apex_.resize(static_cast<std::size_t>(n));
      height_.resize(static_cast<std::size_t>(n));
      start_.resize(static_cast<std::size_t>(n));
    }
    const double w2 = spacing_mm * spacing_mm;
    std::int64_t k = -1;  // the rightmost parabola of the envelope
    for (std::int64_t q = 0; q < n; ++q) {
      if (f[q] == kInfinity) continue;
      const double height_q = f[q] + w2 * static_cast<double>(q * q);
      // Parabola k is nowhere lowest once q is in if they cross before k starts. Compared
      // multiplied out (the denominator is positive) to keep divisions out of the inner loop.
      while (k >= 0 &&
             height_q - height_[k] <= start_[k] * (2.0 * w2 * static_cast<double>(q - apex_[k]))) {
        --k;
      }
      const double s =
          k < 0 ? -kInfinity
                : (height_q - height_[k]) / (2.0 * w2 * static_cast<double>(q - apex_[k]));
      ++k;
      apex_[k] = q;
      height_[k] = height_q;
      start_[k] = s;
    }
    if (k < 0) {
      std::fill(out, out + n, kInfinity);
      return;
    }
    std::int64_t j = 0;
    for (std::int64_t q = 0; q < n; ++q) {
      while (j < k && start_[j + 1] < static_cast<double>(q)) ++j;
      const double dq = static_cast<double>(q - apex_[j]);
      out[q] = w2 * dq * dq + f[apex_[j]];
    }
  }

 private:
  std::vector<std::int64_t> apex_;  // seed position of each envelope parabola
  std::vector<double> height_;      // f[apex] + spacing² apex², shared by every crossing
  std::vector<double> start_;       // where each parabola starts being the lowest
};

// Exact squared Euclidean distance transform in mm² to the nonzero voxels of `seeds`, a volume
// laid out z, y, x (x fastest). Separable: one 1D pass per axis.
class DistanceTransform {
 public:
  void run(const std::vector<std::uint8_t>& seeds, const std::array<std::int64_t, 3>& size_xyz,
           const io::Vec3& spacing_xyz, std::vector<double>& squared_mm2) {
    const std::int64_t nx = size_xyz[0], ny = size_xyz[1], nz = size_xyz[2];
    squared_mm2.resize(seeds.size());
    line_in_.resize(static_cast<std::size_t>(std::max(ny, nz) * kBlock));
    line_out_.resize(line_in_.size());
    for (std::int64_t row = 0; row < ny * nz; ++row) {
      x_pass(seeds.data() + row * nx, nx, spacing_xyz[0], squared_mm2.data() + row * nx);
    }
    strided_pass(squared_mm2, nx, nz, nx * ny, ny, nx, spacing_xyz[1]);  // y lines, per z
    strided_pass(squared_mm2, nx, ny, nx, nz, nx * ny, spacing_xyz[2]);  // z lines, per y
  }

 private:
  // Lines whose samples lie `stride` apart are gathered kBlock neighbouring x at a time, so
  // every cache line fetched serves kBlock lines instead of one.
  static constexpr std::int64_t kBlock = 16;

  // Along x the input is only seed or not, so the nearest seed on the row is found by one sweep
  // each way, with no envelope to build.
  static void x_pass(const std::uint8_t* seeds, std::int64_t n, double spacing_mm, double* out) {
    std::int64_t last = -1;
    for (std::int64_t q = 0; q < n; ++q) {
      if (seeds[q]) last = q;
      out[q] = last < 0 ? kInfinity : static_cast<double>(q - last);
    }
    std::int64_t next = -1;
    for (std::int64_t q = n - 1; q >= 0; --q) {
      if (seeds[q]) next = q;
      if (next >= 0) out[q] = std::min(out[q], static_cast<double>(next - q));
      out[q] = out[q] * spacing_mm * (out[q] * spacing_mm);
    }
  }

  void strided_pass(std::vector<double>& volume, std::int64_t nx, std::int64_t outer_count,
                    std::int64_t outer_stride, std::int64_t n, std::int64_t stride,
                    double spacing_mm) {
    for (std::int64_t outer = 0; outer < outer_count; ++outer) {
      for (std::int64_t x0 = 0; x0 < nx; x0 += kBlock) {
        const std::int64_t width = std::min(kBlock, nx - x0);
        double* base = volume.data() + outer * outer_stride + x0;
        for (std::int64_t t = 0; t < n; ++t) {
          for (std::int64_t b = 0; b < width; ++b) line_in_[b * n + t] = base[t * stride + b];
        }
        for (std::int64_t b = 0; b < width; ++b) {
          line_.run(line_in_.data() + b * n, n, spacing_mm, line_out_.data() + b * n);
        }
        for (std::int64_t t = 0; t < n; ++t) {
          for (std::int64_t b = 0; b < width; ++b) base[t * stride + b] = line_out_[b * n + t];
        }
      }
    }
  }

  LineTransform line_;
  std::vector<double> line_in_, line_out_;
};

// Marks foreground voxels with a 6-connected background neighbour; the box holds every
// foreground voxel of the label, so a neighbour outside it is background.
std::int64_t mark_surface(const std::vector<std::uint8_t>& mask,
                          const std::array<std::int64_t, 3>& size_xyz,
                          std::vector<std::uint8_t>& surface) {
  const std::int64_t nx = size_xyz[0], ny = size_xyz[1], nz = size_xyz[2];
  surface.assign(mask.size(), 0);
  std::int64_t count = 0;
  for (std::int64_t z = 0; z < nz; ++z) {
    for (std::int64_t y = 0; y < ny; ++y) {
      for (std::int64_t x = 0; x < nx; ++x) {
        const std::int64_t i = (z * ny + y) * nx + x;
        if (!mask[i]) continue;
        const bool inner = x > 0 && x + 1 < nx && y > 0 && y + 1 < ny && z > 0 && z + 1 < nz &&
                           mask[i - 1] && mask[i + 1] && mask[i - nx] && mask[i + nx] &&
                           mask[i - nx * ny] && mask[i + nx * ny];
        if (!inner) {
          surface[i] = 1;
          ++count;
        }
      }
    }
  }
  return count;
}

}  // namespace

std::map<std::int64_t, SurfaceMetrics> surface_metrics_per_label(const io::Image& prediction,
                                                                 const io::Image& reference,
                                                                 double tolerance_mm) {
  require_same_single_channel_grid(prediction, reference);
  if (!std::isfinite(tolerance_mm) || tolerance_mm < 0.0) {
    throw Error("surface dice tolerance must be a finite, non-negative number of mm, got " +
                std::to_string(tolerance_mm));
  }
  // One box per label around both masks: every surface voxel of either lies inside it, so
  // distances computed within it are exact, and a neighbour outside it is background.
  std::map<std::int64_t, Box> boxes;
  add_to_boxes(prediction, boxes);
  add_to_boxes(reference, boxes);

  std::map<std::int64_t, SurfaceMetrics> metrics;
  std::vector<std::uint8_t> mask_a, mask_b, surface_a, surface_b;
  std::vector<double> squared_mm2, distances_mm;
  DistanceTransform transform;
  for (const auto& [label, box] : boxes) {
    const std::array<std::int64_t, 3> crop{box.hi[0] - box.lo[0] + 1, box.hi[1] - box.lo[1] + 1,
                                           box.hi[2] - box.lo[2] + 1};
    crop_mask(prediction, box, label, mask_a);
    crop_mask(reference, box, label, mask_b);
    const std::int64_t count_a = mark_surface(mask_a, crop, surface_a);
    const std::int64_t count_b = mark_surface(mask_b, crop, surface_b);
    if (count_a == 0 || count_b == 0) {
      // Nothing to measure against: MONAI reports inf distance, and no surface agrees.
      metrics[label] = {kInfinity, 0.0, kInfinity};
      continue;
    }

    distances_mm.clear();
    std::int64_t within_tolerance = 0;
    double hd95_mm = 0.0;
    // A to the nearest of B's surface, then B to the nearest of A's.
    for (int direction = 0; direction < 2; ++direction) {
      const auto& from = direction == 0 ? surface_a : surface_b;
      const auto& to = direction == 0 ? surface_b : surface_a;
      transform.run(to, crop, prediction.geometry().spacing_xyz, squared_mm2);
      std::vector<double> directed_mm;
      for (std::size_t j = 0; j < to.size(); ++j) {
        if (!from[j]) continue;
        const double d = std::sqrt(squared_mm2[j]);
        directed_mm.push_back(d);
        if (d <= tolerance_mm) ++within_tolerance;
      }
      distances_mm.insert(distances_mm.end(), directed_mm.begin(), directed_mm.end());
      hd95_mm = std::max(hd95_mm, preprocess::percentile_linear(directed_mm, 95.0));
    }
    double sum_mm = 0.0;
    for (double d : distances_mm) sum_mm += d;
    const auto n = static_cast<double>(distances_mm.size());
    SurfaceMetrics m;
    m.surface_dice = static_cast<double>(within_tolerance) / n;
    m.mean_surface_distance_mm = sum_mm / n;
    m.hd95_mm = hd95_mm;
    metrics[label] = m;
  }
  return metrics;
}

}  // namespace graft::finetune
