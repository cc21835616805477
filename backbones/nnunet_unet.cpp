#include "backbones/nnunet_unet.h"

#include <algorithm>

#include "io/error.h"

namespace graft::backbones {

namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// ConvNd or ConvTransposeNd with `weight` and `bias` as torch.nn names them.
class ConvImpl : public torch::nn::Module {
 public:
  ConvImpl(int dims, int in, int out, const std::vector<int>& kernel, const std::vector<int>& stride, bool bias,
           bool transposed)
      : dims_(dims), transposed_(transposed), stride_(stride.begin(), stride.end()) {
    std::vector<std::int64_t> shape = transposed ? std::vector<std::int64_t>{in, out} : std::vector<std::int64_t>{out, in};
    for (int k : kernel) {
      shape.push_back(k);
      padding_.push_back((k - 1) / 2);
    }
    weight_ = register_parameter("weight", torch::empty(shape));
    // nnU-Net's InitWeights_He(1e-2) for a model trained from scratch; imported weights replace it.
    torch::nn::init::kaiming_normal_(weight_, 1e-2);
    if (bias) bias_ = register_parameter("bias", torch::zeros({out}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (transposed_) {
      return dims_ == 3 ? torch::conv_transpose3d(x, weight_, bias_, stride_) : torch::conv_transpose2d(x, weight_, bias_, stride_);
    }
    return dims_ == 3 ? torch::conv3d(x, weight_, bias_, stride_, padding_) : torch::conv2d(x, weight_, bias_, stride_, padding_);
  }

 private:
  int dims_;
  bool transposed_;
  std::vector<std::int64_t> stride_, padding_;
  torch::Tensor weight_, bias_;
};
TORCH_MODULE(Conv);

class NormImpl : public torch::nn::Module {
 public:
  NormImpl(const NnUNetArchitecture& a, int channels) : kind_(a.norm), eps_(a.norm_eps) {
    if (a.norm_affine || kind_ == NnUNetNorm::kBatch) {
      weight_ = register_parameter("weight", torch::ones({channels}));
      bias_ = register_parameter("bias", torch::zeros({channels}));
    }
    if (kind_ == NnUNetNorm::kBatch) {
      running_mean_ = register_buffer("running_mean", torch::zeros({channels}));
      running_var_ = register_buffer("running_var", torch::ones({channels}));
      batches_ = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (kind_ == NnUNetNorm::kInstance) {
      return torch::instance_norm(x, weight_, bias_, {}, {}, /*use_input_stats=*/true, 0.1, eps_, false);
    }
    if (is_training()) batches_ += 1;
    return torch::batch_norm(x, weight_, bias_, running_mean_, running_var_, is_training(), 0.1, eps_, false);
  }

 private:
  NnUNetNorm kind_;
  double eps_;
  torch::Tensor weight_, bias_, running_mean_, running_var_, batches_;
};
TORCH_MODULE(Norm);

torch::Tensor nonlinearity(const NnUNetArchitecture& a, const torch::Tensor& x) {
  if (a.nonlin == NnUNetNonlin::kLeakyReLU) return torch::leaky_relu(x, a.leaky_relu_slope);
  if (a.nonlin == NnUNetNonlin::kReLU) return torch::relu(x);
  return x;
}

// conv -> dropout -> norm -> nonlinearity (or norm after the nonlinearity with nonlin_first).
class ConvDropoutNormReLUImpl : public torch::nn::Module {
 public:
  ConvDropoutNormReLUImpl(const NnUNetArchitecture& a, int in, int out, const std::vector<int>& kernel,
                          const std::vector<int>& stride, bool bias, bool dropout, bool nonlin)
      : architecture_(a), dropout_(dropout && a.dropout_probability > 0), nonlin_(nonlin) {
    conv_ = register_module("conv", Conv(a.spatial_dims, in, out, kernel, stride, bias, false));
    if (a.norm != NnUNetNorm::kNone) norm_ = register_module("norm", Norm(a, out));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = conv_(x);
    if (dropout_) x = torch::feature_dropout(x, architecture_.dropout_probability, is_training());
    const bool norm_first = !architecture_.nonlin_first;
    if (norm_ && norm_first) x = norm_(x);
    if (nonlin_) x = nonlinearity(architecture_, x);
    if (norm_ && !norm_first) x = norm_(x);
    return x;
  }

 private:
  NnUNetArchitecture architecture_;
  bool dropout_, nonlin_;
  Conv conv_{nullptr};
  Norm norm_{nullptr};
};
TORCH_MODULE(ConvDropoutNormReLU);

std::vector<int> ones(int dims) { return std::vector<int>(static_cast<std::size_t>(dims), 1); }

class StackedConvBlocksImpl : public torch::nn::Module {
 public:
  StackedConvBlocksImpl(const NnUNetArchitecture& a, int count, int in, int out, const std::vector<int>& kernel,
                        const std::vector<int>& first_stride) {
    for (int i = 0; i < count; ++i) {
      convs_->push_back(ConvDropoutNormReLU(a, i == 0 ? in : out, out, kernel, i == 0 ? first_stride : ones(a.spatial_dims),
                                            a.conv_bias, true, true));
    }
    register_module("convs", convs_);
  }
  torch::Tensor forward(const torch::Tensor& x) { return convs_->forward(x); }

 private:
  torch::nn::Sequential convs_;
};
TORCH_MODULE(StackedConvBlocks);

class AvgPoolImpl : public torch::nn::Module {
 public:
  AvgPoolImpl(int dims, const std::vector<int>& stride) : dims_(dims), stride_(stride.begin(), stride.end()) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return dims_ == 3 ? torch::avg_pool3d(x, stride_, stride_) : torch::avg_pool2d(x, stride_, stride_);
  }

 private:
  int dims_;
  std::vector<std::int64_t> stride_;
};
TORCH_MODULE(AvgPool);

// dynamic_network_architectures' BasicBlockD: two convs, and a skip that average-pools when
// strided and projects with a 1x1 conv + norm when the width changes.
class BasicBlockDImpl : public torch::nn::Module {
 public:
  BasicBlockDImpl(const NnUNetArchitecture& a, int in, int out, const std::vector<int>& kernel,
                  const std::vector<int>& stride)
      : architecture_(a) {
    conv1_ = register_module("conv1", ConvDropoutNormReLU(a, in, out, kernel, stride, a.conv_bias, true, true));
    conv2_ = register_module("conv2", ConvDropoutNormReLU(a, out, out, kernel, ones(a.spatial_dims), a.conv_bias, false, false));
    const bool strided = std::any_of(stride.begin(), stride.end(), [](int s) { return s != 1; });
    if (strided || in != out) {
      if (strided) skip_->push_back(AvgPool(a.spatial_dims, stride));
      if (in != out) {
        skip_->push_back(ConvDropoutNormReLU(a, in, out, ones(a.spatial_dims), ones(a.spatial_dims), false, false, false));
      }
      register_module("skip", skip_);
      has_skip_ = true;
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor residual = has_skip_ ? skip_->forward(x) : x;
    return nonlinearity(architecture_, conv2_(conv1_(x)) + residual);
  }

 private:
  NnUNetArchitecture architecture_;
  ConvDropoutNormReLU conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Sequential skip_;
  bool has_skip_ = false;
};
TORCH_MODULE(BasicBlockD);

class StackedResidualBlocksImpl : public torch::nn::Module {
 public:
  StackedResidualBlocksImpl(const NnUNetArchitecture& a, int count, int in, int out, const std::vector<int>& kernel,
                            const std::vector<int>& first_stride) {
    for (int i = 0; i < count; ++i) {
      blocks_->push_back(BasicBlockD(a, i == 0 ? in : out, out, kernel, i == 0 ? first_stride : ones(a.spatial_dims)));
    }
    register_module("blocks", blocks_);
  }
  torch::Tensor forward(const torch::Tensor& x) { return blocks_->forward(x); }

 private:
  torch::nn::Sequential blocks_;
};
TORCH_MODULE(StackedResidualBlocks);

}  // namespace

NnUNetEncoderImpl::NnUNetEncoderImpl(const NnUNetArchitecture& a) : architecture_(a) {
  int in = a.input_channels;
  if (a.network_class == NnUNetClass::kResidualEncoderUNet) {
    const int stem = a.stem_channels > 0 ? a.stem_channels : a.features_per_stage[0];
    stem_ = torch::nn::AnyModule(
        register_module("stem", StackedConvBlocks(a, 1, in, stem, a.kernel_sizes[0], ones(a.spatial_dims))));
    in = stem;
  }
  for (int s = 0; s < a.stages(); ++s) {
    const int out = a.features_per_stage[s];
    if (a.network_class == NnUNetClass::kPlainConvUNet) {
      // PlainConvEncoder wraps each stage's blocks in a Sequential of one: stages.s.0.convs...
      StackedConvBlocks blocks(a, a.encoder_depth_per_stage[s], in, out, a.kernel_sizes[s], a.strides[s]);
      stages_->push_back(torch::nn::Sequential(blocks));
      stage_calls_.emplace_back([blocks](const torch::Tensor& x) mutable { return blocks(x); });
    } else {
      StackedResidualBlocks stage(a, a.encoder_depth_per_stage[s], in, out, a.kernel_sizes[s], a.strides[s]);
      stages_->push_back(stage);
      stage_calls_.emplace_back([stage](const torch::Tensor& x) mutable { return stage(x); });
    }
    in = out;
  }
  register_module("stages", stages_);
}

std::vector<torch::Tensor> NnUNetEncoderImpl::features(const torch::Tensor& input) {
  const int dims = architecture_.spatial_dims;
  if (input.dim() != dims + 2 || input.size(1) != architecture_.input_channels) {
    throw Error("nnU-Net network: input of shape " + shape_text(input.sizes().vec()) + " is not (N, " +
                std::to_string(architecture_.input_channels) + (dims == 3 ? ", Z, Y, X)" : ", Y, X)"));
  }
  std::vector<std::int64_t> divisor(static_cast<std::size_t>(dims), 1);
  for (const auto& stride : architecture_.strides)
    for (int axis = 0; axis < dims; ++axis) divisor[axis] *= stride[axis];
  for (int axis = 0; axis < dims; ++axis) {
    if (input.size(axis + 2) % divisor[axis] != 0) {
      throw Error("nnU-Net network: input of shape " + shape_text(input.sizes().vec()) +
                  " has a spatial size its strides do not divide (axis " + std::to_string(axis) + " needs a multiple of " +
                  std::to_string(divisor[axis]) + ")");
    }
  }
  torch::Tensor x = stem_.is_empty() ? input : stem_.forward(input);
  std::vector<torch::Tensor> skips;
  for (auto& stage : stage_calls_) {
    x = stage(x);
    skips.push_back(x);
  }
  return skips;
}

std::vector<FeatureInfo> NnUNetEncoderImpl::feature_info() const {
  std::vector<FeatureInfo> info;
  std::int64_t stride = 1;
  for (int s = 0; s < architecture_.stages(); ++s) {
    // FeatureInfo has one stride for every axis; nnU-Net's may differ per axis (1, 2, 2), and the
    // finest axis's is the one that says how far apart feature voxels are in-plane.
    stride *= *std::max_element(architecture_.strides[s].begin(), architecture_.strides[s].end());
    info.push_back({"stages." + std::to_string(s), stride, architecture_.features_per_stage[s]});
  }
  return info;
}

std::string NnUNetEncoderImpl::input_conv_weight_name() const {
  return architecture_.network_class == NnUNetClass::kResidualEncoderUNet ? "stem.convs.0.conv.weight"
                                                                          : "stages.0.0.convs.0.conv.weight";
}

NnUNetDecoderImpl::NnUNetDecoderImpl(const NnUNetArchitecture& a) {
  const int stages = a.stages();
  for (int s = 1; s < stages; ++s) {
    const int below = a.features_per_stage[stages - s], skip = a.features_per_stage[stages - s - 1];
    transposed_convs_->push_back(Conv(a.spatial_dims, below, skip, a.strides[stages - s], a.strides[stages - s],
                                      a.conv_bias, true));
    stages_->push_back(StackedConvBlocks(a, a.convs_per_decoder_stage[s - 1], 2 * skip, skip,
                                         a.kernel_sizes[stages - s - 1], ones(a.spatial_dims)));
    segmentation_layers_->push_back(Conv(a.spatial_dims, skip, a.classes, ones(a.spatial_dims), ones(a.spatial_dims), true, false));
  }
  register_module("stages", stages_);
  register_module("transpconvs", transposed_convs_);
  register_module("seg_layers", segmentation_layers_);
}

std::vector<torch::Tensor> NnUNetDecoderImpl::decode(const std::vector<torch::Tensor>& skips, bool every_level) {
  torch::Tensor below = skips.back();
  std::vector<torch::Tensor> outputs;
  const auto levels = stages_->size();
  for (std::size_t s = 0; s < levels; ++s) {
    torch::Tensor x = transposed_convs_->ptr(s)->as<ConvImpl>()->forward(below);
    x = torch::cat({x, skips[skips.size() - s - 2]}, 1);
    below = stages_->ptr(s)->as<StackedConvBlocksImpl>()->forward(x);
    if (every_level || s + 1 == levels) outputs.push_back(segmentation_layers_->ptr(s)->as<ConvImpl>()->forward(below));
  }
  std::reverse(outputs.begin(), outputs.end());
  return outputs;
}

torch::Tensor NnUNetDecoderImpl::forward(const std::vector<torch::Tensor>& skips) { return decode(skips, false).front(); }

std::vector<torch::Tensor> NnUNetDecoderImpl::forward_deep_supervision(const std::vector<torch::Tensor>& skips) {
  return decode(skips, true);
}

NnUNetImpl::NnUNetImpl(const NnUNetArchitecture& architecture) : architecture_(architecture) {
  encoder_ = register_module("encoder", std::make_shared<NnUNetEncoderImpl>(architecture));
  decoder_ = register_module("decoder", std::make_shared<NnUNetDecoderImpl>(architecture));
}

torch::Tensor NnUNetImpl::forward(const torch::Tensor& input) { return decoder_->forward(encoder_->features(input)); }

std::vector<torch::Tensor> NnUNetImpl::forward_deep_supervision(const torch::Tensor& input) {
  return decoder_->forward_deep_supervision(encoder_->features(input));
}

StateDict nnunet_canonical_weights(const StateDict& network_weights) {
  StateDict canonical;
  for (const auto& [name, tensor] : network_weights) {
    if (name.find(".all_modules.") != std::string::npos || name.rfind("decoder.encoder.", 0) == 0) continue;
    canonical.emplace_back(name, tensor);
  }
  return canonical;
}

}  // namespace graft::backbones
