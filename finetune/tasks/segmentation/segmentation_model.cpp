#include "finetune/tasks/segmentation/segmentation_model.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "backbones/nnunet_unet.h"
#include "backbones/resnet_blocks.h"
#include "finetune/distributed.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

// The 2D or 3D layers a head needs, the backbones' own.
template <int Dims>
using Layers = backbones::resnet::Layers<Dims>;

torch::Tensor upsample_to(const torch::Tensor& x, torch::IntArrayRef size) {
  if (x.sizes().slice(2) == size) return x;
  auto options = F::InterpolateFuncOptions().size(size.vec()).align_corners(false);
  if (x.dim() == 5) return F::interpolate(x, options.mode(torch::kTrilinear));
  return F::interpolate(x, options.mode(torch::kBilinear));
}

// MedicalNet's conv_seg: ConvTranspose3d(2, stride 2) -> BN -> ReLU -> Conv3d 3x3x3 -> BN -> ReLU
// -> Conv3d 1x1x1 to the classes. Names follow MedicalNet (conv_seg.0 ... conv_seg.6).
class MedicalNetHeadImpl : public nn::Module {
 public:
  MedicalNetHeadImpl(std::int64_t in_channels, int classes) {
    conv_seg = register_module("conv_seg", nn::Sequential(
        nn::ConvTranspose3d(nn::ConvTranspose3dOptions(in_channels, 32, 2).stride(2)),
        nn::BatchNorm3d(32), nn::ReLU(),
        nn::Conv3d(nn::Conv3dOptions(32, 32, 3).padding(1).bias(false)),
        nn::BatchNorm3d(32), nn::ReLU(),
        nn::Conv3d(nn::Conv3dOptions(32, classes, 1).bias(false))));
  }
  torch::Tensor forward(const std::vector<torch::Tensor>& features) { return conv_seg->forward(features.back()); }
  nn::Sequential conv_seg{nullptr};
};

template <int Dims>
nn::Sequential conv_block(std::int64_t in, std::int64_t out) {
  using L = Layers<Dims>;
  return nn::Sequential(typename L::Conv(typename L::ConvOptions(in, out, 3).padding(1).bias(false)),
                        typename L::Norm(out), nn::ReLU(nn::ReLUOptions(true)),
                        typename L::Conv(typename L::ConvOptions(out, out, 3).padding(1).bias(false)),
                        typename L::Norm(out), nn::ReLU(nn::ReLUOptions(true)));
}

// Features are grouped by stride, deepest first; each group is concatenated with the upsampled
// result so far and refined by a conv block; the last block runs at full resolution. Dims is the
// backbone's: 3 for volumes, 2 for rasters and slides. When the finest features are coarser than
// stride 4 (a ViT's 16), the last block also sees the input image through a conv block of its
// own, as in UNETR's first encoder block: without it, edges finer than a patch can only be
// guessed from 16x upsampling.
template <int Dims>
class UNetHeadImpl : public nn::Module {
 public:
  UNetHeadImpl(const std::vector<backbones::FeatureInfo>& info, int classes, std::int64_t input_channels) {
    std::map<std::int64_t, std::vector<int>, std::greater<>> by_stride;
    for (std::size_t i = 0; i < info.size(); ++i) by_stride[info[i].stride].push_back(static_cast<int>(i));
    std::int64_t previous = 0;
    int level = 0;
    for (const auto& [stride, indices] : by_stride) {
      std::int64_t in = previous;
      for (int index : indices) in += info[index].channels;
      // Narrower at finer levels, as in a U-Net: 16 channels per unit of stride.
      const std::int64_t out = std::min<std::int64_t>(256, 16 * stride);
      blocks_.push_back(register_module("block" + std::to_string(level++), conv_block<Dims>(in, out)));
      groups_.push_back(indices);
      previous = out;
    }
    const std::int64_t finest_stride = by_stride.rbegin()->first;
    if (finest_stride > 4) {
      image_block_ = register_module("image_block", conv_block<Dims>(input_channels, 32));
      previous += 32;
    }
    final_block_ = register_module("final_block", conv_block<Dims>(previous, 16));
    classifier_ = register_module("classifier",
                                  typename Layers<Dims>::Conv(typename Layers<Dims>::ConvOptions(16, classes, 1)));
  }
  torch::Tensor forward(const std::vector<torch::Tensor>& features, const torch::Tensor& image) {
    const torch::IntArrayRef size = image.sizes().slice(2);
    torch::Tensor x;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      std::vector<torch::Tensor> parts;
      const torch::IntArrayRef level_size = features[groups_[g].front()].sizes().slice(2);
      if (x.defined()) parts.push_back(upsample_to(x, level_size));
      for (int index : groups_[g]) parts.push_back(features[index]);
      x = blocks_[g]->forward(torch::cat(parts, 1));
    }
    x = upsample_to(x, size);
    if (image_block_) x = torch::cat({x, image_block_->forward(image)}, 1);
    return classifier_->forward(final_block_->forward(x));
  }

 private:
  nn::Sequential image_block_{nullptr};
  std::vector<nn::Sequential> blocks_;
  std::vector<std::vector<int>> groups_;
  nn::Sequential final_block_{nullptr};
  typename Layers<Dims>::Conv classifier_{nullptr};
};

}  // namespace

