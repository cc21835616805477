#include "finetune/inference/sliding_window.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/error.h"

namespace graft::finetune {
namespace {

torch::Tensor gaussian_importance(const std::array<std::int64_t, 3>& patch_zyx, torch::Device device) {
  std::vector<torch::Tensor> axes;
  for (int a = 0; a < 3; ++a) {
    const double sigma = patch_zyx[a] / 8.0;
    const torch::Tensor position = torch::arange(patch_zyx[a], torch::kFloat64) - (patch_zyx[a] - 1) / 2.0;
    axes.push_back(torch::exp(-0.5 * (position / sigma).pow(2)));
  }
  torch::Tensor map = axes[0].view({-1, 1, 1}) * axes[1].view({1, -1, 1}) * axes[2].view({1, 1, -1});
  map = map / map.max();
  // Zero weights would leave voxels undefined; nnU-Net lifts them to the smallest positive value.
  return map.clamp_min(map.masked_select(map > 0).min().item<double>()).to(device, torch::kFloat32);
}

// A run of consecutive planes along the slab axis, and where it sits in the ring buffer.
struct RingPiece {
  std::int64_t plane;     // first plane, in volume coordinates
  std::int64_t position;  // first plane's position in the ring
  std::int64_t count;
};

// Planes [begin, end) of the slab axis as at most two runs that are contiguous in a ring of
// `depth` planes, where plane p sits at position p mod depth.
std::vector<RingPiece> ring_pieces(std::int64_t begin, std::int64_t end, std::int64_t depth) {
  std::vector<RingPiece> pieces;
  for (std::int64_t plane = begin; plane < end;) {
    const std::int64_t position = plane % depth;
    const std::int64_t count = std::min(end - plane, depth - position);
    pieces.push_back({plane, position, count});
    plane += count;
  }
  return pieces;
}

int slab_axis(const std::array<std::size_t, 3>& window_counts_zyx) {
  int axis = 0;
  for (int a = 1; a < 3; ++a) {
    if (window_counts_zyx[a] > window_counts_zyx[axis]) axis = a;
  }
  return axis;
}


// LibTorch's linear upsampling taps along one axis (align_corners false, output size given): the
// two source indices and the second one's weight for every output index.
struct AxisTaps {
  std::vector<std::int32_t> low, high;  // 32-bit, so that AVX2 gathers 8 at a time
  std::vector<float> high_weight;
};

AxisTaps linear_taps(std::int64_t input_size, std::int64_t output_size) {
  AxisTaps taps;
  const float scale = static_cast<float>(input_size) / static_cast<float>(output_size);
  for (std::int64_t o = 0; o < output_size; ++o) {
    if (input_size == output_size) {
      taps.low.push_back(static_cast<std::int32_t>(o));
      taps.high.push_back(static_cast<std::int32_t>(o));
      taps.high_weight.push_back(0.0f);
      continue;
    }
    const float source = std::max(0.0f, scale * (static_cast<float>(o) + 0.5f) - 0.5f);
    const auto low = static_cast<std::int32_t>(source);
    taps.low.push_back(low);
    taps.high.push_back(low + (low < input_size - 1 ? 1 : 0));
    taps.high_weight.push_back(std::clamp(source - static_cast<float>(low), 0.0f, 1.0f));
  }
  return taps;
}

// exp(x) for x <= 0, to 1.1e-7 relative, in operations a compiler vectorises: no float-to-int
// conversion or comparison of floats, which may trap and so keep a loop scalar. x = n ln 2 + r with
// n whole (rounded by adding 1.5 * 2^23, which leaves n in the low bits) and |r| <= ln 2 / 2; 2^n is
// built in the exponent bits (0 below 2^-126), e^r from its Taylor series.
inline float exp_nonpositive(float x) {
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  std::int32_t shifted_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof(shifted_bits));
  const std::int32_t exponent = shifted_bits - 0x4B400000;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;  // ln 2 in two parts
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = ((exponent + 127) << 23) & -static_cast<std::int32_t>(exponent > -127);
  float power;
  std::memcpy(&power, &bits, sizeof(power));
  return p * power;
}

// Columns [local, local + count) of a window row land at ring offsets [ring, ring + count).
struct ColumnRun {
  std::int64_t local, ring, count;
};

// Where one window lands in the ring of pending class scores: element offsets of its planes and
// rows, its columns as at most two contiguous runs (the slab axis wraps around the ring), and the
// ring's class stride.
struct RingPlacement {
  std::vector<std::int64_t> z, y;
  std::vector<ColumnRun> x;
  std::int64_t class_stride = 0;
};

// One window's logits, upsampled along x already (classes, coarse z, coarse y, patch x), and where
// its scores go.
struct WindowScores {
  const float* widened;
  std::int64_t classes;
  std::array<std::int64_t, 3> coarse_zyx, patch_zyx, extent;
  AxisTaps tz, ty;
  const float* gaussian;  // patch_zyx
  float scale;
  const RingPlacement* place;
  float* ring;
};

// Coarse rows [begin, end) (row = (c * coarse z + z) * coarse y + y) upsampled along x.
__attribute__((target_clones("avx2", "default")))
void widen_rows(const float* coarse, std::int64_t coarse_width, const AxisTaps& tx, std::int64_t width,
                float* widened, std::int64_t begin, std::int64_t end) {
  const std::int32_t* low = tx.low.data();
  const std::int32_t* high = tx.high.data();
  const float* weight = tx.high_weight.data();
  for (std::int64_t row = begin; row < end; ++row) {
    const float* in = coarse + row * coarse_width;
    float* out = widened + row * width;
    for (std::int64_t x = 0; x < width; ++x) out[x] = (1 - weight[x]) * in[low[x]] + weight[x] * in[high[x]];
  }
}

// Rows [begin, end) (row = z * extent[1] + y) of the window: each row's classes are upsampled into
// a classes x row scratch, softmaxed and added to the ring in one pass, instead of materialising
// the upsampled logits and their softmax, hundreds of megabytes a batch with 100+ classes.
__attribute__((target_clones("avx2", "default")))
void accumulate_rows(const WindowScores& job, std::int64_t begin, std::int64_t end) {
  const std::int64_t classes = job.classes, width = job.extent[2], patch_width = job.patch_zyx[2];
  const std::int64_t coarse_plane = job.coarse_zyx[1] * patch_width, coarse_class = job.coarse_zyx[0] * coarse_plane;
  std::vector<float> values(static_cast<std::size_t>(classes * width));
  std::vector<float> largest(static_cast<std::size_t>(width)), factor(static_cast<std::size_t>(width));
  for (std::int64_t row = begin; row < end; ++row) {
    const std::int64_t z = row / job.extent[1], y = row % job.extent[1];
    const float wz = job.tz.high_weight[z], wy = job.ty.high_weight[y];
    const float w00 = (1 - wz) * (1 - wy), w01 = (1 - wz) * wy, w10 = wz * (1 - wy), w11 = wz * wy;
    const float* r00 = job.widened + job.tz.low[z] * coarse_plane + job.ty.low[y] * patch_width;
    const float* r01 = job.widened + job.tz.low[z] * coarse_plane + job.ty.high[y] * patch_width;
    const float* r10 = job.widened + job.tz.high[z] * coarse_plane + job.ty.low[y] * patch_width;
    const float* r11 = job.widened + job.tz.high[z] * coarse_plane + job.ty.high[y] * patch_width;
    for (std::int64_t c = 0; c < classes; ++c) {
      const std::int64_t o = c * coarse_class;
      float* __restrict v = values.data() + c * width;
      for (std::int64_t x = 0; x < width; ++x) {
        v[x] = w00 * r00[o + x] + w01 * r01[o + x] + w10 * r10[o + x] + w11 * r11[o + x];
      }
    }
    std::copy(values.begin(), values.begin() + width, largest.begin());
    float* __restrict top = largest.data();
    float* __restrict sum = factor.data();
    for (std::int64_t c = 1; c < classes; ++c) {
      const float* __restrict v = values.data() + c * width;
      for (std::int64_t x = 0; x < width; ++x) top[x] = v[x] > top[x] ? v[x] : top[x];
    }
    std::fill(factor.begin(), factor.end(), 0.0f);
    for (std::int64_t c = 0; c < classes; ++c) {
      float* __restrict v = values.data() + c * width;
      for (std::int64_t x = 0; x < width; ++x) {
        const float e = exp_nonpositive(v[x] - top[x]);
        v[x] = e;
        sum[x] += e;
      }
    }
    const float* __restrict g = job.gaussian + (z * job.patch_zyx[1] + y) * job.patch_zyx[2];
    for (std::int64_t x = 0; x < width; ++x) sum[x] = job.scale * g[x] / sum[x];
    float* ring_row = job.ring + job.place->z[z] + job.place->y[y];
    for (std::int64_t c = 0; c < classes; ++c) {
      for (const ColumnRun& run : job.place->x) {
        const float* __restrict v = values.data() + c * width + run.local;
        const float* __restrict f = factor.data() + run.local;
        float* __restrict out = ring_row + c * job.place->class_stride + run.ring;
          for (std::int64_t x = 0; x < run.count; ++x) out[x] += v[x] * f[x];
      }
    }
  }
}

// Adds `scale` x Gaussian x softmax over classes of the trilinearly upsampled coarse logits
// (classes, coarse_zyx) to the ring, for the window's first `extent` voxels of a patch_zyx patch.
void accumulate_window(const float* coarse, std::int64_t classes, const std::array<std::int64_t, 3>& coarse_zyx,
                       const std::array<std::int64_t, 3>& patch_zyx, const std::array<std::int64_t, 3>& extent,
                       const float* gaussian, float scale, const RingPlacement& place, float* ring) {
  // Along x first, at the coarse z and y: a window's logits a quarter of the upsampled size, and
  // each voxel then takes 4 contiguous values instead of 8 scattered ones.
  const std::int64_t coarse_rows = classes * coarse_zyx[0] * coarse_zyx[1];
  std::vector<float> widened(static_cast<std::size_t>(coarse_rows * patch_zyx[2]));
  const AxisTaps tx = linear_taps(coarse_zyx[2], patch_zyx[2]);
  at::parallel_for(0, coarse_rows, 16, [&](std::int64_t begin, std::int64_t end) {
    widen_rows(coarse, coarse_zyx[2], tx, patch_zyx[2], widened.data(), begin, end);
  });
  const WindowScores job{widened.data(), classes, coarse_zyx, patch_zyx, extent,
                         linear_taps(coarse_zyx[0], patch_zyx[0]), linear_taps(coarse_zyx[1], patch_zyx[1]),
                         gaussian, scale, &place, ring};
  // Rows write disjoint parts of the ring.
  at::parallel_for(0, extent[0] * extent[1], 1,
                   [&](std::int64_t begin, std::int64_t end) { accumulate_rows(job, begin, end); });
}

// Labels of `rows` x `width` voxels: the first class with the highest score. Scores of class c,
// row r, column x at scores[c * class_stride + r_a * score_stride[0] + r_b * score_stride[1] + x],
// with r = r_a * rows_b + r_b; labels likewise with label_stride.
struct ArgmaxRows {
  const float* scores;
  std::int64_t classes, class_stride, rows_b, width;
  std::array<std::int64_t, 2> score_stride, label_stride;
  std::uint8_t* labels;
};

__attribute__((target_clones("avx2", "default")))
void argmax_rows(const ArgmaxRows& job, std::int64_t begin, std::int64_t end) {
  std::vector<float> best(static_cast<std::size_t>(job.width));
  std::vector<std::int32_t> best_class(static_cast<std::size_t>(job.width));
  for (std::int64_t row = begin; row < end; ++row) {
    const std::int64_t a = row / job.rows_b, b = row % job.rows_b;
    const float* row_scores = job.scores + a * job.score_stride[0] + b * job.score_stride[1];
    std::copy(row_scores, row_scores + job.width, best.begin());
    std::fill(best_class.begin(), best_class.end(), 0);
    float* __restrict top = best.data();
    std::int32_t* __restrict top_class = best_class.data();
    for (std::int64_t c = 1; c < job.classes; ++c) {
      const float* __restrict v = row_scores + c * job.class_stride;
      const auto label = static_cast<std::int32_t>(c);
      for (std::int64_t x = 0; x < job.width; ++x) {
        const bool better = v[x] > top[x];
        top[x] = better ? v[x] : top[x];
        top_class[x] = better ? label : top_class[x];
      }
    }
    std::uint8_t* out = job.labels + a * job.label_stride[0] + b * job.label_stride[1];
    for (std::int64_t x = 0; x < job.width; ++x) out[x] = static_cast<std::uint8_t>(top_class[x]);
  }
}

}  // namespace

