#pragma once

#include <torch/torch.h>

#include "backbones/backbone.h"

namespace graft::backbones {

// timm's VisionTransformer (Dosovitskiy et al. 2021) with its module names, so timm's, TorchGeo's
// and UNI's state_dicts load by name: patch_embed.proj, cls_token, pos_embed, blocks.N.{norm1,
// attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm. Pre-norm blocks, LayerNorm eps 1e-6, exact
// GELU, a class token, learned absolute positions; no classifier head.
struct TimmVitConfig {
  int in_channels = 3;
  int patch_size = 16;
  int image_size = 224;  // the grid pos_embed was trained on
  int embed_dim = 384;
  int depth = 12;
  int heads = 6;
  int mlp_ratio = 4;
};

TimmVitConfig vit_small_patch16();

class TimmVitImpl : public BackboneImpl {
 public:
  explicit TimmVitImpl(const TimmVitConfig& config);
  // One level: the normed patch tokens as a (N, embed_dim, H/16, W/16) map. Inputs of another
  // size get pos_embed resampled bicubically (timm's resample_abs_pos_embed, no antialiasing).
  std::vector<torch::Tensor> features(const torch::Tensor& input) override;
  std::vector<FeatureInfo> feature_info() const override;
  int spatial_dims() const override { return 2; }
  // The normed class token, as timm's global_pool="token" and UNI use it.
  torch::Tensor embedding(const torch::Tensor& input) override;
  std::string input_conv_weight_name() const override { return "patch_embed.proj.weight"; }
  std::vector<std::string> classifier_prefixes() const override { return {"head.", "fc_norm."}; }

 private:
  // All tokens (class token first) after the final norm.
  torch::Tensor tokens(const torch::Tensor& input);

  TimmVitConfig config_;
  torch::nn::Conv2d patch_embed_proj{nullptr};
  torch::Tensor cls_token, pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(TimmVit);

}  // namespace graft::backbones
