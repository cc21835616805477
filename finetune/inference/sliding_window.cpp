#include "finetune/inference/sliding_window.h"

#include <cmath>

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
  const auto z_starts = window_starts(size[0], patch[0], options.overlap_fraction);
  const auto y_starts = window_starts(size[1], patch[1], options.overlap_fraction);
  const auto x_starts = window_starts(size[2], patch[2], options.overlap_fraction);
  const std::int64_t total_windows = static_cast<std::int64_t>(z_starts.size() * y_starts.size() * x_starts.size());

  SlidingWindowResult result{io::Image::uninitialized(io::DType::kU8, 1, image.geometry()), std::nullopt};
  result.labels.metadata().source_format = image.metadata().source_format;
  if (options.keep_probabilities) {
    result.probabilities = io::Image::uninitialized(io::DType::kF32, classes, image.geometry());
  }
  std::uint8_t* labels = result.labels.data<std::uint8_t>();

  // Class scores and weights for planes [pending_begin, pending_begin + pending depth).
  std::int64_t pending_begin = 0;
  torch::Tensor scores, weights;
  auto finalize = [&](std::int64_t begin, std::int64_t end) {  // planes [begin, end) are done
    if (end <= begin) return;
    const torch::Tensor s = scores.narrow(1, begin - pending_begin, end - begin);
    const torch::Tensor w = weights.narrow(0, begin - pending_begin, end - begin);
    const torch::Tensor probabilities = (s / w.unsqueeze(0)).contiguous();
    const auto labels_on_device = torch::TensorOptions().device(device).dtype(torch::kUInt8);
    // A running maximum over classes: LibTorch 1.13's argmax over the leading dimension walks the
    // tensor element by element and is orders of magnitude slower.
    torch::Tensor best = probabilities[0].clone();
    torch::Tensor argmax = torch::zeros(best.sizes(), labels_on_device);
    for (std::int64_t c = 1; c < classes; ++c) {
      const torch::Tensor better = probabilities[c] > best;
      argmax.masked_fill_(better, static_cast<std::uint8_t>(c));
      best = torch::maximum(best, probabilities[c]);
    }
    const std::int64_t plane = size[1] * size[2];
    argmax = argmax.cpu();
    std::memcpy(labels + begin * plane, argmax.data_ptr<std::uint8_t>(), (end - begin) * plane);
    if (result.probabilities) {
      const torch::Tensor p = probabilities.cpu().contiguous();
      for (std::int64_t c = 0; c < classes; ++c) {
        std::memcpy(result.probabilities->data<float>() + (c * size[0] + begin) * plane,
                    p[c].data_ptr<float>(), (end - begin) * plane * sizeof(float));
      }
    }
  };

  torch::NoGradGuard no_grad;
  model.eval();
  std::int64_t done = 0;
  // Every slab visits the same in-plane windows.
  std::vector<std::array<std::int64_t, 2>> windows;
  for (std::int64_t y0 : y_starts)
    for (std::int64_t x0 : x_starts) windows.push_back({y0, x0});
  for (std::size_t k = 0; k < z_starts.size(); ++k) {
    const std::int64_t z0 = z_starts[k];
    const std::int64_t depth = std::min(patch[0], size[0] - z0);
    if (k == 0) {
      scores = torch::zeros({classes, depth, size[1], size[2]}, on_device);
      weights = torch::zeros({depth, size[1], size[2]}, on_device);
      pending_begin = z0;
    } else {
      finalize(pending_begin, z0);
      // Carry the planes that this slab shares with the previous ones.
      const std::int64_t keep = pending_begin + weights.size(0) - z0;
      torch::Tensor next_scores = torch::zeros({classes, depth, size[1], size[2]}, on_device);
      torch::Tensor next_weights = torch::zeros({depth, size[1], size[2]}, on_device);
      if (keep > 0) {
        next_scores.narrow(1, 0, keep).copy_(scores.narrow(1, z0 - pending_begin, keep));
        next_weights.narrow(0, 0, keep).copy_(weights.narrow(0, z0 - pending_begin, keep));
      }
      scores = next_scores;
      weights = next_weights;
      pending_begin = z0;
    }
    for (std::size_t w = 0; w < windows.size(); w += options.windows_per_batch) {
      const std::size_t count = std::min<std::size_t>(options.windows_per_batch, windows.size() - w);
      torch::Tensor batch = torch::zeros({static_cast<std::int64_t>(count), channels, patch[0], patch[1], patch[2]},
                                         volume.options());
      for (std::size_t i = 0; i < count; ++i) {
        const auto [y0, x0] = windows[w + i];
        const std::int64_t dy = std::min(patch[1], size[1] - y0), dx = std::min(patch[2], size[2] - x0);
        batch[static_cast<std::int64_t>(i)].narrow(1, 0, depth).narrow(2, 0, dy).narrow(3, 0, dx).copy_(
            volume.narrow(1, z0, depth).narrow(2, y0, dy).narrow(3, x0, dx));
      }
      batch = to_device(batch, device);
      // Class scores accumulate in fp32 whatever precision the forward pass ran at.
      auto probabilities_of = [&](const torch::Tensor& input) {
        AutocastScope autocast(device, options.precision);
        return torch::softmax(model.forward(input).to(torch::kFloat32), 1);
      };
      torch::Tensor probabilities = probabilities_of(batch);
      if (options.mirror) {
        int flips = 1;
        for (int mask = 1; mask < 8; ++mask) {
          std::vector<int64_t> dims;
          for (int a = 0; a < 3; ++a) if (mask & (1 << a)) dims.push_back(2 + a);
          probabilities += probabilities_of(batch.flip(dims)).flip(dims);
          ++flips;
        }
        probabilities /= flips;
      }
      for (std::size_t i = 0; i < count; ++i) {
        const auto [y0, x0] = windows[w + i];
        const std::int64_t dy = std::min(patch[1], size[1] - y0), dx = std::min(patch[2], size[2] - x0);
        const torch::Tensor weight = importance.narrow(0, 0, depth).narrow(1, 0, dy).narrow(2, 0, dx);
        scores.narrow(2, y0, dy).narrow(3, x0, dx) +=
            probabilities[static_cast<std::int64_t>(i)].narrow(1, 0, depth).narrow(2, 0, dy).narrow(3, 0, dx) * weight;
        weights.narrow(1, y0, dy).narrow(2, x0, dx) += weight;
      }
      done += static_cast<std::int64_t>(count);
      if (options.progress) options.progress(static_cast<double>(done) / total_windows);
    }
  }
  finalize(pending_begin, pending_begin + weights.size(0));
  return result;
}

}  // namespace graft::finetune
