#include "finetune/tasks/detection/detection_model.h"

#include <cmath>
#include <limits>
#include <map>

#include "backbones/resnet_blocks.h"
#include "finetune/tasks/detection/detection_metrics.h"
#include "finetune/device.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

// The 2D or 3D layers a head needs, the backbones' own.
template <int Dims>
using Layers = backbones::resnet::Layers<Dims>;

template <int Dims>
typename Layers<Dims>::Conv conv(std::int64_t in, std::int64_t out, std::int64_t kernel) {
  using L = Layers<Dims>;
  return typename L::Conv(typename L::ConvOptions(in, out, kernel).padding(kernel / 2));
}

template <int Dims>
nn::Sequential tower(std::int64_t channels) {
  nn::Sequential layers;
  for (int i = 0; i < 2; ++i) {
    layers->push_back(conv<Dims>(channels, channels, 3));
    layers->push_back(nn::GroupNorm(nn::GroupNormOptions(std::min<std::int64_t>(16, channels), channels)));
    layers->push_back(nn::ReLU(nn::ReLUOptions(true)));
  }
  return layers;
}

// FPN over the backbone's levels of stride 4 and more (features of one stride are concatenated),
// then FCOS's head, shared by every level, with a learned scale per level on the distances.
template <int Dims>
class FcosHeadImpl : public nn::Module {
 public:
  FcosHeadImpl(const std::vector<backbones::FeatureInfo>& info, int classes, std::int64_t channels) {
    std::map<std::int64_t, std::vector<int>> by_stride;
    for (std::size_t i = 0; i < info.size(); ++i) by_stride[info[i].stride].push_back(static_cast<int>(i));
    const std::int64_t finest_used = by_stride.lower_bound(4) != by_stride.end() ? by_stride.lower_bound(4)->first
                                                                                : by_stride.rbegin()->first;
    for (const auto& [stride, indices] : by_stride) {
      if (stride < finest_used) continue;
      std::int64_t in = 0;
      for (int index : indices) in += info[index].channels;
      const int level = static_cast<int>(strides_.size());
      lateral_.push_back(register_module("lateral" + std::to_string(level), conv<Dims>(in, channels, 1)));
      output_.push_back(register_module("output" + std::to_string(level), conv<Dims>(channels, channels, 3)));
      groups_.push_back(indices);
      strides_.push_back(stride);
    }
    scales_ = register_parameter("scales", torch::ones({static_cast<std::int64_t>(strides_.size())}));
    class_tower_ = register_module("class_tower", tower<Dims>(channels));
    box_tower_ = register_module("box_tower", tower<Dims>(channels));
    class_logits_ = register_module("class_logits", conv<Dims>(channels, classes, 3));
    distances_ = register_module("distances", conv<Dims>(channels, 2 * Dims, 3));
    centreness_ = register_module("centreness", conv<Dims>(channels, 1, 3));
    // RetinaNet's prior: every location starts at p(object) = 0.01, so the focal loss of the
    // many background locations does not swamp the first steps.
    torch::NoGradGuard no_grad;
    class_logits_->bias.fill_(-std::log((1 - 0.01) / 0.01));
  }

  DetectionOutput forward(const std::vector<torch::Tensor>& features) {
    std::vector<torch::Tensor> levels;
    for (std::size_t k = 0; k < groups_.size(); ++k) {
      std::vector<torch::Tensor> parts;
      for (int index : groups_[k]) parts.push_back(features[index]);
      levels.push_back(lateral_[k]->forward(parts.size() == 1 ? parts[0] : torch::cat(parts, 1)));
    }
    for (std::size_t k = levels.size(); k-- > 1;) {
      const auto size = levels[k - 1].sizes().slice(2).vec();
      levels[k - 1] = levels[k - 1] + F::interpolate(levels[k], F::InterpolateFuncOptions().size(size).mode(torch::kNearest));
    }
    DetectionOutput out;
    for (std::size_t k = 0; k < levels.size(); ++k) {
      const torch::Tensor p = output_[k]->forward(levels[k]);
      const torch::Tensor classes = class_tower_->forward(p), boxes = box_tower_->forward(p);
      out.class_logits.push_back(class_logits_->forward(classes));
      // Distances in strides, exp(scale * x) as in FCOS's first version: they start at one stride
      // and stay positive. (The later ReLU form starts at zero, where a 3D box's intersection,
      // a product of three zero factors, gives GIoU no gradient.)
      const torch::Tensor log_distance = (distances_->forward(boxes) * scales_[static_cast<std::int64_t>(k)]).clamp_max(8.0);
      out.distances.push_back(torch::exp(log_distance) * static_cast<double>(strides_[k]));
      out.centreness.push_back(centreness_->forward(boxes));
      out.strides.push_back(strides_[k]);
    }
    return out;
  }

