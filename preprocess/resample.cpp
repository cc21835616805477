#include "preprocess/resample.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <type_traits>
#include <vector>

#include "io/error.h"
#include "preprocess/named_enum.h"
#include "preprocess/reorient.h"
#include "io/parallel.h"

namespace graft::preprocess {
namespace {

using io::DType;
using io::Image;

// For each output index along one axis, `width` (input index, weight) pairs.
struct AxisTaps {
  std::int64_t outputs = 0;
  int width = 0;
  std::vector<std::int64_t> index;
  std::vector<float> weight;
};

// The input coordinate of output voxel centre o when n voxels become m over the same extent.
double source_coordinate(std::int64_t o, std::int64_t n, std::int64_t m) {
  return (static_cast<double>(o) + 0.5) * static_cast<double>(n) / static_cast<double>(m) - 0.5;
}

std::int64_t clamp_index(std::int64_t i, std::int64_t n) { return std::min(std::max<std::int64_t>(i, 0), n - 1); }

// Whole-sample symmetric extension (c b | a b c | b a), the boundary of the B-spline prefilter.
std::int64_t mirror_index(std::int64_t i, std::int64_t n) {
  if (n == 1) return 0;
  const std::int64_t period = 2 * n - 2;
  i = ((i % period) + period) % period;
  return i < n ? i : period - i;
}

// Half-sample symmetric extension (b a | a b c | c b), scipy.ndimage's 'reflect'.
std::int64_t reflect_index(std::int64_t i, std::int64_t n) {
  const std::int64_t period = 2 * n;
  i = ((i % period) + period) % period;
  return i < n ? i : period - 1 - i;
}

double cubic_bspline(double t) {
  t = std::abs(t);
  if (t < 1.0) return 2.0 / 3.0 - t * t + 0.5 * t * t * t;
  if (t < 2.0) {
    const double u = 2.0 - t;
    return u * u * u / 6.0;
  }
  return 0.0;
}

AxisTaps interpolation_taps(std::int64_t n, std::int64_t m, Interpolation interpolation) {
  AxisTaps taps;
  taps.outputs = m;
  taps.width = interpolation == Interpolation::kNearest ? 1
               : interpolation == Interpolation::kLinear ? 2
                                                         : 4;
  taps.index.resize(m * taps.width);
  taps.weight.resize(m * taps.width);
  for (std::int64_t o = 0; o < m; ++o) {
    const double c = source_coordinate(o, n, m);
    std::int64_t* index = &taps.index[o * taps.width];
    float* weight = &taps.weight[o * taps.width];
    if (interpolation == Interpolation::kNearest) {
      index[0] = clamp_index(static_cast<std::int64_t>(std::floor(c + 0.5)), n);
      weight[0] = 1.0f;
    } else if (interpolation == Interpolation::kLinear) {
      const double base = std::floor(c);
      const double fraction = c - base;
      index[0] = clamp_index(static_cast<std::int64_t>(base), n);
      index[1] = clamp_index(static_cast<std::int64_t>(base) + 1, n);
      weight[0] = static_cast<float>(1.0 - fraction);
      weight[1] = static_cast<float>(fraction);
    } else {
      const auto base = static_cast<std::int64_t>(std::floor(c));
      for (int k = 0; k < 4; ++k) {
        const std::int64_t i = base - 1 + k;
        index[k] = mirror_index(i, n);
        weight[k] = static_cast<float>(cubic_bspline(c - static_cast<double>(i)));
      }
    }
  }
  return taps;
}

AxisTaps gaussian_taps(std::int64_t n, double sigma) {
  const int radius = std::max(1, static_cast<int>(std::ceil(4.0 * sigma)));
  std::vector<double> kernel(2 * radius + 1);
  double sum = 0.0;
  for (int k = -radius; k <= radius; ++k) {
    kernel[k + radius] = std::exp(-0.5 * k * k / (sigma * sigma));
    sum += kernel[k + radius];
  }
  AxisTaps taps;
  taps.outputs = n;
  taps.width = 2 * radius + 1;
  taps.index.resize(n * taps.width);
  taps.weight.resize(n * taps.width);
  for (std::int64_t o = 0; o < n; ++o) {
    for (int k = -radius; k <= radius; ++k) {
      taps.index[o * taps.width + k + radius] = reflect_index(o + k, n);
      taps.weight[o * taps.width + k + radius] = static_cast<float>(kernel[k + radius] / sum);
    }
  }
  return taps;
}

// One row gathered through an axis's taps (x, the contiguous axis).
template <typename In, typename Out>
void gather_row(const In* row, Out* destination, const AxisTaps& taps) {
  const int width = taps.width;
  for (std::int64_t o = 0; o < taps.outputs; ++o) {
    const std::int64_t* index = &taps.index[o * width];
    const float* weight = &taps.weight[o * width];
    float sum = 0.0f;
    for (int k = 0; k < width; ++k) sum += weight[k] * static_cast<float>(row[index[k]]);
    destination[o] = sum;
  }
}

// Output o along an outer axis: the weighted sum of `width` whole input runs of `length` voxels.
template <typename In, typename Out>
void combine_run(const In* runs, Out* destination, std::int64_t length, const AxisTaps& taps, std::int64_t o) {
  const int width = taps.width;
  const std::int64_t* index = &taps.index[o * width];
  const float* weight = &taps.weight[o * width];
  const In* first = runs + index[0] * length;
  for (std::int64_t i = 0; i < length; ++i) destination[i] = weight[0] * static_cast<float>(first[i]);
  for (int k = 1; k < width; ++k) {
    const In* source = runs + index[k] * length;
    const float w = weight[k];
    for (std::int64_t i = 0; i < length; ++i) destination[i] += w * static_cast<float>(source[i]);
  }
}

// Every output row of a slice (y) through combine_run.
template <typename In>
void combine_rows(const In* rows, float* destination, std::int64_t length, const AxisTaps& taps) {
  for (std::int64_t o = 0; o < taps.outputs; ++o) combine_run(rows, destination + o * length, length, taps, o);
}

// A float volume viewed as (outer, n, inner) around the axis being processed.
struct AxisView {
  std::int64_t outer = 1, n = 1, inner = 1;
};

AxisView view_along(const std::array<std::int64_t, 4>& dims_czyx, int axis_xyz) {
  // dims are (c, z, y, x); axis x is innermost.
  const int position = 3 - axis_xyz;
  AxisView view;
  for (int i = 0; i < position; ++i) view.outer *= dims_czyx[i];
  view.n = dims_czyx[position];
  for (int i = position + 1; i < 4; ++i) view.inner *= dims_czyx[i];
  return view;
}

// Output index o along the axis reads taps.index/weight[o * width ... + width). For each
// (outer, o) the whole inner run is one contiguous vector, so the loops stream through memory;
// along x (inner == 1) each row is filtered in turn instead.
template <typename In, typename Out>
void apply_taps(const In* in, Out* out, const AxisView& view, const AxisTaps& taps) {
  const std::int64_t m = taps.outputs;
  const int width = taps.width;
  if (view.inner == 1) {
    io::parallel_for(view.outer, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t outer = begin; outer < end; ++outer) {
        const In* row = in + outer * view.n;
        Out* destination = out + outer * m;
        if constexpr (std::is_floating_point_v<Out>) {
          gather_row(row, destination, taps);
        } else {  // nearest gather for label maps
          for (std::int64_t o = 0; o < m; ++o) destination[o] = row[taps.index[o * width]];
        }
      }
    }, 16);
    return;
  }
  auto one_run = [&](std::int64_t outer, std::int64_t o) {
    Out* destination = out + (outer * m + o) * view.inner;
    const In* base = in + outer * view.n * view.inner;
    if constexpr (std::is_floating_point_v<Out>) {
      combine_run(base, destination, view.inner, taps, o);
    } else {
      const std::int64_t index = taps.index[o * width];
      std::copy(base + index * view.inner, base + (index + 1) * view.inner, destination);
    }
  };
  if (view.outer >= 2 * io::worker_threads()) {
    io::parallel_for(view.outer, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t outer = begin; outer < end; ++outer)
        for (std::int64_t o = 0; o < m; ++o) one_run(outer, o);
    });
  } else {
    for (std::int64_t outer = 0; outer < view.outer; ++outer) {
      io::parallel_for(m, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t o = begin; o < end; ++o) one_run(outer, o);
      });
    }
  }
}

