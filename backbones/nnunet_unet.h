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

#include "backbones/nnunet_architecture.h"
#include "backbones/tensor_data.h"

namespace graft::backbones {

class NnUNetImpl : public torch::nn::Module {
 public:
  explicit NnUNetImpl(const NnUNetArchitecture& architecture);

  // Logits (N, classes, spatial...) at the input's size, which every stage's stride must divide.
  torch::Tensor forward(const torch::Tensor& input);
  // Every decoder level's logits, full resolution first (deep supervision, for training).
  std::vector<torch::Tensor> forward_deep_supervision(const torch::Tensor& input);

  const NnUNetArchitecture& architecture() const { return architecture_; }
  torch::nn::Module& encoder() { return *encoder_; }
  torch::nn::Module& decoder() { return *decoder_; }

 private:
  std::vector<torch::Tensor> encode(const torch::Tensor& input);
  std::vector<torch::Tensor> decode(const std::vector<torch::Tensor>& skips, bool every_level);

  NnUNetArchitecture architecture_;
  std::shared_ptr<torch::nn::Module> encoder_;
  std::shared_ptr<torch::nn::Module> decoder_;
  torch::nn::AnyModule stem_;
  torch::nn::ModuleList encoder_stages_;
  std::vector<std::function<torch::Tensor(const torch::Tensor&)>> encoder_stage_calls_;
  torch::nn::ModuleList decoder_stages_, transposed_convs_, segmentation_layers_;
};
TORCH_MODULE(NnUNet);

// An nnU-Net checkpoint's network_weights without the names PyTorch lists twice for the same
// tensors: each conv and norm again under `all_modules`, and the encoder again under
// `decoder.encoder`. What remains is one name per tensor, as NnUNetImpl names them.
StateDict nnunet_canonical_weights(const StateDict& network_weights);

}  // namespace graft::backbones