 private:
  std::vector<typename Layers<Dims>::Conv> lateral_, output_;
  std::vector<std::vector<int>> groups_;
  std::vector<std::int64_t> strides_;
  torch::Tensor scales_;
  nn::Sequential class_tower_{nullptr}, box_tower_{nullptr};
  typename Layers<Dims>::Conv class_logits_{nullptr}, distances_{nullptr}, centreness_{nullptr};
};

// Location centres of a level in input index space, one row per location (tensor axis order).
torch::Tensor location_centres(torch::IntArrayRef spatial, std::int64_t stride) {
  std::vector<torch::Tensor> axes;
  for (const std::int64_t length : spatial) {
    axes.push_back(torch::arange(length, torch::kFloat32) * static_cast<double>(stride) + (stride - 1) / 2.0);
  }
  const auto grids = torch::meshgrid(axes, "ij");
  std::vector<torch::Tensor> flat;
  for (const auto& g : grids) flat.push_back(g.reshape({-1}));
  return torch::stack(flat, 1);  // (N, dims)
}

// Box faces in tensor axis order (z, y, x or y, x): (G, dims) starts and ends.
std::pair<torch::Tensor, torch::Tensor> faces(const std::vector<io::Box>& boxes, int dims) {
  torch::Tensor starts = torch::empty({static_cast<std::int64_t>(boxes.size()), dims});
  torch::Tensor ends = torch::empty_like(starts);
  for (std::size_t g = 0; g < boxes.size(); ++g) {
    for (int a = 0; a < dims; ++a) {
      const int box_axis = dims - 1 - a;
      starts[g][a] = boxes[g].start_xyz[box_axis];
      ends[g][a] = boxes[g].end_xyz[box_axis];
    }
  }
  return {starts, ends};
}

// (N, 2 * dims) distances, (start..., end...) per row, as boxes around the origin: 1 - GIoU.
torch::Tensor giou_loss(const torch::Tensor& predicted, const torch::Tensor& target, int dims) {
  const torch::Tensor p_lo = predicted.narrow(1, 0, dims), p_hi = predicted.narrow(1, dims, dims);
  const torch::Tensor t_lo = target.narrow(1, 0, dims), t_hi = target.narrow(1, dims, dims);
  const torch::Tensor intersection = (torch::min(p_lo, t_lo) + torch::min(p_hi, t_hi)).prod(1);
  const torch::Tensor p_volume = (p_lo + p_hi).prod(1), t_volume = (t_lo + t_hi).prod(1);
  const torch::Tensor union_volume = p_volume + t_volume - intersection + 1e-7;
  const torch::Tensor enclosing = (torch::max(p_lo, t_lo) + torch::max(p_hi, t_hi)).prod(1) + 1e-7;
  return 1 - (intersection / union_volume - (enclosing - union_volume) / enclosing);
}

torch::Tensor sigmoid_focal_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  const torch::Tensor p = torch::sigmoid(logits);
  const torch::Tensor ce = F::binary_cross_entropy_with_logits(
      logits, targets, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  const torch::Tensor p_t = p * targets + (1 - p) * (1 - targets);
  const torch::Tensor alpha_t = 0.25 * targets + 0.75 * (1 - targets);
  return (alpha_t * ce * (1 - p_t).pow(2)).sum();
}

}  // namespace

DetectionModelImpl::DetectionModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone, int classes,
                                       std::int64_t fpn_channels)
    : backbone_(std::move(backbone)), classes_(classes) {
  if (classes < 1) throw Error("a detector needs at least one object class");
  register_module("backbone", backbone_);
  const auto info = backbone_->feature_info();
  if (backbone_->spatial_dims() == 3) {
    head_ = register_module("head", std::make_shared<FcosHeadImpl<3>>(info, classes, fpn_channels));
  } else {
    head_ = register_module("head", std::make_shared<FcosHeadImpl<2>>(info, classes, fpn_channels));
  }
}