// Smoothing then interpolating along one axis is one linear map; composing their taps lets a
// single pass over the data do both.
AxisTaps compose_taps(const AxisTaps& second, const AxisTaps& first) {
  AxisTaps out;
  out.outputs = second.outputs;
  std::vector<std::vector<std::pair<std::int64_t, float>>> merged(second.outputs);
  for (std::int64_t o = 0; o < second.outputs; ++o) {
    auto& entries = merged[o];
    for (int k = 0; k < second.width; ++k) {
      const std::int64_t middle = second.index[o * second.width + k];
      const float w = second.weight[o * second.width + k];
      for (int j = 0; j < first.width; ++j) {
        const std::int64_t source = first.index[middle * first.width + j];
        const float product = w * first.weight[middle * first.width + j];
        auto found = std::find_if(entries.begin(), entries.end(),
                                  [&](const auto& entry) { return entry.first == source; });
        if (found == entries.end()) entries.emplace_back(source, product);
        else found->second += product;
      }
    }
    out.width = std::max<int>(out.width, static_cast<int>(entries.size()));
  }
  out.index.assign(out.outputs * out.width, 0);
  out.weight.assign(out.outputs * out.width, 0.0f);
  for (std::int64_t o = 0; o < out.outputs; ++o) {
    for (std::size_t k = 0; k < merged[o].size(); ++k) {
      out.index[o * out.width + k] = merged[o][k].first;
      out.weight[o * out.width + k] = merged[o][k].second;
    }
    // Unused slots repeat a real index with weight 0, so every read stays in bounds.
    for (std::size_t k = merged[o].size(); k < static_cast<std::size_t>(out.width); ++k) {
      out.index[o * out.width + k] = merged[o][0].first;
    }
  }
  return out;
}

