#include "backbones/timm_resnet.h"

#include "io/error.h"

namespace graft::backbones {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

class ResidualBlockImpl : public nn::Module {
 public:
  nn::Sequential downsample{nullptr};
  torch::Tensor shortcut(const torch::Tensor& x) {
    return downsample.is_empty() ? x : downsample->forward(x);
  }
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

class BasicBlockImpl : public ResidualBlockImpl {
 public:
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(inplanes, planes, 3, stride));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
    return torch::relu(out + shortcut(x));
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};

class BottleneckImpl : public ResidualBlockImpl {
 public:
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(inplanes, planes, 1));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, planes * 4, 1));
    bn3 = register_module("bn3", nn::BatchNorm2d(planes * 4));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = torch::relu(bn2->forward(conv2->forward(out)));
    out = bn3->forward(conv3->forward(out));
    return torch::relu(out + shortcut(x));
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
};

std::vector<int> blocks_for_depth(int depth) {
  switch (depth) {
    case 18:
      return {2, 2, 2, 2};
    case 34:
    case 50:
      return {3, 4, 6, 3};
    case 101:
      return {3, 4, 23, 3};
    case 152:
      return {3, 8, 36, 3};
    default:
      throw Error("ResNet depth " + std::to_string(depth) +
                  " does not exist (18, 34, 50, 101, 152)");
  }
}

}  // namespace

TimmResNetImpl::TimmResNetImpl(const TimmResNetConfig& config) : config_(config) {
  const std::vector<int> blocks = blocks_for_depth(config.depth);
  const bool bottleneck = config.depth >= 50;
  expansion_ = bottleneck ? 4 : 1;
  if (config.in_channels < 1) throw Error("ResNet needs at least one input channel");
  conv1 = register_module("conv1", conv(config.in_channels, 64, 7, 2));
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  maxpool = register_module("maxpool", nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t inplanes = 64;
  auto make_layer = [&](int64_t planes, int count, int64_t stride) {
    nn::Sequential layer;
    for (int b = 0; b < count; ++b) {
      const int64_t block_stride = b == 0 ? stride : 1;
      std::shared_ptr<ResidualBlockImpl> block;
      if (bottleneck)
        block = std::make_shared<BottleneckImpl>(inplanes, planes, block_stride);
      else
        block = std::make_shared<BasicBlockImpl>(inplanes, planes, block_stride);
      if (b == 0 && (stride != 1 || inplanes != planes * expansion_)) {
        block->downsample = block->register_module(
            "downsample", nn::Sequential(conv(inplanes, planes * expansion_, 1, stride),
                                         nn::BatchNorm2d(planes * expansion_)));
      }
      layer->push_back(std::to_string(b), nn::AnyModule(block));
      inplanes = planes * expansion_;
    }
    return layer;
  };
  layer1 = register_module("layer1", make_layer(64, blocks[0], 1));
  layer2 = register_module("layer2", make_layer(128, blocks[1], 2));
  layer3 = register_module("layer3", make_layer(256, blocks[2], 2));
  layer4 = register_module("layer4", make_layer(512, blocks[3], 2));
}

std::vector<torch::Tensor> TimmResNetImpl::features(const torch::Tensor& input) {
  if (input.dim() != 4 || input.size(1) != config_.in_channels) {
    throw Error("ResNet-" + std::to_string(config_.depth) + " expects input (N, " +
                std::to_string(config_.in_channels) + ", H, W), got " +
                std::to_string(input.dim()) + " dims" +
                (input.dim() > 1 ? " with " + std::to_string(input.size(1)) + " channels" : ""));
  }
  std::vector<torch::Tensor> out;
  torch::Tensor x = torch::relu(bn1->forward(conv1->forward(input)));
  out.push_back(x);
  x = maxpool->forward(x);
  for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
    x = (*layer)->forward(x);
    out.push_back(x);
  }
  return out;
}

std::vector<FeatureInfo> TimmResNetImpl::feature_info() const {
  const int64_t e = expansion_;
  return {{"stem", 2, 64},
          {"layer1", 4, 64 * e},
          {"layer2", 8, 128 * e},
          {"layer3", 16, 256 * e},
          {"layer4", 32, 512 * e}};
}

}  // namespace graft::backbones
