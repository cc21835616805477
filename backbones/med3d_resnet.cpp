#include "backbones/med3d_resnet.h"

#include "io/error.h"

namespace graft::backbones {
namespace {

namespace nn = torch::nn;

nn::Conv3d conv3x3x3(int64_t in, int64_t out, int64_t stride, int64_t dilation) {
  return nn::Conv3d(nn::Conv3dOptions(in, out, 3).stride(stride).padding(dilation).dilation(dilation).bias(false));
}

// Shortcut A: average pool with kernel 1 (pure subsampling), then zero channels up to `planes`.
torch::Tensor shortcut_a(const torch::Tensor& x, int64_t planes, int64_t stride) {
  torch::Tensor out = stride == 1 ? x : torch::avg_pool3d(x, 1, stride);
  if (out.size(1) == planes) return out;
  auto shape = out.sizes().vec();
  shape[1] = planes - out.size(1);
  return torch::cat({out, torch::zeros(shape, out.options())}, 1);
}

class BlockImpl : public nn::Module {
 public:
  // Shortcut A needs no module; it is applied when shortcut_a_planes > 0.
  int64_t shortcut_a_planes = 0, shortcut_a_stride = 1;
  nn::Sequential downsample{nullptr};

  torch::Tensor residual(const torch::Tensor& x) {
    if (!downsample.is_empty()) return downsample->forward(x);
    if (shortcut_a_planes > 0) return shortcut_a(x, shortcut_a_planes, shortcut_a_stride);
    return x;
  }
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

class BasicBlockImpl : public BlockImpl {
 public:
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation) {
    conv1 = register_module("conv1", conv3x3x3(inplanes, planes, stride, dilation));
    bn1 = register_module("bn1", nn::BatchNorm3d(planes));
    conv2 = register_module("conv2", conv3x3x3(planes, planes, 1, dilation));
    bn2 = register_module("bn2", nn::BatchNorm3d(planes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
    return torch::relu(out + residual(x));
  }
  nn::Conv3d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm3d bn1{nullptr}, bn2{nullptr};
};

class BottleneckImpl : public BlockImpl {
 public:
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation) {
    conv1 = register_module("conv1", nn::Conv3d(nn::Conv3dOptions(inplanes, planes, 1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm3d(planes));
    conv2 = register_module("conv2", nn::Conv3d(nn::Conv3dOptions(planes, planes, 3)
                                                    .stride(stride).padding(dilation).dilation(dilation).bias(false)));
    bn2 = register_module("bn2", nn::BatchNorm3d(planes));
    conv3 = register_module("conv3", nn::Conv3d(nn::Conv3dOptions(planes, planes * 4, 1).bias(false)));
    bn3 = register_module("bn3", nn::BatchNorm3d(planes * 4));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = torch::relu(bn2->forward(conv2->forward(out)));
    out = bn3->forward(conv3->forward(out));
    return torch::relu(out + residual(x));
  }
  nn::Conv3d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm3d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
};

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
  conv1 = register_module("conv1", nn::Conv3d(nn::Conv3dOptions(config.in_channels, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", nn::BatchNorm3d(64));
  maxpool = register_module("maxpool", nn::MaxPool3d(nn::MaxPool3dOptions(3).stride(2).padding(1)));
  int64_t inplanes = 64;
  auto make_layer = [&](int64_t planes, int count, int64_t stride, int64_t dilation) {
    nn::Sequential layer;
    for (int b = 0; b < count; ++b) {
      const int64_t block_stride = b == 0 ? stride : 1;
      std::shared_ptr<BlockImpl> block;
      if (bottleneck) block = std::make_shared<BottleneckImpl>(inplanes, planes, block_stride, dilation);
      else block = std::make_shared<BasicBlockImpl>(inplanes, planes, block_stride, dilation);
      if (b == 0 && (stride != 1 || inplanes != planes * expansion_)) {
        if (config.shortcut == 'A') {
          block->shortcut_a_planes = planes * expansion_;
          block->shortcut_a_stride = stride;
        } else {
          block->downsample = block->register_module(
              "downsample", nn::Sequential(nn::Conv3d(nn::Conv3dOptions(inplanes, planes * expansion_, 1).stride(stride).bias(false)),
                                           nn::BatchNorm3d(planes * expansion_)));
        }
      }
      layer->push_back(std::to_string(b), nn::AnyModule(block));
      inplanes = planes * expansion_;
    }
    return layer;
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

std::vector<FeatureInfo> Med3dResNetImpl::feature_info() const {
  return {{"stem", 2, 64},
          {"layer1", 4, 64 * expansion_},
          {"layer2", 8, 128 * expansion_},
          {"layer3", 8, 256 * expansion_},
          {"layer4", 8, 512 * expansion_}};
}

}  // namespace graft::backbones