// Turns samples into cubic B-spline coefficients along one axis (Unser's recursive filter).
void bspline_prefilter(io::UninitializedVector<float>& data, const AxisView& view) {
  if (view.n < 2) return;
  const double pole = std::sqrt(3.0) - 2.0;
  const double gain = (1.0 - pole) * (1.0 - 1.0 / pole);
  const std::int64_t horizon =
      std::min<std::int64_t>(view.n, static_cast<std::int64_t>(std::ceil(std::log(1e-9) / std::log(std::abs(pole)))));
  io::parallel_for(view.outer, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> causal(view.n * view.inner);
    for (std::int64_t outer = begin; outer < end; ++outer) {
      float* line = data.data() + outer * view.n * view.inner;
      for (std::int64_t i = 0; i < view.inner; ++i) {
        // Initial causal value on the mirrored signal, truncated where pole^k is negligible.
        double sum = 0.0, power = 1.0;
        if (horizon < view.n) {
          for (std::int64_t k = 0; k < horizon; ++k, power *= pole) sum += power * line[k * view.inner + i];
        } else {
          const std::int64_t period = 2 * view.n - 2;
          for (std::int64_t k = 0; k < period; ++k, power *= pole) {
            sum += power * line[mirror_index(k, view.n) * view.inner + i];
          }
          sum /= 1.0 - power;
        }
        causal[i] = sum * gain;
      }
      for (std::int64_t k = 1; k < view.n; ++k) {
        for (std::int64_t i = 0; i < view.inner; ++i) {
          causal[k * view.inner + i] = gain * line[k * view.inner + i] + pole * causal[(k - 1) * view.inner + i];
        }
      }
      const std::int64_t last = view.n - 1;
      for (std::int64_t i = 0; i < view.inner; ++i) {
        const double value = (pole / (pole * pole - 1.0)) *
                             (causal[last * view.inner + i] + pole * causal[(last - 1) * view.inner + i]);
        causal[last * view.inner + i] = value;
        line[last * view.inner + i] = static_cast<float>(value);
      }
      for (std::int64_t k = last - 1; k >= 0; --k) {
        for (std::int64_t i = 0; i < view.inner; ++i) {
          const double value = pole * (causal[(k + 1) * view.inner + i] - causal[k * view.inner + i]);
          causal[k * view.inner + i] = value;
          line[k * view.inner + i] = static_cast<float>(value);
        }
      }
    }
  });
}

