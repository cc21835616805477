#pragma once

// An nnU-Net v2 network as its plans describe it: the class (PlainConvUNet or
// ResidualEncoderUNet from dynamic_network_architectures) and its arch_kwargs, read from either
// plans format. No LibTorch here: the model folder keeps this as JSON, and backbones/nnunet_unet.h
// builds the network from it.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace graft::backbones {

enum class NnUNetClass { kPlainConvUNet, kResidualEncoderUNet };
enum class NnUNetNorm { kNone, kInstance, kBatch };
enum class NnUNetNonlin { kNone, kLeakyReLU, kReLU };

struct NnUNetArchitecture {
  NnUNetClass network_class = NnUNetClass::kPlainConvUNet;
  int spatial_dims = 3;
  int input_channels = 1;
  int classes = 2;  // output channels: labels including background
  std::vector<int> features_per_stage;
  // Per stage, in the network's axis order (z, y, x for 3D), as in the plans.
  std::vector<std::vector<int>> kernel_sizes;
  std::vector<std::vector<int>> strides;
  // Convolutions per encoder stage (PlainConvUNet) or residual blocks (ResidualEncoderUNet).
  std::vector<int> encoder_depth_per_stage;
  std::vector<int> convs_per_decoder_stage;  // stages - 1 entries, from the bottom up
  bool conv_bias = true;
  NnUNetNorm norm = NnUNetNorm::kInstance;
  double norm_eps = 1e-5;
  bool norm_affine = true;
  double dropout_probability = 0.0;  // 0: no dropout module
  NnUNetNonlin nonlin = NnUNetNonlin::kLeakyReLU;
  double leaky_relu_slope = 0.01;
  bool nonlin_first = false;  // PlainConvUNet's option: norm after the nonlinearity
  int stem_channels = 0;      // ResidualEncoderUNet's stem width; 0: features_per_stage[0]

  int stages() const { return static_cast<int>(features_per_stage.size()); }
};

std::string nnunet_class_name(NnUNetClass network_class);  // "PlainConvUNet", "ResidualEncoderUNet"

// graft's own JSON form, as a model folder keeps it.
nlohmann::json to_json(const NnUNetArchitecture& architecture);
NnUNetArchitecture nnunet_architecture_from_json(const nlohmann::json& json, const std::string& source);

// The architecture of `configuration` in a plans.json (inherits_from resolved), with the input
// channels and classes that dataset.json gives. Reads the current format (architecture:
// network_class_name, arch_kwargs) and the older one (UNet_class_name, UNet_base_num_features,
// n_conv_per_stage_encoder, pool_op_kernel_sizes, conv_kernel_sizes, ...). Throws graft::Error
// naming `source` and the field for anything graft cannot build (another network class, an
// unknown norm or nonlinearity, stage lists of different lengths).
NnUNetArchitecture nnunet_architecture_from_plans(const nlohmann::json& plans, const std::string& configuration,
                                                  int input_channels, int classes, const std::string& source);

// The configuration's own keys over those it inherits (nnU-Net's inherits_from: a child key
// replaces the parent's whole value).
nlohmann::json nnunet_configuration(const nlohmann::json& plans, const std::string& configuration,
                                    const std::string& source);

}  // namespace graft::backbones
