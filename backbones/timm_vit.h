#pragma once

#include <torch/torch.h>

#include "backbones/backbone.h"
#include "backbones/block_checkpointing.h"

namespace graft::backbones {

// timm's VisionTransformer (Dosovitskiy et al. 2021) with its module names, so timm's, TorchGeo's
// and UNI's state_dicts load by name: patch_embed.proj, cls_token, reg_token, pos_embed,
// blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm.
// Pre-norm blocks, LayerNorm eps 1e-6, exact GELU (or timm's packed SwiGLU), a class token,
// optional register tokens, learned absolute positions; no classifier head.
struct TimmVitConfig {
  int in_channels = 3;
  int patch_size = 16;
  int image_size = 224;  // the grid pos_embed was trained on
  int embed_dim = 384;
  int depth = 12;
  int heads = 6;
  double mlp_ratio = 4.0;   // hidden width = int(embed_dim * mlp_ratio), as timm computes it
  bool layer_scale = false;  // timm's init_values: ls1.gamma / ls2.gamma scale each branch
  int register_tokens = 0;   // reg_token, after the class token (Darcet et al. 2024)
  bool no_embed_class = false;  // pos_embed covers the patches only, not the class/register tokens
  // timm's SwiGLUPacked MLP: fc1 gives 2 halves, SiLU(first) * second, and fc2 maps half back.
  bool swiglu_packed = false;
};

// Configurations by name: "vit_small_patch16", "vit_base_patch16", "vit_large_patch16",
// "vit_huge_patch14", "uni" (UNI: ViT-L/16 with layer scale), "uni2_h" (UNI2-h: ViT-H/14-like,
// 1536 wide, 8 registers, packed SwiGLU, layer scale, no position for the prefix tokens).
TimmVitConfig vit_config(const std::string& variant);

// Its attention and MLP layers take LoRA adapters (backbones/lora.h), its blocks can be
// checkpointed (backbones/block_checkpointing.h), and it can take a ladder side network.
class TimmVitImpl : public BackboneImpl, public BlockCheckpointingHolder {
 public:
  explicit TimmVitImpl(const TimmVitConfig& config);
  // One level: the normed patch tokens as a (N, embed_dim, H/P, W/P) map. Inputs of another
  // size get pos_embed resampled as timm's resample_abs_pos_embed does (bicubic, antialiased,
  // in float32, prefix tokens kept aside).
  std::vector<torch::Tensor> features(const torch::Tensor& input) override;
  std::vector<FeatureInfo> feature_info() const override;
  int spatial_dims() const override { return 2; }
  // The normed class token, as timm's global_pool="token" and UNI use it.
  torch::Tensor embedding(const torch::Tensor& input) override;
  std::string input_conv_weight_name() const override { return "patch_embed.proj.weight"; }
  std::vector<std::string> classifier_prefixes() const override { return {"head.", "fc_norm."}; }
  // BEiT's numbering: patch embedding and tokens 0, block i is i + 1, the final norm depth + 1.
  int layer_of(const std::string& parameter_name) const override;
  int layer_count() const override { return config_.depth + 1; }

  // Ladder side-tuning (Sung et al. 2022, "LST"): a narrow side network beside the frozen blocks.
  // The blocks run without autograd, so the backward pass never enters them and keeps none of their
  // activations; the side network reads each block's output through its own down-projection (to
  // embed_dim / reduction), mixes it with its own state through a learned gate, and runs it through
  // a narrow block of its own. Its state, projected back up, is added to the last block's output
  // before the final norm. The up-projection starts at zero, so an untrained side network leaves
  // the outputs unchanged, bit for bit. Freezes every other parameter. Its parameters are named
  // "side_network.*" (layer depth + 1 for layer decay). Throws graft::UsageError naming `where`
  // when `reduction` does not divide the width.
  void add_side_network(int reduction, const std::string& where);
  bool has_side_network() const { return static_cast<bool>(side_network_); }

 private:
  // All tokens (class token first) after the final norm.
  torch::Tensor tokens(const torch::Tensor& input);

  TimmVitConfig config_;
  torch::nn::Conv2d patch_embed_proj{nullptr};
  torch::Tensor cls_token, reg_token, pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  std::shared_ptr<torch::nn::Module> side_network_;
};
TORCH_MODULE(TimmVit);

// Whether a parameter name (as named_parameters() gives it) is a side network's.
bool is_side_network_parameter(const std::string& name);

}  // namespace graft::backbones