DetectionOutput DetectionModelImpl::forward(const torch::Tensor& input) {
  const bool planar = spatial_dims() == 2;
  if (input.dim() != 5 || (planar && input.size(2) != 1)) {
    throw Error("a detector takes (B, C, D, H, W) patches" + std::string(planar ? " with D = 1 for a 2D backbone" : "") +
                ", got " + c10::str(input.sizes()));
  }
  const auto features = backbone_->features(planar ? input.squeeze(2) : input);
  if (planar) return static_cast<FcosHeadImpl<2>&>(*head_).forward(features);
  return static_cast<FcosHeadImpl<3>&>(*head_).forward(features);
}

torch::Tensor detection_loss(const DetectionOutput& output, const std::vector<std::vector<io::Box>>& boxes) {
  const int dims = static_cast<int>(output.class_logits[0].dim()) - 2;
  const std::int64_t classes = output.class_logits[0].size(1);
  const std::int64_t batch = output.class_logits[0].size(0);
  const std::size_t levels = output.strides.size();
  // Targets are matched on the host; the outputs stay on the model's device, where the loss is.
  const torch::Device device = output.class_logits[0].device();
  std::vector<torch::Tensor> all_logits, all_class_targets, positive_distances, positive_targets, positive_centreness,
      positive_centreness_targets;
  for (std::size_t k = 0; k < levels; ++k) {
    const std::int64_t stride = output.strides[k];
    // FCOS's size ranges: a level takes objects whose largest face distance is in (4s, 8s].
    const double low = k == 0 ? 0.0 : 4.0 * stride, high = k + 1 == levels ? 1e30 : 8.0 * stride;
    const torch::Tensor centres = location_centres(output.class_logits[k].sizes().slice(2), stride);
    const std::int64_t count = centres.size(0);
    for (std::int64_t b = 0; b < batch; ++b) {
      const torch::Tensor logits = output.class_logits[k][b].reshape({classes, count}).t();
      torch::Tensor class_targets = torch::zeros({count, classes});
      const auto& item_boxes = boxes[static_cast<std::size_t>(b)];
      if (!item_boxes.empty()) {
        const auto [starts, ends] = faces(item_boxes, dims);
        const torch::Tensor to_start = centres.unsqueeze(1) - starts.unsqueeze(0);  // (N, G, dims)
        const torch::Tensor to_end = ends.unsqueeze(0) - centres.unsqueeze(1);
        const torch::Tensor inside = torch::min(to_start, to_end).amin(2) > 0;
        const torch::Tensor box_centres = (starts + ends) / 2;
        const torch::Tensor near_centre =
            ((centres.unsqueeze(1) - box_centres.unsqueeze(0)).abs() < 1.5 * stride).all(2);
        const torch::Tensor reach = torch::max(to_start, to_end).amax(2);
        const torch::Tensor candidate = inside & near_centre & (reach > low) & (reach <= high);
        const torch::Tensor volume = (ends - starts).prod(1).unsqueeze(0).expand({count, -1});
        const torch::Tensor masked = torch::where(candidate, volume, torch::full_like(volume, 1e30));
        const auto [smallest, chosen] = masked.min(1);
        const torch::Tensor positive = smallest < 1e29;
        if (positive.any().item<bool>()) {
          const torch::Tensor index = positive.nonzero().squeeze(1);
          const torch::Tensor index_on_device = index.to(device);
          const torch::Tensor box_index = chosen.index_select(0, index);
          std::vector<std::int64_t> label_values;
          for (const auto& box : item_boxes) label_values.push_back(box.label - 1);
          const torch::Tensor labels = torch::tensor(label_values).index_select(0, box_index);
          class_targets.index_put_({index, labels}, 1.0);
          const torch::Tensor rows = torch::arange(count).index_select(0, index);
          const torch::Tensor target_start = to_start.index({rows, box_index}), target_end = to_end.index({rows, box_index});
          const torch::Tensor target = torch::cat({target_start, target_end}, 1);
          const torch::Tensor ratio = torch::min(target_start, target_end) / torch::max(target_start, target_end);
          positive_targets.push_back(target);
          positive_centreness_targets.push_back(ratio.prod(1).pow(1.0 / dims));
          positive_distances.push_back(
              output.distances[k][b].reshape({2 * dims, count}).t().index_select(0, index_on_device));
          positive_centreness.push_back(output.centreness[k][b].reshape({count}).index_select(0, index_on_device));
        }
      }
      all_logits.push_back(logits);
      all_class_targets.push_back(class_targets);
    }
  }
  // fp32 for the loss whatever precision autocast ran the forward pass at.
  const torch::Tensor logits = torch::cat(all_logits).to(torch::kFloat32);
  const torch::Tensor class_targets = torch::cat(all_class_targets).to(device);
  const double positives = positive_targets.empty() ? 0.0 : static_cast<double>(torch::cat(positive_targets).size(0));
  torch::Tensor loss = sigmoid_focal_loss_sum(logits, class_targets) / std::max(1.0, positives);
  if (positives > 0) {
    const torch::Tensor centreness_targets = torch::cat(positive_centreness_targets).to(device);
    const torch::Tensor giou = giou_loss(torch::cat(positive_distances).to(torch::kFloat32),
                                         torch::cat(positive_targets).to(device), dims);
    loss = loss + (giou * centreness_targets).sum() / centreness_targets.sum().clamp_min(1e-6);
    loss = loss + F::binary_cross_entropy_with_logits(torch::cat(positive_centreness).to(torch::kFloat32),
                                                      centreness_targets);
  }
  return loss;
}

