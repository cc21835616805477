#include "backbones/timm_vit.h"

#include <cmath>

#include "backbones/lora.h"

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
    qkv = register_module("qkv", AdaptableLinear(dim, dim * 3));
    proj = register_module("proj", AdaptableLinear(dim, dim));
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
  AdaptableLinear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : nn::Module {
  MlpImpl(int64_t dim, int64_t hidden, bool swiglu_packed) : swiglu_packed(swiglu_packed) {
    if (swiglu_packed && hidden % 2 != 0) throw Error("a packed SwiGLU needs an even hidden width");
    fc1 = register_module("fc1", AdaptableLinear(dim, hidden));
    fc2 = register_module("fc2", AdaptableLinear(swiglu_packed ? hidden / 2 : hidden, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor hidden = fc1->forward(x);
    if (!swiglu_packed) return fc2->forward(torch::gelu(hidden));
    const auto halves = hidden.chunk(2, -1);  // the first half gates the second
    return fc2->forward(torch::silu(halves[0]) * halves[1]);
  }
  bool swiglu_packed;
  AdaptableLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// timm's LayerScale: a learned per-channel factor on a residual branch.
struct LayerScaleImpl : nn::Module {
  explicit LayerScaleImpl(int64_t dim) { gamma = register_parameter("gamma", torch::full({dim}, 1e-5)); }
  torch::Tensor forward(const torch::Tensor& x) { return x * gamma; }
  torch::Tensor gamma;
};
TORCH_MODULE(LayerScale);

struct BlockImpl : nn::Module, CheckpointableBlock {
  BlockImpl(const TimmVitConfig& config) {
    const int64_t dim = config.embed_dim;
    norm1 = register_module("norm1", layer_norm(dim));
    attn = register_module("attn", Attention(dim, config.heads));
    norm2 = register_module("norm2", layer_norm(dim));
    // timm: mlp_hidden_dim = int(dim * mlp_ratio).
    mlp = register_module("mlp", Mlp(dim, static_cast<int64_t>(dim * config.mlp_ratio), config.swiglu_packed));
    if (config.layer_scale) {
      ls1 = register_module("ls1", LayerScale(dim));
      ls2 = register_module("ls2", LayerScale(dim));
    }
  }
  torch::Tensor run(const torch::Tensor& input) override {
    torch::Tensor x = input;
    torch::Tensor branch = attn->forward(norm1->forward(x));
    x = x + (ls1 ? ls1->forward(branch) : branch);
    branch = mlp->forward(norm2->forward(x));
    return x + (ls2 ? ls2->forward(branch) : branch);
  }
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  LayerScale ls1{nullptr}, ls2{nullptr};
};
TORCH_MODULE(Block);

// The side network of TimmVitImpl::add_side_network.
struct SideNetworkImpl : nn::Module {
  SideNetworkImpl(const TimmVitConfig& backbone, int reduction) {
    const int64_t width = backbone.embed_dim / reduction;
    TimmVitConfig narrow;
    narrow.embed_dim = static_cast<int>(width);
    // Heads of 64 channels where the width allows, as the backbones have.
    narrow.heads = width % 64 == 0 ? static_cast<int>(width / 64) : 1;
    down = register_module("down", nn::ModuleList());
    blocks = register_module("blocks", nn::ModuleList());
    for (int i = 0; i <= backbone.depth; ++i) down->push_back(nn::Linear(backbone.embed_dim, width));
    for (int i = 0; i < backbone.depth; ++i) blocks->push_back(Block(narrow));
    // sigmoid(0) = 0.5: each gate starts halfway between the side state and the backbone's.
    gates = register_parameter("gates", torch::zeros({backbone.depth}));
    up = register_module("up", nn::Linear(width, backbone.embed_dim));
    torch::NoGradGuard no_grad;
    up->weight.zero_();
    up->bias.zero_();
  }
  // `ladder`: the first block's input, then every block's output.
  torch::Tensor forward(const std::vector<torch::Tensor>& ladder) {
    torch::Tensor state = down[0]->as<nn::Linear>()->forward(ladder[0]);
    for (std::size_t i = 0; i < blocks->size(); ++i) {
      state = blocks[i]->as<BlockImpl>()->run(state);
      const torch::Tensor gate = torch::sigmoid(gates[static_cast<int64_t>(i)]);
      state = gate * down[i + 1]->as<nn::Linear>()->forward(ladder[i + 1]) + (1 - gate) * state;
    }
    return ladder.back() + up->forward(state);
  }
  nn::ModuleList down{nullptr}, blocks{nullptr};
  torch::Tensor gates;
  nn::Linear up{nullptr};
};

}  // namespace

bool is_side_network_parameter(const std::string& name) {
  return name.rfind("side_network.", 0) == 0 || name.find(".side_network.") != std::string::npos;
}

TimmVitConfig vit_config(const std::string& variant) {
  TimmVitConfig config;  // vit_small_patch16
  if (variant == "vit_small_patch16") return config;
  if (variant == "vit_base_patch16") {
    config.embed_dim = 768, config.heads = 12;
  } else if (variant == "vit_large_patch16" || variant == "uni") {
    config.embed_dim = 1024, config.depth = 24, config.heads = 16;
    config.layer_scale = variant == "uni";  // UNI: init_values=1e-5
  } else if (variant == "vit_huge_patch14") {
    config.patch_size = 14, config.embed_dim = 1280, config.depth = 32, config.heads = 16;
  } else if (variant == "uni2_h") {
    config.patch_size = 14, config.embed_dim = 1536, config.depth = 24, config.heads = 24;
    config.mlp_ratio = 5.33334, config.swiglu_packed = true, config.layer_scale = true;
    config.register_tokens = 8, config.no_embed_class = true;
  } else {
    throw Error("unknown ViT configuration '" + variant + "'");
  }
  return config;
}

TimmVitImpl::TimmVitImpl(const TimmVitConfig& config) : config_(config) {
  if (config.in_channels < 1) throw Error("ViT needs at least one input channel");
  if (config.image_size % config.patch_size != 0)
    throw Error("ViT image size must be a multiple of the patch size");
  const int64_t dim = config.embed_dim, grid = config.image_size / config.patch_size;
  auto patch_embed =
      register_module("patch_embed", PatchEmbed(config.in_channels, dim, config.patch_size));
  patch_embed_proj = patch_embed->proj;
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, dim}));
  if (config.register_tokens > 0) {
    reg_token = register_parameter("reg_token", torch::zeros({1, config.register_tokens, dim}));
  }
  const int64_t embedded_prefix = config.no_embed_class ? 0 : 1 + config.register_tokens;
  pos_embed = register_parameter("pos_embed", torch::randn({1, embedded_prefix + grid * grid, dim}) * 0.02);
  blocks = register_module("blocks", nn::ModuleList());
  for (int i = 0; i < config.depth; ++i) blocks->push_back(Block(config));
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
  const int64_t grid = config_.image_size / config_.patch_size, dim = config_.embed_dim;
  const int64_t embedded_prefix = config_.no_embed_class ? 0 : 1 + config_.register_tokens;
  torch::Tensor prefix_positions = pos_embed.narrow(1, 0, embedded_prefix);
  torch::Tensor patch_positions = pos_embed.narrow(1, embedded_prefix, grid * grid);
  if (rows != grid || columns != grid) {
    // timm's resample_abs_pos_embed: the trained grid resampled bicubically with antialiasing, in
    // float32, the prefix tokens' positions kept as they are.
    namespace F = torch::nn::functional;
    const torch::Tensor trained = patch_positions.reshape({1, grid, grid, dim}).permute({0, 3, 1, 2});
    patch_positions = F::interpolate(trained.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                                      .size(std::vector<int64_t>{rows, columns})
                                                                      .mode(torch::kBicubic)
                                                                      .align_corners(false)
                                                                      .antialias(true))
                          .to(pos_embed.scalar_type())
                          .permute({0, 2, 3, 1})
                          .reshape({1, rows * columns, dim});
  }
  std::vector<torch::Tensor> prefix{cls_token.expand({x.size(0), -1, -1})};
  if (config_.register_tokens > 0) prefix.push_back(reg_token.expand({x.size(0), -1, -1}));
  const torch::Tensor prefix_tokens = torch::cat(prefix, 1);
  if (config_.no_embed_class) {
    x = torch::cat({prefix_tokens, x + patch_positions}, 1);
  } else {
    x = torch::cat({prefix_tokens, x}, 1) + torch::cat({prefix_positions, patch_positions}, 1);
  }
  if (side_network_) {
    // The frozen blocks without autograd, and the embedding cut off from the input: the backward
    // pass ends at the side network.
    std::vector<torch::Tensor> ladder;
    {
      torch::NoGradGuard no_grad;
      ladder.push_back(x.detach());
      for (const auto& block : *blocks) ladder.push_back(block->as<BlockImpl>()->run(ladder.back()));
    }
    return norm->forward(side_network_->as<SideNetworkImpl>()->forward(ladder));
  }
  for (const auto& block : *blocks) {
    x = checkpoint_blocks ? run_checkpointed(*block, x) : block->as<BlockImpl>()->run(x);
  }
  return norm->forward(x);
}

