#include "backbones/med3d_resnet.h"

#include "backbones/resnet_blocks.h"
#include "io/error.h"

namespace graft::backbones {
namespace {

namespace nn = torch::nn;

std::vector<int> blocks_for_depth(int depth) {
  switch (depth) {
    case 10: return {1, 1, 1, 1};
    case 18: return {2, 2, 2, 2};
    case 34: case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    case 200: return {3, 24, 36, 3};
    default: throw Error("Med3D ResNet depth " + std::to_string(depth) + " does not exist (10, 18, 34, 50, 101, 152, 200)");
  }
}

}  // namespace

Med3dConfig med3d_config_for_depth(int depth, int in_channels) {
  blocks_for_depth(depth);
  Med3dConfig config;
  config.depth = depth;
  config.in_channels = in_channels;
  config.shortcut = depth == 18 || depth == 34 ? 'A' : 'B';
  return config;
}

Med3dResNetImpl::Med3dResNetImpl(const Med3dConfig& config) : config_(config) {
  const std::vector<int> blocks = blocks_for_depth(config.depth);
  const bool bottleneck = config.depth >= 50;
  expansion_ = bottleneck ? 4 : 1;
  if (config.in_channels < 1) throw Error("Med3D ResNet needs at least one input channel");
  if (config.shortcut != 'A' && config.shortcut != 'B') throw Error("Med3D shortcut must be A or B");
  conv1 = register_module("conv1", resnet::conv<3>(config.in_channels, 64, 7, 2));
  bn1 = register_module("bn1", nn::BatchNorm3d(64));
  maxpool = register_module("maxpool", nn::MaxPool3d(nn::MaxPool3dOptions(3).stride(2).padding(1)));
  int64_t inplanes = 64;
  auto make_layer = [&](int64_t planes, int count, int64_t stride, int64_t dilation) {
    return resnet::make_stage<3>(inplanes, planes, count, stride, dilation, bottleneck, config.shortcut);
  };
  layer1 = register_module("layer1", make_layer(64, blocks[0], 1, 1));
  layer2 = register_module("layer2", make_layer(128, blocks[1], 2, 1));
  layer3 = register_module("layer3", make_layer(256, blocks[2], 1, 2));
  layer4 = register_module("layer4", make_layer(512, blocks[3], 1, 4));
}

std::vector<torch::Tensor> Med3dResNetImpl::features(const torch::Tensor& input) {
  if (input.dim() != 5 || input.size(1) != config_.in_channels) {
    throw Error("Med3D ResNet expects input (N, " + std::to_string(config_.in_channels) +
                ", D, H, W), got " + std::to_string(input.dim()) + " dims" +
                (input.dim() > 1 ? " with " + std::to_string(input.size(1)) + " channels" : ""));
  }
  return resnet::stem_and_stages(input, conv1, bn1, maxpool, {&layer1, &layer2, &layer3, &layer4}, batchnorm_mode);
}

std::vector<FeatureInfo> Med3dResNetImpl::feature_info() const {
  return {{"stem", 2, 64},
          {"layer1", 4, 64 * expansion_},
          {"layer2", 8, 128 * expansion_},
          {"layer3", 8, 256 * expansion_},
          {"layer4", 8, 512 * expansion_}};
}

}  // namespace graft::backbones