io::UninitializedVector<float> to_float(const Image& image) {
  io::UninitializedVector<float> out(static_cast<std::size_t>(image.element_count()));
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = image.data<T>();
    const std::int64_t count = image.element_count();
    io::parallel_for(count, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = static_cast<float>(in[i]);
    }, 1 << 16);
  });
  return out;
}

// Axes in the order that shrinks the data soonest, so later passes touch fewer voxels.
std::array<int, 3> axis_order(const SizeXyz& from, const SizeXyz& to) {
  std::array<int, 3> order{0, 1, 2};
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return static_cast<double>(to[a]) / from[a] < static_cast<double>(to[b]) / from[b];
  });
  return order;
}

void check_size(const SizeXyz& size_xyz) {
  for (std::int64_t n : size_xyz) {
    if (n < 1) throw Error("resample: target size must be positive on every axis");
  }
}


// Reads input index n - 1 - i wherever the taps read i: the taps then resample the axis reversed.
void reverse_taps(AxisTaps& taps, std::int64_t n) {
  for (std::int64_t& index : taps.index) index = n - 1 - index;
}

// x and y of each (channel, z) slice in one pass, through a per-thread scratch slice that stays
// in cache, instead of a whole-volume buffer between the two axes. Either taps may be null (that
// axis is kept); the axis that shrinks more goes first.
template <typename In>
void resample_slices(const In* in, float* out, std::int64_t slices, std::int64_t nx, std::int64_t ny,
                     const AxisTaps* x, const AxisTaps* y) {
  const std::int64_t mx = x ? x->outputs : nx, my = y ? y->outputs : ny;
  const bool x_first = x && (!y || static_cast<double>(mx) / nx <= static_cast<double>(my) / ny);
  io::parallel_for(slices, [&](std::int64_t begin, std::int64_t end) {
    io::UninitializedVector<float> scratch(x && y ? static_cast<std::size_t>(x_first ? ny * mx : my * nx) : 0);
    for (std::int64_t slice = begin; slice < end; ++slice) {
      const In* source = in + slice * nx * ny;
      float* destination = out + slice * mx * my;
      if (x && y && x_first) {
        for (std::int64_t row = 0; row < ny; ++row) gather_row(source + row * nx, scratch.data() + row * mx, *x);
        combine_rows(scratch.data(), destination, mx, *y);
      } else if (x && y) {
        combine_rows(source, scratch.data(), nx, *y);
        for (std::int64_t row = 0; row < my; ++row) gather_row(scratch.data() + row * nx, destination + row * mx, *x);
      } else if (x) {
        for (std::int64_t row = 0; row < ny; ++row) gather_row(source + row * nx, destination + row * mx, *x);
      } else {
        combine_rows(source, destination, nx, *y);
      }
    }
  });
}