std::vector<std::vector<io::Box>> decode_detections(const DetectionOutput& output, torch::IntArrayRef input_size,
                                                    const DetectionDecodeOptions& options) {
  const int dims = static_cast<int>(output.class_logits[0].dim()) - 2;
  const std::int64_t classes = output.class_logits[0].size(1);
  const std::int64_t batch = output.class_logits[0].size(0);
  // The input's extent per tensor axis (the last `dims` of its sizes).
  std::vector<double> extent;
  for (int a = 0; a < dims; ++a) extent.push_back(static_cast<double>(input_size[input_size.size() - dims + a]));
  std::vector<std::vector<io::Box>> results(static_cast<std::size_t>(batch));
  torch::NoGradGuard no_grad;
  for (std::int64_t b = 0; b < batch; ++b) {
    std::vector<io::Box> candidates;
    for (std::size_t k = 0; k < output.strides.size(); ++k) {
      const torch::Tensor centres = location_centres(output.class_logits[k].sizes().slice(2), output.strides[k]);
      const std::int64_t count = centres.size(0);
      const torch::Tensor scores =
          to_host_float(torch::sqrt(torch::sigmoid(output.class_logits[k][b].reshape({classes, count}).t()) *
                                    torch::sigmoid(output.centreness[k][b].reshape({count, 1}))));
      const torch::Tensor flat = scores.reshape({-1});
      const std::int64_t keep = std::min<std::int64_t>(options.candidates_per_level, flat.size(0));
      const auto [top_scores, top_index] = flat.topk(keep);
      const torch::Tensor distances = to_host_float(output.distances[k][b].reshape({2 * dims, count}).t());
      const auto score_at = top_scores.accessor<float, 1>();
      const auto index_at = top_index.accessor<std::int64_t, 1>();
      const auto centre_at = centres.accessor<float, 2>();
      const auto distance_at = distances.accessor<float, 2>();
      for (std::int64_t i = 0; i < keep && score_at[i] > options.score_threshold; ++i) {
        const std::int64_t location = index_at[i] / classes;
        io::Box box;
        box.label = static_cast<int>(index_at[i] % classes) + 1;
        box.score = score_at[i];
        box.start_xyz[2] = -0.5;
        box.end_xyz[2] = 0.5;
        for (int a = 0; a < dims; ++a) {
          const int box_axis = dims - 1 - a;
          const double centre = centre_at[location][a];
          box.start_xyz[box_axis] = std::max(-0.5, centre - distance_at[location][a]);
          box.end_xyz[box_axis] = std::min(extent[a] - 0.5, centre + distance_at[location][dims + a]);
        }
        if (io::box_volume(box) > 0) candidates.push_back(box);
      }
    }
    std::vector<io::Box> kept = non_max_suppression(std::move(candidates), options.nms_iou);
    if (static_cast<int>(kept.size()) > options.max_detections) kept.resize(options.max_detections);
    results[static_cast<std::size_t>(b)] = std::move(kept);
  }
  return results;
}

}  // namespace graft::finetune