HeadKind head_kind_from_name(const std::string& name) {
  if (name == "medicalnet") return HeadKind::kMedicalNet;
  if (name == "unet") return HeadKind::kUNet;
  if (name == "nnunet") return HeadKind::kNnUNet;
  throw Error("unknown head '" + name + "' (expected medicalnet, unet or nnunet)");
}


SegmentationModelImpl::SegmentationModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone,
                                             HeadKind head, int classes)
    : backbone_(std::move(backbone)), head_kind_(head), classes_(classes) {
  if (classes < 2) throw Error("a segmentation model needs at least 2 classes (background + 1)");
  if (head == HeadKind::kNnUNet) {
    const auto encoder = std::dynamic_pointer_cast<backbones::NnUNetEncoderImpl>(backbone_);
    if (!encoder) throw Error("the nnunet head needs an nnU-Net encoder (a model folder from `graft import nnunet`)");
    backbones::NnUNetArchitecture architecture = encoder->architecture();
    architecture.classes = classes;
    register_module("encoder", backbone_);
    head_ = register_module("decoder", std::make_shared<backbones::NnUNetDecoderImpl>(architecture));
    return;
  }
  register_module("backbone", backbone_);
  const auto info = backbone_->feature_info();
  const int dims = backbone_->spatial_dims();
  if (head == HeadKind::kMedicalNet) {
    if (dims != 3) throw Error("the medicalnet head is 3D; a 2D backbone takes head: unet");
    head_ = register_module("head", std::make_shared<MedicalNetHeadImpl>(info.back().channels, classes));
  } else {
    const std::int64_t input_channels = backbone_->named_parameters()[backbone_->input_conv_weight_name()].size(1);
    if (dims == 3) {
      head_ = register_module("head", std::make_shared<UNetHeadImpl<3>>(info, classes, input_channels));
    } else {
      head_ = register_module("head", std::make_shared<UNetHeadImpl<2>>(info, classes, input_channels));
    }
  }
}

torch::Tensor SegmentationModelImpl::forward(const torch::Tensor& input) {
  const torch::Tensor logits = forward_before_upsampling(input);
  return upsample_to(logits, input.sizes().slice(2));
}

void SegmentationModelImpl::add_ensemble_member(std::shared_ptr<SegmentationModelImpl> member) {
  if (member->classes() != classes_ || member->head_kind_ != head_kind_) {
    throw Error("an ensemble's networks must share their head and classes");
  }
  if (!ensemble_) ensemble_ = register_module("ensemble", torch::nn::ModuleList());
  ensemble_->push_back(member);
  members_.push_back(std::move(member));
}

