#pragma once

// nnU-Net v2's networks in LibTorch: PlainConvUNet and ResidualEncoderUNet, 2D or 3D, built from
// an NnUNetArchitecture. Module names follow dynamic_network_architectures, so the state dict of
// an nnU-Net checkpoint loads by name: encoder.stages.0.0.convs.0.conv.weight,
// encoder.stem.convs.0.norm.bias, encoder.stages.1.blocks.0.skip.1.conv.weight,
// decoder.transpconvs.0.weight, decoder.seg_layers.2.bias, ...
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "backbones/backbone.h"
#include "backbones/nnunet_architecture.h"
#include "backbones/tensor_data.h"

namespace graft::backbones {

// The encoder (dynamic_network_architectures' PlainConvEncoder or ResidualEncoder) as a graft
// backbone: its features are the skips, one per stage, shallow to deep. Its parameter names are
// those under nnU-Net's "encoder.".
class NnUNetEncoderImpl : public BackboneImpl {
 public:
  explicit NnUNetEncoderImpl(const NnUNetArchitecture& architecture);
  // Throws graft::Error for an input whose size the strides do not divide, giving the multiple.
  std::vector<torch::Tensor> features(const torch::Tensor& input) override;
  std::vector<FeatureInfo> feature_info() const override;
  int spatial_dims() const override { return architecture_.spatial_dims; }
  std::string input_conv_weight_name() const override;
  const NnUNetArchitecture& architecture() const { return architecture_; }

 private:
  NnUNetArchitecture architecture_;
  torch::nn::AnyModule stem_;
  torch::nn::ModuleList stages_;
  std::vector<std::function<torch::Tensor(const torch::Tensor&)>> stage_calls_;
};

// The U-Net decoder: transposed convs, conv stages and one 1x1 segmentation layer per level.
class NnUNetDecoderImpl : public torch::nn::Module {
 public:
  explicit NnUNetDecoderImpl(const NnUNetArchitecture& architecture);
  // Logits at the finest skip's size (the input's).
  torch::Tensor forward(const std::vector<torch::Tensor>& skips);
  // Every level's logits, full resolution first (deep supervision, for training).
  std::vector<torch::Tensor> forward_deep_supervision(const std::vector<torch::Tensor>& skips);

 private:
  std::vector<torch::Tensor> decode(const std::vector<torch::Tensor>& skips, bool every_level);
  torch::nn::ModuleList stages_, transposed_convs_, segmentation_layers_;
};

class NnUNetImpl : public torch::nn::Module {
 public:
  explicit NnUNetImpl(const NnUNetArchitecture& architecture);

  // Logits (N, classes, spatial...) at the input's size, which every stage's stride must divide.
  torch::Tensor forward(const torch::Tensor& input);
  // Every decoder level's logits, full resolution first (deep supervision, for training).
  std::vector<torch::Tensor> forward_deep_supervision(const torch::Tensor& input);

  const NnUNetArchitecture& architecture() const { return architecture_; }
  NnUNetEncoderImpl& encoder() { return *encoder_; }
  NnUNetDecoderImpl& decoder() { return *decoder_; }

 private:
  NnUNetArchitecture architecture_;
  std::shared_ptr<NnUNetEncoderImpl> encoder_;
  std::shared_ptr<NnUNetDecoderImpl> decoder_;
};
TORCH_MODULE(NnUNet);

// An nnU-Net checkpoint's network_weights without the names PyTorch lists twice for the same
// tensors: each conv and norm again under `all_modules`, and the encoder again under
// `decoder.encoder`. What remains is one name per tensor, as NnUNetImpl names them.
StateDict nnunet_canonical_weights(const StateDict& network_weights);

}  // namespace graft::backbones
