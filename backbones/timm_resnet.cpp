#include "backbones/timm_resnet.h"

#include "backbones/resnet_blocks.h"
#include "io/error.h"

namespace graft::backbones {
namespace {

namespace nn = torch::nn;

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
  conv1 = register_module("conv1", resnet::conv<2>(config.in_channels, 64, 7, 2));
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  maxpool = register_module("maxpool", nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t inplanes = 64;
  auto make_layer = [&](int64_t planes, int count, int64_t stride) {
    return resnet::make_stage<2>(inplanes, planes, count, stride, 1, bottleneck, 'B');
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
  return resnet::stem_and_stages(input, conv1, bn1, maxpool, {&layer1, &layer2, &layer3, &layer4}, batchnorm_mode);
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
