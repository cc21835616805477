#pragma once

// The residual blocks and stages that MedicalNet's 3D ResNet and timm's 2D ResNet share, written
// once for either dimensionality. Module names follow both references (conv1, bn1, ...,
// downsample.0/.1), so their state_dicts load by name.
#include <torch/torch.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backbones/batchnorm_mode.h"

namespace graft::backbones::resnet {

template <int Dims>
struct Layers;
template <>
struct Layers<2> {
  using Conv = torch::nn::Conv2d;
  using ConvOptions = torch::nn::Conv2dOptions;
  using Norm = torch::nn::BatchNorm2d;
};
template <>
struct Layers<3> {
  using Conv = torch::nn::Conv3d;
  using ConvOptions = torch::nn::Conv3dOptions;
  using Norm = torch::nn::BatchNorm3d;
};

// A bias-free convolution with "same" padding for its kernel and dilation.
template <int Dims>
typename Layers<Dims>::Conv conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                                 int64_t dilation = 1) {
  using Options = typename Layers<Dims>::ConvOptions;
  return typename Layers<Dims>::Conv(Options(in, out, kernel)
                                         .stride(stride)
                                         .padding(dilation * (kernel / 2))
                                         .dilation(dilation)
                                         .bias(false));
}

// A bias-free convolution with eval-mode BatchNorm folded in: conv(x, W * s) + beta - mean * s with
// s = gamma / sqrt(var + eps). The folded weight is recomputed in the backward pass instead of
// kept, so the pair keeps only x (which the layer before keeps anyway) and its parameters: eval
// mode's separate BatchNorm keeps the convolution's whole output, and autograd through the folded
// weight would keep a copy of every weight. Gradients reach x, W, gamma and beta.
torch::Tensor folded_conv_bn(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& gamma,
                             const torch::Tensor& beta, const torch::Tensor& running_mean,
                             const torch::Tensor& running_var, double eps, torch::IntArrayRef stride,
                             torch::IntArrayRef padding, torch::IntArrayRef dilation, int64_t groups);

// conv then BatchNorm, as `mode` says (backbones/batchnorm_mode.h). kEval and kTune compute the
// same function from the running statistics, which neither updates.
template <typename Conv, typename Norm>
torch::Tensor conv_bn(Conv& conv, Norm& bn, const torch::Tensor& x, BatchNormMode mode) {
  if (mode == BatchNormMode::kTrain) return bn->forward(conv->forward(x));
  const double eps = bn->options.eps();
  if (mode == BatchNormMode::kEval) {
    return torch::batch_norm(conv->forward(x), bn->weight, bn->bias, bn->running_mean, bn->running_var,
                             /*training=*/false, /*momentum=*/0.0, eps, /*cudnn_enabled=*/true);
  }
  // Tune: one convolution with the BatchNorm folded into its weight and bias. The ResNets'
  // convolutions have no bias of their own.
  TORCH_CHECK(!conv->bias.defined(), "train.batchnorm tune folds BatchNorm into bias-free convolutions only");
  const auto& options = conv->options;
  const auto& padding = c10::get<std::decay_t<decltype(options.stride())>>(options.padding());
  return folded_conv_bn(x, conv->weight, bn->weight, bn->bias, bn->running_mean, bn->running_var, eps,
                        options.stride(), padding, options.dilation(), options.groups());
}

// MedicalNet's shortcut A: every stride-th voxel (an average pool with kernel 1), then zero
// channels up to `planes`. It has no parameters.
inline torch::Tensor shortcut_a(const torch::Tensor& x, int64_t planes, int64_t stride) {
  torch::Tensor out = x;
  if (stride != 1) {
    for (int64_t d = 2; d < x.dim(); ++d) out = out.slice(d, 0, out.size(d), stride);
  }
  if (out.size(1) == planes) return out;
  auto shape = out.sizes().vec();
  shape[1] = planes - out.size(1);
  return torch::cat({out, torch::zeros(shape, out.options())}, 1);
}

class BlockImpl : public torch::nn::Module, public ConvBnModeHolder {
 public:
  // Shortcut B (a 1x1 convolution and batch norm) when registered; shortcut A when
  // shortcut_a_planes > 0; the identity otherwise.
  torch::nn::Sequential downsample{nullptr};
  // Shortcut B's convolution and BatchNorm as one conv_bn, set with downsample.
  std::function<torch::Tensor(const torch::Tensor&, BatchNormMode)> downsample_conv_bn;
  int64_t shortcut_a_planes = 0, shortcut_a_stride = 1;