// Linear or nearest resampling with optional axis reversal folded into the taps: the slice pass
// for x and y, and one pass along z (first when z shrinks most, so the slice pass reads less).
template <typename In>
void resample_separable(const In* in, float* out, std::int64_t channels, const SizeXyz& from, const SizeXyz& to,
                        const std::array<std::optional<AxisTaps>, 3>& taps) {
  const AxisTaps* x = taps[0] ? &*taps[0] : nullptr;
  const AxisTaps* y = taps[1] ? &*taps[1] : nullptr;
  const AxisTaps* z = taps[2] ? &*taps[2] : nullptr;
  auto ratio = [&](int a) { return static_cast<double>(to[a]) / static_cast<double>(from[a]); };
  const bool z_first = z && (x || y) && ratio(2) < std::min(x ? ratio(0) : 1e300, y ? ratio(1) : 1e300);
  const std::int64_t mx = x ? to[0] : from[0], my = y ? to[1] : from[1];
  if (z_first) {
    io::UninitializedVector<float> between(static_cast<std::size_t>(channels * to[2] * from[1] * from[0]));
    apply_taps(in, between.data(), AxisView{channels, from[2], from[1] * from[0]}, *z);
    resample_slices(between.data(), out, channels * to[2], from[0], from[1], x, y);
  } else if (z && (x || y)) {
    io::UninitializedVector<float> between(static_cast<std::size_t>(channels * from[2] * my * mx));
    resample_slices(in, between.data(), channels * from[2], from[0], from[1], x, y);
    apply_taps(between.data(), out, AxisView{channels, from[2], my * mx}, *z);
  } else if (z) {
    apply_taps(in, out, AxisView{channels, from[2], from[1] * from[0]}, *z);
  } else {
    resample_slices(in, out, channels * from[2], from[0], from[1], x, y);
  }
}
}  // namespace

namespace {
constexpr NameTable<Interpolation, 3> kInterpolations{{{Interpolation::kNearest, "nearest"},
                                                       {Interpolation::kLinear, "linear"},
                                                       {Interpolation::kBSpline, "bspline"}}};
constexpr NameTable<LabelInterpolation, 2> kLabelInterpolations{
    {{LabelInterpolation::kNearest, "nearest"},
     {LabelInterpolation::kPerLabelLinear, "per_label_linear"}}};
}  // namespace

std::string interpolation_name(Interpolation interpolation) {
  return name_of(kInterpolations, interpolation);
}

Interpolation interpolation_from_name(const std::string& name) {
  return value_of(kInterpolations, name, "interpolation");
}

std::string label_interpolation_name(LabelInterpolation interpolation) {
  return name_of(kLabelInterpolations, interpolation);
}

LabelInterpolation label_interpolation_from_name(const std::string& name) {
  return value_of(kLabelInterpolations, name, "label interpolation");
}

io::Geometry resized_geometry(const io::Geometry& input, const SizeXyz& size_xyz) {
  io::Geometry out = input;
  io::Vec3 shift_index{};
  for (int a = 0; a < 3; ++a) {
    out.size_xyz[a] = size_xyz[a];
    out.spacing_xyz[a] = input.spacing_xyz[a] * static_cast<double>(input.size_xyz[a]) /
                         static_cast<double>(size_xyz[a]);
    shift_index[a] = source_coordinate(0, input.size_xyz[a], size_xyz[a]);
  }
  out.origin_world = input.index_to_world(shift_index);
  out.geotransform.reset();  // a resampled raster's transform is recomputed by its writer
  return out;
}

SizeXyz size_for_spacing(const io::Geometry& input, const io::Vec3& target_spacing_xyz) {
  SizeXyz size{};
  for (int a = 0; a < 3; ++a) {
    if (!(target_spacing_xyz[a] > 0.0)) throw Error("target spacing must be positive");
    size[a] = std::max<std::int64_t>(
        1, std::llround(static_cast<double>(input.size_xyz[a]) * input.spacing_xyz[a] /
                        target_spacing_xyz[a]));
  }
  return size;
}

io::Vec3 anti_alias_sigma_voxels(const SizeXyz& input_size, const SizeXyz& output_size) {
  io::Vec3 sigma{};
  for (int a = 0; a < 3; ++a) {
    const double factor = static_cast<double>(input_size[a]) / static_cast<double>(output_size[a]);
    sigma[a] = factor > 1.0 ? (factor - 1.0) / 2.0 : 0.0;
  }
  return sigma;
}

Image resample_image(const Image& image, const SizeXyz& size_xyz, const ResampleOptions& options) {
  return flip_and_resample_image(image, {false, false, false}, size_xyz, options);
}

