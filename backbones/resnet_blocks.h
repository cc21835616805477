#pragma once

// The residual blocks and stages that MedicalNet's 3D ResNet and timm's 2D ResNet share, written
// once for either dimensionality. Module names follow both references (conv1, bn1, ...,
// downsample.0/.1), so their state_dicts load by name.
#include <torch/torch.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

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

class BlockImpl : public torch::nn::Module {
 public:
  // Shortcut B (a 1x1 convolution and batch norm) when registered; shortcut A when
  // shortcut_a_planes > 0; the identity otherwise.
  torch::nn::Sequential downsample{nullptr};
  int64_t shortcut_a_planes = 0, shortcut_a_stride = 1;

  torch::Tensor residual(const torch::Tensor& x) {
    if (!downsample.is_empty()) return downsample->forward(x);
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
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
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
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = torch::relu(bn2->forward(conv2->forward(out)));
    out = bn3->forward(conv3->forward(out));
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
        block->downsample = block->register_module(
            "downsample", torch::nn::Sequential(conv<Dims>(inplanes, planes * expansion, 1, stride),
                                                typename Layers<Dims>::Norm(planes * expansion)));
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
                                           const std::array<torch::nn::Sequential*, 4>& stages) {
  std::vector<torch::Tensor> out;
  torch::Tensor x = torch::relu(bn1->forward(conv1->forward(input)));
  out.push_back(x);
  x = maxpool->forward(x);
  for (auto* stage : stages) {
    x = (*stage)->forward(x);
    out.push_back(x);
  }
  return out;
}

}  // namespace graft::backbones::resnet