  torch::Tensor residual(const torch::Tensor& x) {
    if (!downsample.is_empty()) return downsample_conv_bn(x, batchnorm_mode);
    if (shortcut_a_planes > 0) return shortcut_a(x, shortcut_a_planes, shortcut_a_stride);
    return x;
  }
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

template <int Dims>
class BasicBlockImpl : public BlockImpl {
 public:
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation) {
    conv1 = register_module("conv1", conv<Dims>(inplanes, planes, 3, stride, dilation));
    bn1 = register_module("bn1", typename Layers<Dims>::Norm(planes));
    conv2 = register_module("conv2", conv<Dims>(planes, planes, 3, 1, dilation));
    bn2 = register_module("bn2", typename Layers<Dims>::Norm(planes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(conv_bn(conv1, bn1, x, batchnorm_mode));
    out = conv_bn(conv2, bn2, out, batchnorm_mode);
    return torch::relu(out + residual(x));
  }
  typename Layers<Dims>::Conv conv1{nullptr}, conv2{nullptr};
  typename Layers<Dims>::Norm bn1{nullptr}, bn2{nullptr};
};

// The stride sits on the 3x3 convolution (ResNet v1.5, as MedicalNet, torchvision and timm have
// it).
template <int Dims>
class BottleneckImpl : public BlockImpl {
 public:
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation) {
    conv1 = register_module("conv1", conv<Dims>(inplanes, planes, 1));
    bn1 = register_module("bn1", typename Layers<Dims>::Norm(planes));
    conv2 = register_module("conv2", conv<Dims>(planes, planes, 3, stride, dilation));
    bn2 = register_module("bn2", typename Layers<Dims>::Norm(planes));
    conv3 = register_module("conv3", conv<Dims>(planes, planes * 4, 1));
    bn3 = register_module("bn3", typename Layers<Dims>::Norm(planes * 4));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(conv_bn(conv1, bn1, x, batchnorm_mode));
    out = torch::relu(conv_bn(conv2, bn2, out, batchnorm_mode));
    out = conv_bn(conv3, bn3, out, batchnorm_mode);
    return torch::relu(out + residual(x));
  }
  typename Layers<Dims>::Conv conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  typename Layers<Dims>::Norm bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
};

// One stage ("layer1" ...) of `count` blocks; its first block changes stride and width, with
// shortcut 'A' (parameter-free) or 'B' (downsample.0/.1). `inplanes` is updated to the output.
template <int Dims>
torch::nn::Sequential make_stage(int64_t& inplanes, int64_t planes, int count, int64_t stride,
                                 int64_t dilation, bool bottleneck, char shortcut) {
  const int64_t expansion = bottleneck ? 4 : 1;
  torch::nn::Sequential stage;
  for (int b = 0; b < count; ++b) {
    const int64_t block_stride = b == 0 ? stride : 1;
    std::shared_ptr<BlockImpl> block;
    if (bottleneck)
      block = std::make_shared<BottleneckImpl<Dims>>(inplanes, planes, block_stride, dilation);
    else
      block = std::make_shared<BasicBlockImpl<Dims>>(inplanes, planes, block_stride, dilation);
    if (b == 0 && (stride != 1 || inplanes != planes * expansion)) {
      if (shortcut == 'A') {
        block->shortcut_a_planes = planes * expansion;
        block->shortcut_a_stride = stride;
      } else {
        typename Layers<Dims>::Conv shortcut_conv = conv<Dims>(inplanes, planes * expansion, 1, stride);
        typename Layers<Dims>::Norm shortcut_norm(planes * expansion);
        block->downsample =
            block->register_module("downsample", torch::nn::Sequential(shortcut_conv, shortcut_norm));
        block->downsample_conv_bn = [shortcut_conv, shortcut_norm](const torch::Tensor& x, BatchNormMode mode) mutable {
          return conv_bn(shortcut_conv, shortcut_norm, x, mode);
        };
      }
    }
    stage->push_back(std::to_string(b), torch::nn::AnyModule(block));
    inplanes = planes * expansion;
  }
  return stage;
}

// The stem (conv1, bn1, ReLU) and then max pool and the four stages: the stem's output followed by
// each stage's, shallow to deep.
template <typename Conv, typename Norm, typename Pool>
std::vector<torch::Tensor> stem_and_stages(const torch::Tensor& input, Conv& conv1, Norm& bn1,
                                           Pool& maxpool,
                                           const std::array<torch::nn::Sequential*, 4>& stages,
                                           BatchNormMode mode) {
  std::vector<torch::Tensor> out;
  torch::Tensor x = torch::relu(conv_bn(conv1, bn1, input, mode));
  out.push_back(x);
  x = maxpool->forward(x);
  for (auto* stage : stages) {
    x = (*stage)->forward(x);
    out.push_back(x);
  }
  return out;
}

}  // namespace graft::backbones::resnet