void TimmVitImpl::add_side_network(int reduction, const std::string& where) {
  if (side_network_) throw Error(where + ": the ViT has a side network already");
  if (reduction < 1 || config_.embed_dim % reduction != 0) {
    throw UsageError(where + ": a side network's reduction must divide the ViT's width " +
                     std::to_string(config_.embed_dim) + ", got " + std::to_string(reduction));
  }
  for (auto& parameter : parameters()) parameter.set_requires_grad(false);
  side_network_ = register_module("side_network", std::make_shared<SideNetworkImpl>(config_, reduction));
}

std::vector<torch::Tensor> TimmVitImpl::features(const torch::Tensor& input) {
  const torch::Tensor all = tokens(input);
  const int64_t rows = input.size(2) / config_.patch_size,
                columns = input.size(3) / config_.patch_size;
  return {all.narrow(1, 1 + config_.register_tokens, rows * columns)
              .transpose(1, 2)
              .reshape({input.size(0), config_.embed_dim, rows, columns})};
}

torch::Tensor TimmVitImpl::embedding(const torch::Tensor& input) {
  return tokens(input).select(1, 0);
}

int TimmVitImpl::layer_of(const std::string& name) const {
  if (name.rfind("side_network.", 0) == 0) return config_.depth + 1;
  if (name.rfind("blocks.", 0) == 0) return std::stoi(name.substr(7)) + 1;
  if (name.rfind("norm.", 0) == 0) return config_.depth + 1;
  return 0;  // patch_embed, cls_token, reg_token, pos_embed
}

std::vector<FeatureInfo> TimmVitImpl::feature_info() const {
  return {{"tokens", config_.patch_size, config_.embed_dim}};
}

}  // namespace graft::backbones
