#include "backbones/timm_vit.h"

#include <cmath>

#include "io/error.h"

namespace graft::backbones {
namespace {

namespace nn = torch::nn;

nn::LayerNorm layer_norm(int64_t dim) {
  return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6));
}

struct PatchEmbedImpl : nn::Module {
  PatchEmbedImpl(int64_t in_channels, int64_t dim, int64_t patch) {
    proj = register_module("proj",
                           nn::Conv2d(nn::Conv2dOptions(in_channels, dim, patch).stride(patch)));
  }
  nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct AttentionImpl : nn::Module {
  AttentionImpl(int64_t dim, int64_t heads) : heads(heads) {
    qkv = register_module("qkv", nn::Linear(nn::LinearOptions(dim, dim * 3).bias(true)));
    proj = register_module("proj", nn::Linear(dim, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2), head_dim = dim / heads;
    const torch::Tensor qkv_heads =
        qkv->forward(x).reshape({batch, tokens, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
    const torch::Tensor q = qkv_heads[0] * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    const torch::Tensor attention =
        torch::softmax(torch::matmul(q, qkv_heads[1].transpose(-2, -1)), -1);
    const torch::Tensor out =
        torch::matmul(attention, qkv_heads[2]).transpose(1, 2).reshape({batch, tokens, dim});
    return proj->forward(out);
  }
  int64_t heads;
  nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : nn::Module {
  MlpImpl(int64_t dim, int64_t hidden) {
    fc1 = register_module("fc1", nn::Linear(dim, hidden));
    fc2 = register_module("fc2", nn::Linear(hidden, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return fc2->forward(torch::gelu(fc1->forward(x)));
  }
  nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

struct BlockImpl : nn::Module {
  BlockImpl(int64_t dim, int64_t heads, int64_t mlp_ratio) {
    norm1 = register_module("norm1", layer_norm(dim));
    attn = register_module("attn", Attention(dim, heads));
    norm2 = register_module("norm2", layer_norm(dim));
    mlp = register_module("mlp", Mlp(dim, dim * mlp_ratio));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x + attn->forward(norm1->forward(x));
    return x + mlp->forward(norm2->forward(x));
  }
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

}  // namespace

TimmVitConfig vit_small_patch16() { return {}; }

TimmVitImpl::TimmVitImpl(const TimmVitConfig& config) : config_(config) {
  if (config.in_channels < 1) throw Error("ViT needs at least one input channel");
  if (config.image_size % config.patch_size != 0)
    throw Error("ViT image size must be a multiple of the patch size");
  const int64_t dim = config.embed_dim, grid = config.image_size / config.patch_size;
  auto patch_embed =
      register_module("patch_embed", PatchEmbed(config.in_channels, dim, config.patch_size));
  patch_embed_proj = patch_embed->proj;
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, dim}));
  pos_embed = register_parameter("pos_embed", torch::randn({1, 1 + grid * grid, dim}) * 0.02);
  blocks = register_module("blocks", nn::ModuleList());
  for (int i = 0; i < config.depth; ++i)
    blocks->push_back(Block(dim, config.heads, config.mlp_ratio));
  norm = register_module("norm", layer_norm(dim));
}

torch::Tensor TimmVitImpl::tokens(const torch::Tensor& input) {
  if (input.dim() != 4 || input.size(1) != config_.in_channels ||
      input.size(2) % config_.patch_size != 0 || input.size(3) % config_.patch_size != 0) {
    throw Error("ViT expects input (N, " + std::to_string(config_.in_channels) +
                ", H, W) with H and W multiples of " + std::to_string(config_.patch_size) +
                ", got " + std::to_string(input.dim()) + " dims" +
                (input.dim() > 1 ? " with " + std::to_string(input.size(1)) + " channels" : ""));
  }
  const int64_t rows = input.size(2) / config_.patch_size,
                columns = input.size(3) / config_.patch_size;
  torch::Tensor x =
      patch_embed_proj->forward(input).flatten(2).transpose(1, 2);  // (N, rows * columns, D)
  torch::Tensor positions = pos_embed;
  const int64_t grid = config_.image_size / config_.patch_size;
  if (rows != grid || columns != grid) {
    // The trained grid of positions, resampled to this input's (class token kept as it is).
    const int64_t dim = config_.embed_dim;
    torch::Tensor patch_positions =
        pos_embed.narrow(1, 1, grid * grid).reshape({1, grid, grid, dim}).permute({0, 3, 1, 2});
    patch_positions = torch::nn::functional::interpolate(
        patch_positions, torch::nn::functional::InterpolateFuncOptions()
                             .size(std::vector<int64_t>{rows, columns})
                             .mode(torch::kBicubic)
                             .align_corners(false));
    positions =
        torch::cat({pos_embed.narrow(1, 0, 1),
                    patch_positions.permute({0, 2, 3, 1}).reshape({1, rows * columns, dim})},
                   1);
  }
  x = torch::cat({cls_token.expand({x.size(0), -1, -1}), x}, 1) + positions;
  for (const auto& block : *blocks) x = block->as<BlockImpl>()->forward(x);
  return norm->forward(x);
}

std::vector<torch::Tensor> TimmVitImpl::features(const torch::Tensor& input) {
  const torch::Tensor all = tokens(input);
  const int64_t rows = input.size(2) / config_.patch_size,
                columns = input.size(3) / config_.patch_size;
  return {all.narrow(1, 1, rows * columns)
              .transpose(1, 2)
              .reshape({input.size(0), config_.embed_dim, rows, columns})};
}

torch::Tensor TimmVitImpl::embedding(const torch::Tensor& input) {
  return tokens(input).select(1, 0);
}

std::vector<FeatureInfo> TimmVitImpl::feature_info() const {
  return {{"tokens", config_.patch_size, config_.embed_dim}};
}

}  // namespace graft::backbones
