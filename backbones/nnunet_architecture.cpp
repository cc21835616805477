#include "backbones/nnunet_architecture.h"

#include <algorithm>
#include <set>

#include "io/error.h"

namespace graft::backbones {

namespace {

// The last dotted part of a Python name: "torch.nn.modules.conv.Conv3d" -> "Conv3d".
std::string python_class(const nlohmann::json& value) {
  if (value.is_null()) return "";
  const std::string name = value.get<std::string>();
  const auto dot = name.find_last_of('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

std::vector<std::vector<int>> per_stage_lists(const nlohmann::json& value, int stages, int dims,
                                              const std::string& where) {
  std::vector<std::vector<int>> lists;
  if (value.is_number_integer()) {
    lists.assign(static_cast<std::size_t>(stages), std::vector<int>(static_cast<std::size_t>(dims), value.get<int>()));
    return lists;
  }
  for (const auto& stage : value) {
    if (stage.is_number_integer()) {
      lists.emplace_back(static_cast<std::size_t>(dims), stage.get<int>());
    } else {
      lists.push_back(stage.get<std::vector<int>>());
    }
    if (static_cast<int>(lists.back().size()) != dims) {
      throw Error(where + " has an entry with " + std::to_string(lists.back().size()) + " axes; the network has " +
                  std::to_string(dims));
    }
  }
  return lists;
}

std::vector<int> per_stage_counts(const nlohmann::json& value, int stages) {
  if (value.is_number_integer()) return std::vector<int>(static_cast<std::size_t>(stages), value.get<int>());
  return value.get<std::vector<int>>();
}

void check(const NnUNetArchitecture& a, const std::string& source) {
  const auto stages = static_cast<std::size_t>(a.stages());
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(source + ": " + what);
  };
  require(a.spatial_dims == 2 || a.spatial_dims == 3, "the network must be 2D or 3D");
  require(stages >= 2, "the network needs at least two stages");
  require(a.kernel_sizes.size() == stages, "kernel_sizes needs one entry per stage");
  require(a.strides.size() == stages, "strides needs one entry per stage");
  require(a.encoder_depth_per_stage.size() == stages, "n_conv_per_stage (n_blocks_per_stage) needs one entry per stage");
  require(a.convs_per_decoder_stage.size() == stages - 1, "n_conv_per_stage_decoder needs one entry per stage but the last");
  require(a.input_channels >= 1 && a.classes >= 1, "input channels and classes must be positive");
  for (std::size_t s = 0; s < stages; ++s) {
    require(a.features_per_stage[s] >= 1 && a.encoder_depth_per_stage[s] >= 1, "every stage needs features and a conv");
    require(a.kernel_sizes[s].size() == static_cast<std::size_t>(a.spatial_dims) &&
                a.strides[s].size() == static_cast<std::size_t>(a.spatial_dims),
            "kernel_sizes and strides need one value per axis");
  }
}

}  // namespace

std::string nnunet_class_name(NnUNetClass network_class) {
  return network_class == NnUNetClass::kPlainConvUNet ? "PlainConvUNet" : "ResidualEncoderUNet";
}

nlohmann::json to_json(const NnUNetArchitecture& a) {
  const char* norms[] = {"none", "instance", "batch"};
  const char* nonlins[] = {"none", "leaky_relu", "relu"};
  return {{"network_class", nnunet_class_name(a.network_class)},
          {"spatial_dims", a.spatial_dims},
          {"input_channels", a.input_channels},
          {"classes", a.classes},
          {"features_per_stage", a.features_per_stage},
          {"kernel_sizes", a.kernel_sizes},
          {"strides", a.strides},
          {"encoder_depth_per_stage", a.encoder_depth_per_stage},
          {"convs_per_decoder_stage", a.convs_per_decoder_stage},
          {"conv_bias", a.conv_bias},
          {"norm", norms[static_cast<int>(a.norm)]},
          {"norm_eps", a.norm_eps},
          {"norm_affine", a.norm_affine},
          {"dropout_probability", a.dropout_probability},
          {"nonlin", nonlins[static_cast<int>(a.nonlin)]},
          {"leaky_relu_slope", a.leaky_relu_slope},
          {"nonlin_first", a.nonlin_first},
          {"stem_channels", a.stem_channels}};
}

NnUNetArchitecture nnunet_architecture_from_json(const nlohmann::json& json, const std::string& source) {
  try {
    NnUNetArchitecture a;
    const std::string network_class = json.at("network_class");
    if (network_class == "PlainConvUNet") {
      a.network_class = NnUNetClass::kPlainConvUNet;
    } else if (network_class == "ResidualEncoderUNet") {
      a.network_class = NnUNetClass::kResidualEncoderUNet;
    } else {
      throw Error(source + ": network_class '" + network_class + "' is not PlainConvUNet or ResidualEncoderUNet");
    }
    a.spatial_dims = json.at("spatial_dims");
    a.input_channels = json.at("input_channels");
    a.classes = json.at("classes");
    a.features_per_stage = json.at("features_per_stage").get<std::vector<int>>();
    a.kernel_sizes = json.at("kernel_sizes").get<std::vector<std::vector<int>>>();
    a.strides = json.at("strides").get<std::vector<std::vector<int>>>();
    a.encoder_depth_per_stage = json.at("encoder_depth_per_stage").get<std::vector<int>>();
    a.convs_per_decoder_stage = json.at("convs_per_decoder_stage").get<std::vector<int>>();
    a.conv_bias = json.at("conv_bias");
    const std::string norm = json.at("norm");
    a.norm = norm == "instance" ? NnUNetNorm::kInstance : norm == "batch" ? NnUNetNorm::kBatch : NnUNetNorm::kNone;
    a.norm_eps = json.at("norm_eps");
    a.norm_affine = json.at("norm_affine");
    a.dropout_probability = json.at("dropout_probability");
    const std::string nonlin = json.at("nonlin");
    a.nonlin = nonlin == "leaky_relu" ? NnUNetNonlin::kLeakyReLU : nonlin == "relu" ? NnUNetNonlin::kReLU : NnUNetNonlin::kNone;
    a.leaky_relu_slope = json.at("leaky_relu_slope");
    a.nonlin_first = json.at("nonlin_first");
    a.stem_channels = json.at("stem_channels");
    check(a, source);
    return a;
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": malformed nnU-Net architecture (" + std::string(e.what()) + ")");
  }
}

nlohmann::json nnunet_configuration(const nlohmann::json& plans, const std::string& configuration,
                                    const std::string& source) {
  if (!plans.contains("configurations") || !plans["configurations"].is_object()) {
    throw Error(source + ": plans have no 'configurations'");
  }
  const auto& configurations = plans["configurations"];
  std::set<std::string> visited;
  std::vector<std::string> chain;
  for (std::string name = configuration;;) {
    if (!configurations.contains(name)) {
      std::string known;
      for (const auto& item : configurations.items()) known += (known.empty() ? "" : ", ") + item.key();
      throw Error(source + ": configuration '" + name + "' is not in the plans (they have " + known + ")");
    }
    if (!visited.insert(name).second) throw Error(source + ": configuration '" + configuration + "' inherits in a cycle");
    chain.push_back(name);
    const auto& entry = configurations[name];
    if (!entry.contains("inherits_from") || entry["inherits_from"].is_null()) break;
    name = entry["inherits_from"].get<std::string>();
  }
  nlohmann::json resolved = nlohmann::json::object();
  for (auto name = chain.rbegin(); name != chain.rend(); ++name) {
    for (const auto& item : configurations[*name].items()) resolved[item.key()] = item.value();
  }
  return resolved;
}

NnUNetArchitecture nnunet_architecture_from_plans(const nlohmann::json& plans, const std::string& configuration,
                                                  int input_channels, int classes, const std::string& source) {
  const nlohmann::json config = nnunet_configuration(plans, configuration, source);
  const std::string where = source + ": configuration '" + configuration + "'";
  try {
    NnUNetArchitecture a;
    a.input_channels = input_channels;
    a.classes = classes;
    a.spatial_dims = static_cast<int>(config.at("patch_size").size());
    std::string class_name;
    if (config.contains("architecture")) {
      const auto& architecture = config["architecture"];
      class_name = python_class(architecture.at("network_class_name"));
      const auto& kwargs = architecture.at("arch_kwargs");
      const int stages = kwargs.at("n_stages");
      a.features_per_stage = per_stage_counts(kwargs.at("features_per_stage"), stages);
      a.kernel_sizes = per_stage_lists(kwargs.at("kernel_sizes"), stages, a.spatial_dims, where + " kernel_sizes");
      a.strides = per_stage_lists(kwargs.at("strides"), stages, a.spatial_dims, where + " strides");
      const char* depth_key = kwargs.contains("n_blocks_per_stage") ? "n_blocks_per_stage" : "n_conv_per_stage";
      a.encoder_depth_per_stage = per_stage_counts(kwargs.at(depth_key), stages);
      a.convs_per_decoder_stage = per_stage_counts(kwargs.at("n_conv_per_stage_decoder"), stages - 1);
      a.conv_bias = kwargs.value("conv_bias", false);
      const std::string norm = python_class(kwargs.value("norm_op", nlohmann::json()));
      if (norm.rfind("InstanceNorm", 0) == 0) {
        a.norm = NnUNetNorm::kInstance;
      } else if (norm.rfind("BatchNorm", 0) == 0) {
        a.norm = NnUNetNorm::kBatch;
      } else if (norm.empty()) {
        a.norm = NnUNetNorm::kNone;
      } else {
        throw Error(where + ": norm_op " + norm + " is not InstanceNorm or BatchNorm");
      }
      const nlohmann::json norm_kwargs = kwargs.value("norm_op_kwargs", nlohmann::json::object());
      if (norm_kwargs.is_object()) {
        a.norm_eps = norm_kwargs.value("eps", 1e-5);
        a.norm_affine = norm_kwargs.value("affine", a.norm == NnUNetNorm::kBatch);
      }
      if (!kwargs.value("dropout_op", nlohmann::json()).is_null()) {
        const nlohmann::json dropout_kwargs = kwargs.value("dropout_op_kwargs", nlohmann::json::object());
        a.dropout_probability = dropout_kwargs.is_object() ? dropout_kwargs.value("p", 0.5) : 0.5;
      }
      const std::string nonlin = python_class(kwargs.value("nonlin", nlohmann::json()));
      const nlohmann::json nonlin_kwargs = kwargs.value("nonlin_kwargs", nlohmann::json::object());
      if (nonlin == "LeakyReLU") {
        a.nonlin = NnUNetNonlin::kLeakyReLU;
        if (nonlin_kwargs.is_object()) a.leaky_relu_slope = nonlin_kwargs.value("negative_slope", 0.01);
      } else if (nonlin == "ReLU") {
        a.nonlin = NnUNetNonlin::kReLU;
      } else if (nonlin.empty()) {
        a.nonlin = NnUNetNonlin::kNone;
      } else {
        throw Error(where + ": nonlin " + nonlin + " is not LeakyReLU or ReLU");
      }
      a.nonlin_first = kwargs.value("nonlin_first", false);
      if (kwargs.contains("stem_channels") && kwargs["stem_channels"].is_number_integer()) a.stem_channels = kwargs["stem_channels"];
      if (kwargs.contains("block") && !kwargs["block"].is_null() && python_class(kwargs["block"]) != "BasicBlockD") {
        throw Error(where + ": residual block " + python_class(kwargs["block"]) + " is not BasicBlockD");
      }
    } else {
      // The older plans: a base width doubled per stage up to a maximum, pooling as strides.
      class_name = python_class(config.at("UNet_class_name"));
      a.strides = per_stage_lists(config.at("pool_op_kernel_sizes"), 0, a.spatial_dims, where + " pool_op_kernel_sizes");
      const int stages = static_cast<int>(a.strides.size());
      a.kernel_sizes = per_stage_lists(config.at("conv_kernel_sizes"), stages, a.spatial_dims, where + " conv_kernel_sizes");
      const int base = config.at("UNet_base_num_features");
      const int maximum = config.at("unet_max_num_features");
      for (int s = 0; s < stages; ++s) a.features_per_stage.push_back(std::min(base << s, maximum));
      a.encoder_depth_per_stage = per_stage_counts(config.at("n_conv_per_stage_encoder"), stages);
      a.convs_per_decoder_stage = per_stage_counts(config.at("n_conv_per_stage_decoder"), stages - 1);
      a.conv_bias = true;
    }
    if (class_name == "PlainConvUNet") {
      a.network_class = NnUNetClass::kPlainConvUNet;
    } else if (class_name == "ResidualEncoderUNet") {
      a.network_class = NnUNetClass::kResidualEncoderUNet;
    } else {
      throw Error(where + ": network class " + class_name +
                  " is not one graft builds (PlainConvUNet, ResidualEncoderUNet)");
    }
    check(a, where);
    return a;
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": " + std::string(e.what()));
  }
}

}  // namespace graft::backbones
