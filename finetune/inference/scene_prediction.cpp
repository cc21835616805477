#include "finetune/inference/scene_prediction.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "datasets/image_tensor.h"
#include "finetune/device.h"
#include "io/error.h"
#include "io/raster/raster_windows.h"

namespace graft::finetune {
namespace {

constexpr std::uint8_t kNodataLabel = 255;

// nnU-Net's blending weight: a Gaussian centred on the tile, sigma 1/8 of its size, scaled to a
// peak of 1, with zeros raised to the smallest positive weight so every pixel counts.
torch::Tensor gaussian_weight(std::int64_t height, std::int64_t width) {
  auto axis = [](std::int64_t size) {
    const torch::Tensor position = torch::arange(size, torch::kFloat32) - (size - 1) / 2.0;
    const double sigma = std::max(1.0, size / 8.0);
    return torch::exp(-0.5 * (position / sigma).pow(2));
  };
  torch::Tensor weight = axis(height).unsqueeze(1) * axis(width).unsqueeze(0);
  weight = weight / weight.max();
  const float smallest = weight.masked_select(weight > 0).min().item<float>();
  return weight.clamp_min(smallest);
}

// Marks pixels of `tile` where any band holds its nodata value.
torch::Tensor nodata_mask(const io::Image& tile, const std::vector<io::GdalBand>& bands,
                          const std::vector<int>& band_numbers) {
  const auto& size = tile.geometry().size_xyz;
  torch::Tensor mask = torch::zeros({size[1], size[0]}, torch::kBool);
  const torch::Tensor values = datasets::image_to_tensor(tile).to(torch::kFloat64).squeeze(1);  // (C, H, W)
  for (std::int64_t c = 0; c < tile.channels(); ++c) {
    const auto& nodata = bands[band_numbers.empty() ? c : band_numbers[c] - 1].nodata;
    if (!nodata) continue;
    mask |= std::isnan(*nodata) ? values[c].isnan() : values[c] == *nodata;
  }
  return mask;
}

}  // namespace

ScenePredictStats predict_scene(SegmentationModelImpl& model, const preprocess::Contract& contract,
                                const preprocess::PlanOptions& plan_options, const std::string& input,
                                const std::string& output, const ScenePredictOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (model.backbone().spatial_dims() != 2) throw Error(input + ": whole-scene prediction needs a 2D model");
  const io::GdalRasterInfo info = io::read_gdal_info(input);
  if (!info.geotransform) throw Error(input + ": the raster has no geotransform to write the prediction on");
  const std::int64_t width = info.width, height = info.height;
  const std::int64_t tile_w = std::min(options.tile_px, width), tile_h = std::min(options.tile_px, height);
  const std::int64_t overlap = static_cast<std::int64_t>(std::llround(options.overlap_fraction * options.tile_px));
  if (options.overlap_fraction < 0 || options.overlap_fraction >= 1) {
    throw UsageError("overlap must be in [0, 1) (got " + std::to_string(options.overlap_fraction) + ")");
  }
  const std::vector<io::PixelWindow> windows = io::grid_windows(width, height, options.tile_px, overlap);
  const torch::Tensor weight = gaussian_weight(tile_h, tile_w);
  const int classes = model.classes();

  io::RasterLayout layout;
  layout.width = width;
  layout.height = height;
  layout.bands = 1;
  layout.dtype = io::DType::kU8;
  layout.geotransform = *info.geotransform;
  layout.crs_wkt = info.crs_wkt;
  layout.nodata = kNodataLabel;
  layout.band_names = {"class"};
  io::GdalRasterWriter writer(output, layout, options.write);

  // Rows [base, base + tile_h) of the scene: blended probabilities, their weights, nodata.
  torch::Tensor probability_sum = torch::zeros({classes, tile_h, width});
  torch::Tensor weight_sum = torch::zeros({tile_h, width});
  torch::Tensor nodata = torch::zeros({tile_h, width}, torch::kBool);
  ScenePredictStats stats;
  torch::NoGradGuard no_grad;
  model.eval();

  std::size_t next = 0;
  while (next < windows.size()) {
    const std::int64_t base = windows[next].y;
    std::size_t strip_end = next;
    while (strip_end < windows.size() && windows[strip_end].y == base) ++strip_end;
    for (std::size_t first = next; first < strip_end; first += options.tiles_per_batch) {
      const std::size_t last = std::min<std::size_t>(strip_end, first + options.tiles_per_batch);
      std::vector<torch::Tensor> batch;
      for (std::size_t w = first; w < last; ++w) {
        io::GdalReadOptions read;
        read.window = windows[w];
        const io::Image tile = io::read_gdal(input, read);
        nodata.narrow(1, windows[w].x, tile_w) |= nodata_mask(tile, info.bands, read.bands);
        const preprocess::Plan plan = preprocess::make_plan(contract, tile, plan_options);
        batch.push_back(datasets::image_to_tensor(preprocess::apply(plan, tile)));
      }
      const torch::Tensor probabilities =
          torch::softmax(to_host_float(model.forward(to_device(torch::stack(batch), device_of(model)))), 1).squeeze(2);
      for (std::size_t w = first; w < last; ++w) {
        const torch::Tensor p = probabilities[static_cast<std::int64_t>(w - first)];
        probability_sum.narrow(2, windows[w].x, tile_w) += p * weight;
        weight_sum.narrow(1, windows[w].x, tile_w) += weight;
      }
      stats.tiles += static_cast<std::int64_t>(last - first);
      if (options.progress) options.progress(static_cast<double>(stats.tiles) / windows.size());
    }
    // Rows above the next strip's start receive nothing more: label and write them, then move up.
    const std::int64_t done_rows = (strip_end < windows.size() ? windows[strip_end].y : height) - base;
    torch::Tensor labels = (probability_sum.narrow(1, 0, done_rows) / weight_sum.narrow(0, 0, done_rows))
                               .argmax(0)
                               .to(torch::kUInt8);
    const torch::Tensor done_nodata = nodata.narrow(0, 0, done_rows);
    labels.masked_fill_(done_nodata, kNodataLabel);
    stats.nodata_pixels += done_nodata.sum().item<std::int64_t>();
    io::Geometry strip_grid = io::geometry_from_geotransform(
        io::window_geotransform(*info.geotransform, {0, base, width, done_rows}), width, done_rows, info.crs_wkt);
    writer.write(datasets::tensor_to_image(labels.unsqueeze(0).unsqueeze(0).contiguous(), strip_grid), 0, base);
    const std::int64_t kept = tile_h - done_rows;
    for (torch::Tensor* buffer : {&probability_sum, &weight_sum, &nodata}) {
      const int row_axis = buffer->dim() == 3 ? 1 : 0;
      if (kept > 0) buffer->narrow(row_axis, 0, kept).copy_(buffer->narrow(row_axis, done_rows, kept).clone());
      buffer->narrow(row_axis, kept, done_rows).zero_();
    }
    next = strip_end;
  }
  writer.finish();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return stats;
}

}  // namespace graft::finetune
