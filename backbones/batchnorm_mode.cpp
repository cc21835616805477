#include "backbones/batchnorm_mode.h"

#include <torch/torch.h>

#include "backbones/backbone.h"
#include "backbones/resnet_blocks.h"
#include "io/error.h"

namespace graft::backbones {

BatchNormMode batchnorm_mode_from_name(const std::string& name, const std::string& where) {
  if (name == "train") return BatchNormMode::kTrain;
  if (name == "eval") return BatchNormMode::kEval;
  if (name == "tune") return BatchNormMode::kTune;
  throw UsageError(where + ": '" + name + "' is not a BatchNorm mode (train, eval or tune)");
}

std::string batchnorm_mode_name(BatchNormMode mode) {
  switch (mode) {
    case BatchNormMode::kTrain: return "train";
    case BatchNormMode::kEval: return "eval";
    case BatchNormMode::kTune: return "tune";
  }
  return "train";
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Per output channel: (C) reshaped to (C, 1, 1[, 1]) to scale a weight of `dims` dimensions.
torch::Tensor per_output_channel(const torch::Tensor& values, int64_t dims) {
  std::vector<int64_t> shape(static_cast<std::size_t>(dims), 1);
  shape[0] = -1;
  return values.reshape(shape);
}

class FoldedConvBn : public torch::autograd::Function<FoldedConvBn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& gamma, const torch::Tensor& beta, const torch::Tensor& mean,
                               const torch::Tensor& var, double eps, std::vector<int64_t> stride,
                               std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
    ctx->save_for_backward({x, weight, gamma, mean, var});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    const torch::Tensor scale = gamma * torch::rsqrt(var + eps);
    return torch::convolution(x, weight * per_output_channel(scale, weight.dim()), beta - mean * scale, stride,
                              padding, dilation, /*transposed=*/false,
                              std::vector<int64_t>(static_cast<std::size_t>(weight.dim() - 2), 0), groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &gamma = saved[2], &mean = saved[3], &var = saved[4];
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto padding = ctx->saved_data["padding"].toIntVector();
    const auto dilation = ctx->saved_data["dilation"].toIntVector();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const torch::Tensor inverse_std = torch::rsqrt(var + eps);
    const torch::Tensor scale = gamma * inverse_std;
    const torch::Tensor folded = weight * per_output_channel(scale, weight.dim());
    const std::vector<int64_t> bias_sizes{weight.size(0)};
    // Only what is asked for: the stem's input needs no gradient, and its gradient would be the
    // most expensive convolution of the backward pass.
    const bool want_x = ctx->needs_input_grad(0);
    const bool want_weight = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);
    auto [grad_x, grad_folded, grad_bias] = at::convolution_backward(
        grad_outputs[0], x, folded, bias_sizes, stride, padding, dilation, /*transposed=*/false,
        std::vector<int64_t>(static_cast<std::size_t>(weight.dim() - 2), 0), groups, {want_x, want_weight, true});
    if (!want_weight) grad_folded = torch::zeros_like(weight);
    // folded = W * s and bias = beta - mean * s, with s = gamma / sqrt(var + eps).
    std::vector<int64_t> all_but_output(static_cast<std::size_t>(weight.dim() - 1));
    for (std::size_t d = 0; d < all_but_output.size(); ++d) all_but_output[d] = static_cast<int64_t>(d) + 1;
    const torch::Tensor grad_scale = (grad_folded * weight).sum(all_but_output) - grad_bias * mean;
    return {grad_x, grad_folded * per_output_channel(scale, weight.dim()), grad_scale * inverse_std, grad_bias,
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

namespace resnet {

torch::Tensor folded_conv_bn(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& gamma,
                             const torch::Tensor& beta, const torch::Tensor& running_mean,
                             const torch::Tensor& running_var, double eps, torch::IntArrayRef stride,
                             torch::IntArrayRef padding, torch::IntArrayRef dilation, int64_t groups) {
  return FoldedConvBn::apply(x, weight, gamma, beta, running_mean, running_var, eps, stride.vec(), padding.vec(),
                             dilation.vec(), groups);
}

}  // namespace resnet

int set_batchnorm_mode(torch::nn::Module& model, BatchNormMode mode) {
  return apply_to_holders<ConvBnModeHolder>(model, [&](ConvBnModeHolder& holder) { holder.batchnorm_mode = mode; });
}

}  // namespace graft::backbones
