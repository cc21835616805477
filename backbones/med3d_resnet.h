#pragma once

#include <torch/torch.h>

#include "backbones/backbone.h"
#include "backbones/batchnorm_mode.h"

namespace graft::backbones {

// Tencent/MedicalNet's 3D ResNet (Chen et al. 2019, "Med3D"), layer for layer: a 7x7x7 stride-2
// stem and 3x3x3 max pool, then four stages with strides 1, 2, 1, 1 and dilations 1, 1, 2, 4, so
// the deepest features are at stride 8. Shortcut A is a strided average pool with zero-padded
// channels (no parameters); B is a 1x1x1 convolution with batch norm (downsample.0/.1).
struct Med3dConfig {
  int depth = 10;          // 10, 18, 34, 50, 101, 152, 200
  int in_channels = 1;
  char shortcut = 'B';     // 'A' or 'B'
};

// The released checkpoints' choices: B for 10, A for 18 and 34, B for 50 and deeper.
Med3dConfig med3d_config_for_depth(int depth, int in_channels = 1);

class Med3dResNetImpl : public BackboneImpl, public ConvBnModeHolder {
 public:
  explicit Med3dResNetImpl(const Med3dConfig& config);
  std::vector<torch::Tensor> features(const torch::Tensor& input) override;
  std::vector<FeatureInfo> feature_info() const override;
  std::string input_conv_weight_name() const override { return "conv1.weight"; }
  // MedicalNet's own train.py saves its segmentation head beside the backbone.
  std::vector<std::string> classifier_prefixes() const override { return {"conv_seg."}; }
  const Med3dConfig& config() const { return config_; }

 private:
  Med3dConfig config_;
  int expansion_ = 1;
  torch::nn::Conv3d conv1{nullptr};
  torch::nn::BatchNorm3d bn1{nullptr};
  torch::nn::MaxPool3d maxpool{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
};
TORCH_MODULE(Med3dResNet);

}  // namespace graft::backbones