Image flip_and_resample_image(const Image& image, const std::array<bool, 3>& flip_xyz, const SizeXyz& size_xyz,
                              const ResampleOptions& options) {
  check_size(size_xyz);
  const AxisPermutation flips{{0, 1, 2}, flip_xyz};
  const io::Geometry& in_geometry = image.geometry();
  const io::Geometry out_geometry = resized_geometry(permuted_geometry(in_geometry, flips), size_xyz);
  const io::Vec3 sigma = anti_alias_sigma_voxels(in_geometry.size_xyz, size_xyz);
  bool any_bspline = false, anything_to_do = false;
  for (int axis = 0; axis < 3; ++axis) {
    const bool resized = in_geometry.size_xyz[axis] != size_xyz[axis];
    any_bspline |= resized && options.interpolation_xyz[axis] == Interpolation::kBSpline;
    anything_to_do |= resized || flip_xyz[axis];
  }
  const std::int64_t slices = image.channels() * in_geometry.size_xyz[2];
  // A single large slice (a 2D raster) is resampled axis by axis: the slice pass would give it
  // one thread.
  const bool slice_pass_fits = slices >= 2 * io::worker_threads();
  if (!flips.is_identity() && (any_bspline || !slice_pass_fits)) {
    return resample_image(permute_axes(image, flips), size_xyz, options);
  }
  if (anything_to_do && !any_bspline && slice_pass_fits) {
    std::array<std::optional<AxisTaps>, 3> taps;
    for (int axis = 0; axis < 3; ++axis) {
      const std::int64_t n = in_geometry.size_xyz[axis], m = size_xyz[axis];
      if (n == m && !flip_xyz[axis]) continue;
      taps[axis] = interpolation_taps(n, m, n == m ? Interpolation::kNearest : options.interpolation_xyz[axis]);
      if (options.anti_alias && sigma[axis] > 0.0) taps[axis] = compose_taps(*taps[axis], gaussian_taps(n, sigma[axis]));
      if (flip_xyz[axis]) reverse_taps(*taps[axis], n);
    }
    Image out = Image::uninitialized(DType::kF32, image.channels(), out_geometry);
    out.metadata() = image.metadata();
    io::visit_dtype(image.dtype(), [&](auto zero) {
      using T = decltype(zero);
      resample_separable(image.data<T>(), out.data<float>(), image.channels(), in_geometry.size_xyz, size_xyz, taps);
    });
    return out;
  }
  Image out = Image::uninitialized(DType::kF32, image.channels(), out_geometry);
  out.metadata() = image.metadata();
  std::array<std::int64_t, 4> dims{image.channels(), in_geometry.size_xyz[2],
                                   in_geometry.size_xyz[1], in_geometry.size_xyz[0]};
  std::vector<int> axes;
  for (int axis : axis_order(in_geometry.size_xyz, size_xyz)) {
    if (in_geometry.size_xyz[axis] != size_xyz[axis]) axes.push_back(axis);
  }
  if (axes.empty() || any_bspline) {
    // The B-spline prefilter works in place on floats, so start from a float copy.
    io::UninitializedVector<float> data = to_float(image);
    for (int axis : axes) {
      const std::int64_t n = in_geometry.size_xyz[axis], m = size_xyz[axis];
      const AxisView view = view_along(dims, axis);
      const Interpolation interpolation = options.interpolation_xyz[axis];
      if (options.anti_alias && sigma[axis] > 0.0) {
        io::UninitializedVector<float> blurred(data.size());
        apply_taps(data.data(), blurred.data(), view, gaussian_taps(n, sigma[axis]));
        data.swap(blurred);
      }
      if (interpolation == Interpolation::kBSpline) bspline_prefilter(data, view);
      io::UninitializedVector<float> next(static_cast<std::size_t>(view.outer * m * view.inner));
      apply_taps(data.data(), next.data(), view, interpolation_taps(n, m, interpolation));
      data.swap(next);
      dims[3 - axis] = m;
    }
    std::copy(data.begin(), data.end(), out.data<float>());
    return out;
  }
  // Linear and nearest on few slices: one pass per axis with smoothing folded into the taps,
  // reading the stored type directly and writing the last pass straight into the result.
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    io::UninitializedVector<float> current, next;
    for (std::size_t step = 0; step < axes.size(); ++step) {
      const int axis = axes[step];
      const std::int64_t n = in_geometry.size_xyz[axis], m = size_xyz[axis];
      const AxisView view = view_along(dims, axis);
      AxisTaps taps = interpolation_taps(n, m, options.interpolation_xyz[axis]);
      if (options.anti_alias && sigma[axis] > 0.0) taps = compose_taps(taps, gaussian_taps(n, sigma[axis]));
      const bool last = step + 1 == axes.size();
      if (!last) next.resize(static_cast<std::size_t>(view.outer * m * view.inner));
      float* destination = last ? out.data<float>() : next.data();
      if (step == 0) apply_taps(image.data<T>(), destination, view, taps);
      else apply_taps(current.data(), destination, view, taps);
      current.swap(next);
      dims[3 - axis] = m;
    }
  });
  return out;
}