std::vector<std::int64_t> window_starts(std::int64_t n, std::int64_t p, double overlap_fraction) {
  if (n <= p) return {0};
  const double step = std::max(1.0, p * (1.0 - overlap_fraction));
  const auto count = static_cast<std::int64_t>(std::ceil((n - p) / step)) + 1;
  std::vector<std::int64_t> starts;
  for (std::int64_t i = 0; i < count; ++i) {
    starts.push_back(static_cast<std::int64_t>(std::llround(static_cast<double>(i) * (n - p) / (count - 1))));
  }
  return starts;
}

SlidingWindowResult predict_sliding_window(SegmentationModelImpl& model, const io::Image& image,
                                           const SlidingWindowOptions& options) {
  if (image.dtype() != io::DType::kF32) throw Error("sliding window: the image must be preprocessed (f32)");
  const auto& n = image.geometry().size_xyz;
  const std::array<std::int64_t, 3> size{n[2], n[1], n[0]};
  const std::array<std::int64_t, 3> patch{options.patch_xyz[2], options.patch_xyz[1], options.patch_xyz[0]};
  const std::int64_t channels = image.channels(), classes = model.classes();
  const torch::Device device = device_of(model);
  const auto on_device = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  torch::Tensor volume = torch::from_blob(const_cast<float*>(image.data<float>()),
                                          {channels, size[0], size[1], size[2]}, torch::kFloat32);
  if (device.is_cuda() && static_cast<std::int64_t>(image.byte_count()) <= options.device_volume_limit_bytes) {
    volume = to_device(volume, device);
  }
  const torch::Tensor importance = gaussian_importance(patch, device);
  std::array<std::vector<std::int64_t>, 3> starts;
  std::array<std::int64_t, 3> extent{};  // a window's extent, the patch clipped to the volume
  for (int a = 0; a < 3; ++a) {
    starts[a] = window_starts(size[a], patch[a], options.overlap_fraction);
    extent[a] = std::min(patch[a], size[a]);
  }
  // Windows go slab by slab along the axis with the most windows, so the planes still waiting for
  // a later window, a ring of one window's depth along that axis, are the fewest.
  const int axis = slab_axis({starts[0].size(), starts[1].size(), starts[2].size()});
  const int inner_a = axis == 0 ? 1 : 0, inner_b = axis == 2 ? 1 : 2;
  const std::int64_t ring_depth = extent[axis];
  const std::int64_t total_windows =
      static_cast<std::int64_t>(starts[0].size() * starts[1].size() * starts[2].size());

  SlidingWindowResult result{io::Image::uninitialized(io::DType::kU8, 1, image.geometry()), std::nullopt};
  result.labels.metadata().source_format = image.metadata().source_format;
  torch::Tensor probabilities_out;
  if (options.keep_probabilities) {
    result.probabilities = io::Image::uninitialized(io::DType::kF32, classes, image.geometry());
    probabilities_out = torch::from_blob(result.probabilities->data<float>(), {classes, size[0], size[1], size[2]},
                                         torch::kFloat32);
  }
  const torch::Tensor labels_out =
      torch::from_blob(result.labels.data<std::uint8_t>(), {size[0], size[1], size[2]}, torch::kUInt8);

  // Class scores and Gaussian weight sums of the pending planes; their scale cancels in the argmax.
  std::array<std::int64_t, 3> ring_size = size;
  ring_size[axis] = ring_depth;
  // Stored plane by plane and row by row, a row's classes side by side, so that a window row's
  // scores of every class lie within one stretch of memory; indexed (class, z, y, x).
  const torch::Tensor scores =
      torch::zeros({ring_size[0], ring_size[1], classes, ring_size[2]}, on_device).permute({2, 0, 1, 3});
  const torch::Tensor weights = torch::zeros({ring_size[0], ring_size[1], ring_size[2]}, on_device);

  // On the CPU each window's coarse logits are upsampled, softmaxed and added to the ring in one
  // pass (accumulate_window), and labels are taken from the ring in another (argmax_rows); on a
  // GPU LibTorch does those steps.
  const bool fused = device.is_cpu();
  // Planes [begin, end) along the slab axis are done: labels (and probabilities) out, ring reset.
  auto finalize = [&](std::int64_t begin, std::int64_t end) {
    for (const RingPiece& piece : ring_pieces(begin, end, ring_depth)) {
      const torch::Tensor s = scores.narrow(1 + axis, piece.position, piece.count);
      const torch::Tensor w = weights.narrow(axis, piece.position, piece.count);
      const torch::Tensor labels = labels_out.narrow(axis, piece.plane, piece.count);
      if (fused) {
        const ArgmaxRows job{s.data_ptr<float>(), classes, s.stride(0), s.size(2), s.size(3),
                             {s.stride(1), s.stride(2)}, {labels.stride(0), labels.stride(1)},
                             labels.data_ptr<std::uint8_t>()};
        at::parallel_for(0, s.size(1) * s.size(2), 1,
                         [&](std::int64_t first, std::int64_t last) { argmax_rows(job, first, last); });
      } else {
        // A running maximum over classes: LibTorch 1.13's argmax over the leading dimension walks
        // the tensor element by element and is orders of magnitude slower.
        torch::Tensor best = s[0].clone();
        torch::Tensor argmax = torch::zeros(best.sizes(), best.options().dtype(torch::kUInt8));
        torch::Tensor better = torch::empty(best.sizes(), best.options().dtype(torch::kBool));
        for (std::int64_t c = 1; c < classes; ++c) {
          torch::gt_out(better, s[c], best);
          argmax.masked_fill_(better, static_cast<std::uint8_t>(c));
          torch::maximum_out(best, best, s[c]);
        }
        labels.copy_(argmax);
      }
      if (probabilities_out.defined()) {
        for (std::int64_t c = 0; c < classes; ++c) {
          probabilities_out[c].narrow(axis, piece.plane, piece.count).copy_(s[c] / w);
        }
      }
      s.zero_();
      w.zero_();
    }
  };

  // On a GPU a batch's upsampled scores are whole windows of every class: keep a batch's to 256 MB.
  constexpr std::int64_t kBatchScoreBytes = std::int64_t{256} << 20;
  const std::int64_t window_score_bytes = classes * patch[0] * patch[1] * patch[2] * std::int64_t{4};
  // On a CPU, windows of a million voxels or more (nnU-Net's 128^3) go one at a time: a batch of
  // two holds twice the activations (about 1.5 GB more for a 3d_fullres network) and is no faster.
  constexpr std::int64_t kLargeWindowVoxels = std::int64_t{1} << 20;
  const std::int64_t cpu_batch = patch[0] * patch[1] * patch[2] >= kLargeWindowVoxels ? 1 : options.windows_per_batch;
  const auto windows_per_batch = static_cast<std::size_t>(std::max<std::int64_t>(
      1, std::min<std::int64_t>(options.windows_per_batch,
                                device.is_cpu() ? cpu_batch : kBatchScoreBytes / window_score_bytes)));

  torch::NoGradGuard no_grad;
  model.eval();
  std::int64_t done = 0;
  auto coarse_logits_of = [&](const torch::Tensor& input) {
    AutocastScope autocast(device, options.precision);
    // Class scores accumulate in fp32 whatever precision the forward pass ran at.
    return model.forward_before_upsampling(input).to(torch::kFloat32).contiguous();
  };
  auto region = [&](torch::Tensor t, int first_dim, const std::array<std::int64_t, 3>& origin,
                    const std::array<std::int64_t, 3>& length) {
    for (int a = 0; a < 3; ++a) t = t.narrow(first_dim + a, origin[a], length[a]);
    return t;
  };
  // Calls add(ring origin, window-local origin, length) for each part of a window that is
  // contiguous in the ring.
  auto for_each_ring_part = [&](const std::array<std::int64_t, 3>& origin, const auto& add) {
    for (const RingPiece& piece : ring_pieces(origin[axis], origin[axis] + extent[axis], ring_depth)) {
      std::array<std::int64_t, 3> at = origin, local{0, 0, 0}, length = extent;
      at[axis] = piece.position;
      local[axis] = piece.plane - origin[axis];
      length[axis] = piece.count;
      add(at, local, length);
    }
  };
  const std::array<std::int64_t, 3> ring_stride{scores.stride(1), scores.stride(2), scores.stride(3)};
  // Adds `scale` x one forward pass's window scores to the ring.
  auto add_scores = [&](const torch::Tensor& coarse, const std::vector<std::array<std::int64_t, 3>>& origins,
                        float scale) {
    for (std::size_t i = 0; i < origins.size(); ++i) {
      const torch::Tensor window_logits = coarse[static_cast<std::int64_t>(i)];
      if (fused) {
        RingPlacement place;
        place.class_stride = scores.stride(0);
        std::array<std::vector<std::int64_t>*, 2> offsets{&place.z, &place.y};
        for (int a = 0; a < 2; ++a) {
          for (std::int64_t l = 0; l < extent[a]; ++l) {
            const std::int64_t coordinate = origins[i][a] + l;
            offsets[a]->push_back((a == axis ? coordinate % ring_depth : coordinate) * ring_stride[a]);
          }
        }
        if (axis == 2) {
          for (const RingPiece& piece : ring_pieces(origins[i][2], origins[i][2] + extent[2], ring_depth)) {
            place.x.push_back({piece.plane - origins[i][2], piece.position, piece.count});
          }
        } else {
          place.x.push_back({0, origins[i][2], extent[2]});
        }
        accumulate_window(window_logits.data_ptr<float>(), classes,
                          {window_logits.size(1), window_logits.size(2), window_logits.size(3)}, patch, extent,
                          importance.data_ptr<float>(), scale, place, scores.data_ptr<float>());
        continue;
      }
      torch::Tensor logits = window_logits.unsqueeze(0);
      if (logits.sizes().slice(2) != torch::IntArrayRef(patch)) {
        namespace F = torch::nn::functional;
        logits = F::interpolate(logits, F::InterpolateFuncOptions().size(std::vector<std::int64_t>(patch.begin(), patch.end()))
                                            .mode(torch::kTrilinear).align_corners(false));
      }
      const torch::Tensor probabilities = torch::softmax(logits, 1)[0];
      for_each_ring_part(origins[i], [&](const auto& at, const auto& local, const auto& length) {
        region(scores, 1, at, length).addcmul_(region(probabilities, 1, local, length),
                                               region(importance, 0, local, length), scale);
      });
    }
  };
  // Every slab visits the same windows across the other two axes.
  std::vector<std::array<std::int64_t, 3>> slab_windows;
  for (std::int64_t a : starts[inner_a]) {
    for (std::int64_t b : starts[inner_b]) {
      std::array<std::int64_t, 3> origin{};
      origin[inner_a] = a;
      origin[inner_b] = b;
      slab_windows.push_back(origin);
    }
  }
  // Bit a of a flip mask reverses tensor dimension 2 + a (z, y, x), which is axis 2 - a of x y z.
  const auto flip_allowed = [&options](int mask) {
    if (!options.mirror) return mask == 0;
    for (int a = 0; a < 3; ++a) {
      if ((mask & (1 << a)) && !options.mirror_axes_xyz[2 - a]) return false;
    }
    return true;
  };
  int flips = 0;
  for (int mask = 0; mask < 8; ++mask) flips += flip_allowed(mask);
  std::int64_t finished_planes = 0;
  for (std::int64_t slab_start : starts[axis]) {
    // Planes before this slab get no more windows.
    finalize(finished_planes, slab_start);
    finished_planes = std::max(finished_planes, slab_start);
    for (std::size_t w = 0; w < slab_windows.size(); w += windows_per_batch) {
      const std::size_t count = std::min(windows_per_batch, slab_windows.size() - w);
      std::vector<std::array<std::int64_t, 3>> origins(slab_windows.begin() + w, slab_windows.begin() + w + count);
      for (auto& origin : origins) origin[axis] = slab_start;
      // Windows larger than the volume are zero-padded at the far end.
      torch::Tensor batch = torch::zeros({static_cast<std::int64_t>(count), channels, patch[0], patch[1], patch[2]},
                                         volume.options());
      for (std::size_t i = 0; i < count; ++i) {
        region(batch[static_cast<std::int64_t>(i)], 1, {0, 0, 0}, extent).copy_(region(volume, 1, origins[i], extent));
      }
      batch = to_device(batch, device);
      // Mirroring averages the flips' probabilities; flipping the coarse logits back commutes with
      // the upsampling, whose taps are symmetric.
      for (int mask = 0; mask < 8; ++mask) {
        if (!flip_allowed(mask)) continue;
        std::vector<int64_t> dims;
        for (int a = 0; a < 3; ++a) if (mask & (1 << a)) dims.push_back(2 + a);
        const torch::Tensor coarse = dims.empty() ? coarse_logits_of(batch)
                                                  : coarse_logits_of(batch.flip(dims)).flip(dims).contiguous();
        add_scores(coarse, origins, 1.0f / static_cast<float>(flips));
      }
      for (const auto& origin : origins) {
        for_each_ring_part(origin, [&](const auto& at, const auto& local, const auto& length) {
          region(weights, 0, at, length).add_(region(importance, 0, local, length));
        });
      }
      done += static_cast<std::int64_t>(count);
      if (options.progress) options.progress(static_cast<double>(done) / total_windows);
    }
  }
  finalize(finished_planes, size[axis]);
  return result;
}

}  // namespace graft::finetune