torch::Tensor SegmentationModelImpl::forward_before_upsampling(const torch::Tensor& input) {
  torch::Tensor logits = own_logits_before_upsampling(input);
  if (members_.empty()) return logits;
  for (const auto& member : members_) logits = logits + member->own_logits_before_upsampling(input);
  return logits / static_cast<double>(ensemble_size());
}

torch::Tensor SegmentationModelImpl::own_logits_before_upsampling(const torch::Tensor& input) {
  // A 2D backbone sees (B, C, 1, H, W) patches of a one-slice grid as (B, C, H, W) images.
  const bool planar = backbone_->spatial_dims() == 2;
  if (planar && (input.dim() != 5 || input.size(2) != 1)) {
    throw Error("a 2D backbone segments one slice at a time (patch size z must be 1, got input " +
                c10::str(input.sizes()) + ")");
  }
  const torch::Tensor image = planar ? input.squeeze(2) : input;
  const auto features = backbone_->features(image);
  torch::Tensor logits;
  if (head_kind_ == HeadKind::kNnUNet) {
    logits = static_cast<backbones::NnUNetDecoderImpl&>(*head_).forward(features);
  } else if (head_kind_ == HeadKind::kMedicalNet) {
    logits = static_cast<MedicalNetHeadImpl&>(*head_).forward(features);
  } else if (planar) {
    logits = static_cast<UNetHeadImpl<2>&>(*head_).forward(features, image);
  } else {
    logits = static_cast<UNetHeadImpl<3>&>(*head_).forward(features, image);
  }
  return planar ? logits.unsqueeze(2) : logits;
}

int set_compute_threads(int requested) {
  // Data-parallel ranks on one machine share its cores.
  const int threads = requested > 0
                          ? requested
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_world_size());
  torch::set_num_threads(threads);
  return threads;
}

torch::Tensor dice_ce_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const torch::Tensor ce = F::cross_entropy(logits, labels);
  const torch::Tensor probabilities = torch::softmax(logits, 1);
  const torch::Tensor one_hot = F::one_hot(labels, logits.size(1)).permute({0, 4, 1, 2, 3}).to(logits.scalar_type());
  const std::vector<int64_t> reduce{0, 2, 3, 4};
  const torch::Tensor intersection = (probabilities * one_hot).sum(reduce);
  const torch::Tensor denominator = probabilities.sum(reduce) + one_hot.sum(reduce);
  const torch::Tensor dice = (2 * intersection + 1e-5) / (denominator + 1e-5);
  return ce + (1 - dice.slice(0, 1).mean());
}

torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& labels, double gamma) {
  const torch::Tensor log_p = torch::log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).squeeze(1);
  return (-(1 - log_p.exp()).pow(gamma) * log_p).mean();
}

double seconds_per_training_step(SegmentationModelImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                                 const ComputeTarget& target, int steps, const std::string& optimizer_name) {
  model.train();
  std::vector<torch::Tensor> trained;
  for (const auto& parameter : model.parameters()) {
    if (parameter.requires_grad()) trained.push_back(parameter);
  }
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (optimizer_name == "sgd") {
    optimizer = std::make_unique<torch::optim::SGD>(trained, torch::optim::SGDOptions(1e-3).momentum(0.9));
  } else if (optimizer_name == "adamw") {
    optimizer = std::make_unique<torch::optim::AdamW>(trained, torch::optim::AdamWOptions(1e-4));
  } else {
    throw UsageError("unknown optimizer '" + optimizer_name + "' (expected sgd or adamw)");
  }
  LossScaler scaler(target.precision == Precision::kFloat16);
  auto step = [&] {
    optimizer->zero_grad();
    torch::Tensor loss;
    {
      AutocastScope autocast(target.device, target.precision);
      const torch::Tensor logits = model.forward(to_device(x, target.device));
      loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), to_device(y, target.device));
    }
    scaler.scale_loss(loss).backward();
    if (scaler.unscale_and_check(trained)) {
      optimizer->step();
      scaler.step_taken();
    }
  };
  step();  // warm-up: first-call allocations and kernel selection
  synchronize(target.device);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  synchronize(target.device);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
}

}  // namespace graft::finetune
