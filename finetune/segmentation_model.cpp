#include "finetune/segmentation_model.h"

#include <algorithm>
#include <map>
#include <thread>

#include "io/error.h"

namespace graft::finetune {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

torch::Tensor upsample_to(const torch::Tensor& x, torch::IntArrayRef size) {
  if (x.sizes().slice(2) == size) return x;
  return F::interpolate(x, F::InterpolateFuncOptions().size(size.vec()).mode(torch::kTrilinear).align_corners(false));
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
  torch::Tensor forward(const std::vector<torch::Tensor>& features, torch::IntArrayRef size) {
    return upsample_to(conv_seg->forward(features.back()), size);
  }
  nn::Sequential conv_seg{nullptr};
};

nn::Sequential conv_block(std::int64_t in, std::int64_t out) {
  return nn::Sequential(nn::Conv3d(nn::Conv3dOptions(in, out, 3).padding(1).bias(false)), nn::BatchNorm3d(out),
                        nn::ReLU(nn::ReLUOptions(true)),
                        nn::Conv3d(nn::Conv3dOptions(out, out, 3).padding(1).bias(false)), nn::BatchNorm3d(out),
                        nn::ReLU(nn::ReLUOptions(true)));
}

// Features are grouped by stride, deepest first; each group is concatenated with the upsampled
// result so far and refined by a conv block; the last block runs at full resolution.
class UNetHeadImpl : public nn::Module {
 public:
  UNetHeadImpl(const std::vector<backbones::FeatureInfo>& info, int classes) {
    std::map<std::int64_t, std::vector<int>, std::greater<>> by_stride;
    for (std::size_t i = 0; i < info.size(); ++i) by_stride[info[i].stride].push_back(static_cast<int>(i));
    std::int64_t previous = 0;
    int level = 0;
    for (const auto& [stride, indices] : by_stride) {
      std::int64_t in = previous;
      for (int index : indices) in += info[index].channels;
      // Narrower at finer levels, as in a U-Net: 16 channels per unit of stride.
      const std::int64_t out = std::min<std::int64_t>(256, 16 * stride);
      blocks_.push_back(register_module("block" + std::to_string(level++), conv_block(in, out)));
      groups_.push_back(indices);
      previous = out;
    }
    final_block_ = register_module("final_block", conv_block(previous, 16));
    classifier_ = register_module("classifier", nn::Conv3d(nn::Conv3dOptions(16, classes, 1)));
  }
  torch::Tensor forward(const std::vector<torch::Tensor>& features, torch::IntArrayRef size) {
    torch::Tensor x;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      std::vector<torch::Tensor> parts;
      const torch::IntArrayRef level_size = features[groups_[g].front()].sizes().slice(2);
      if (x.defined()) parts.push_back(upsample_to(x, level_size));
      for (int index : groups_[g]) parts.push_back(features[index]);
      x = blocks_[g]->forward(torch::cat(parts, 1));
    }
    return classifier_->forward(final_block_->forward(upsample_to(x, size)));
  }

 private:
  std::vector<nn::Sequential> blocks_;
  std::vector<std::vector<int>> groups_;
  nn::Sequential final_block_{nullptr};
  nn::Conv3d classifier_{nullptr};
};

}  // namespace

HeadKind head_kind_from_name(const std::string& name) {
  if (name == "medicalnet") return HeadKind::kMedicalNet;
  if (name == "unet") return HeadKind::kUNet;
  throw Error("unknown head '" + name + "' (expected medicalnet or unet)");
}


SegmentationModelImpl::SegmentationModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone,
                                             HeadKind head, int classes)
    : backbone_(std::move(backbone)), head_kind_(head), classes_(classes) {
  if (classes < 2) throw Error("a segmentation model needs at least 2 classes (background + 1)");
  register_module("backbone", backbone_);
  const auto info = backbone_->feature_info();
  if (head == HeadKind::kMedicalNet) {
    head_ = register_module("head", std::make_shared<MedicalNetHeadImpl>(info.back().channels, classes));
  } else {
    head_ = register_module("head", std::make_shared<UNetHeadImpl>(info, classes));
  }
}

torch::Tensor SegmentationModelImpl::forward(const torch::Tensor& input) {
  const auto features = backbone_->features(input);
  const torch::IntArrayRef size = input.sizes().slice(2);
  if (head_kind_ == HeadKind::kMedicalNet) {
    return static_cast<MedicalNetHeadImpl&>(*head_).forward(features, size);
  }
  return static_cast<UNetHeadImpl&>(*head_).forward(features, size);
}

int set_compute_threads(int requested) {
  const int threads = requested > 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
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

}  // namespace graft::finetune
