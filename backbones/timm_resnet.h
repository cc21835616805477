#pragma once

#include <torch/torch.h>

#include "backbones/backbone.h"
#include "backbones/batchnorm_mode.h"

namespace graft::backbones {

// timm's 2D ResNet (He et al. 2016, the v1.5 layout torchvision also uses: the stride sits on
// the 3x3 convolution of a bottleneck), module for module, so TorchGeo's and timm's state_dicts
// load by name: conv1/bn1 stem at stride 2, 3x3 max pool, layer1..layer4 at strides 4, 8, 16, 32,
// downsample.0/.1 shortcuts. The classifier (fc) is not part of the backbone.
struct TimmResNetConfig {
  int depth = 18;  // 18, 34, 50, 101, 152
  int in_channels = 3;
};

class TimmResNetImpl : public BackboneImpl, public ConvBnModeHolder {
 public:
  explicit TimmResNetImpl(const TimmResNetConfig& config);
  std::vector<torch::Tensor> features(const torch::Tensor& input) override;
  std::vector<FeatureInfo> feature_info() const override;
  int spatial_dims() const override { return 2; }
  std::string input_conv_weight_name() const override { return "conv1.weight"; }
  std::vector<std::string> classifier_prefixes() const override { return {"fc."}; }

 private:
  TimmResNetConfig config_;
  int expansion_ = 1;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::MaxPool2d maxpool{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
};
TORCH_MODULE(TimmResNet);

}  // namespace graft::backbones