Image resample_labels(const Image& labels, const SizeXyz& size_xyz,
                      LabelInterpolation interpolation) {
  check_size(size_xyz);
  const io::Geometry& in_geometry = labels.geometry();
  Image out = Image::uninitialized(labels.dtype(), labels.channels(), resized_geometry(in_geometry, size_xyz));
  out.metadata() = labels.metadata();
  if (interpolation == LabelInterpolation::kNearest) {
    io::visit_dtype(labels.dtype(), [&](auto zero) {
      using T = decltype(zero);
      std::vector<T> data(labels.data<T>(), labels.data<T>() + labels.element_count());
      std::array<std::int64_t, 4> dims{labels.channels(), in_geometry.size_xyz[2],
                                       in_geometry.size_xyz[1], in_geometry.size_xyz[0]};
      for (int axis = 0; axis < 3; ++axis) {
        const std::int64_t n = in_geometry.size_xyz[axis];
        const std::int64_t m = size_xyz[axis];
        if (n == m) continue;
        const AxisView view = view_along(dims, axis);
        std::vector<T> next(static_cast<std::size_t>(view.outer * m * view.inner));
        apply_taps(data.data(), next.data(), view, interpolation_taps(n, m, Interpolation::kNearest));
        data.swap(next);
        dims[3 - axis] = m;
      }
      std::copy(data.begin(), data.end(), out.data<T>());
    });
    return out;
  }

  // Per-label linear: one indicator volume at a time, keeping the best-scoring label per voxel.
  std::set<double> label_values;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) label_values.insert(labels.value_at(i));
  if (label_values.size() > 1024) {
    throw Error("resample_labels: " + std::to_string(label_values.size()) +
                " distinct values; per-label interpolation is for label maps, not intensities");
  }
  const std::int64_t count = out.element_count();
  std::vector<float> best_score(count, -1.0f);
  std::vector<double> best_label(count, 0.0);
  ResampleOptions linear;
  linear.anti_alias = false;
  for (double value : label_values) {
    Image indicator(DType::kF32, labels.channels(), in_geometry);
    float* mask = indicator.data<float>();
    for (std::int64_t i = 0; i < labels.element_count(); ++i) {
      mask[i] = labels.value_at(i) == value ? 1.0f : 0.0f;
    }
    const Image score = resample_image(indicator, size_xyz, linear);
    const float* s = score.data<float>();
    for (std::int64_t i = 0; i < count; ++i) {
      if (s[i] > best_score[i]) {
        best_score[i] = s[i];
        best_label[i] = value;
      }
    }
  }
  io::visit_dtype(labels.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* destination = out.data<T>();
    for (std::int64_t i = 0; i < count; ++i) destination[i] = static_cast<T>(best_label[i]);
  });
  return out;
}

}  // namespace graft::preprocess
