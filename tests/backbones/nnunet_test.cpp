// nnU-Net v2 networks against PyTorch: tests/tools/nnunet_reference.py (Debian python3-torch)
// writes an nnU-Net model folder from its own PlainConvUNet and ResidualEncoderUNet, named as
// dynamic_network_architectures names them, with a checkpoint_final.pth holding every key
// nnU-Net's trainer saves. graft builds the network from plans.json and loads the checkpoint.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <set>

#include "backbones/checkpoint_file.h"
#include "backbones/nnunet_architecture.h"
#include "backbones/nnunet_unet.h"
#include "backbones/weight_loading.h"
#include "io/error.h"
#include "tests/backbones/pytorch_reference.h"
#include "tests/support/nnunet_reference.h"
#include "tests/support/test_support.h"

namespace {

using graft::backbones::testing::max_relative_difference;
using graft::backbones::testing::npy_tensor;

// FOLDER written by the reference script, or "" when python3-torch is missing.
std::string reference_folder(const std::string& network, int dims) {
  if (graft::testing::python_with("torch").empty()) return "";
  const std::string folder = graft::testing::temp_dir() + "/nnunet_" + network;
  std::string output;
  const int status = graft::testing::run_nnunet_reference(
      folder + " " + network + " --dims " + std::to_string(dims), &output);
  EXPECT_EQ(status, 0) << output;
  return folder;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void expect_logits_match_pytorch(const std::string& network, int dims) {
  const std::string folder = reference_folder(network, dims);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string configuration = dims == 3 ? "3d_fullres" : "2d";
  const auto architecture = graft::backbones::nnunet_architecture_from_plans(
      read_json(folder + "/plans.json"), configuration, 1, 3, folder + "/plans.json");
  EXPECT_EQ(graft::backbones::nnunet_class_name(architecture.network_class),
            network == "plain" ? "PlainConvUNet" : "ResidualEncoderUNet");
  // The architecture survives the model folder's JSON.
  const auto reread = graft::backbones::nnunet_architecture_from_json(graft::backbones::to_json(architecture), "json");
  EXPECT_EQ(graft::backbones::to_json(reread), graft::backbones::to_json(architecture));

  const std::string checkpoint_path = folder + "/fold_0/checkpoint_final.pth";
  const auto checkpoint = graft::backbones::read_checkpoint(checkpoint_path);
  graft::backbones::NnUNet net(architecture);
  const auto weights = graft::backbones::nnunet_canonical_weights(checkpoint.tensors);
  // Every tensor is listed twice or three times in the file; strict loading by name takes the
  // rest, and a key of the network missing from it would fail here.
  EXPECT_LT(weights.size(), checkpoint.tensors.size() / 2);
  const auto report = graft::backbones::load_state_dict(*net, weights, {}, checkpoint_path);
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.loaded.size(), weights.size());

  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = net->forward(npy_tensor(folder + "/input.npy"));
  const torch::Tensor expected = npy_tensor(folder + "/logits.npy");
  ASSERT_EQ(logits.sizes(), expected.sizes());
  EXPECT_LT((logits - expected).abs().max().item<double>(), 1e-4);
  EXPECT_LT(max_relative_difference(logits, expected), 1e-5);
}

TEST(NnUNet, PlainConvUNet3dLogitsMatchPyTorch) { expect_logits_match_pytorch("plain", 3); }
TEST(NnUNet, ResidualEncoderUNet3dLogitsMatchPyTorch) { expect_logits_match_pytorch("residual", 3); }
TEST(NnUNet, PlainConvUNet2dLogitsMatchPyTorch) { expect_logits_match_pytorch("plain", 2); }

TEST(NnUNet, TrainerCheckpointReadsEveryKeyFromGpuStoragesWithoutExecutingAnything) {
  const std::string folder = reference_folder("residual", 3);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const auto checkpoint = graft::backbones::read_checkpoint(folder + "/fold_0/checkpoint_final.pth");
  EXPECT_EQ(checkpoint.format, "torch-zip");
  const auto& values = checkpoint.values;
  for (const char* key : {"optimizer_state", "grad_scaler_state", "logging", "_best_ema", "current_epoch", "init_args",
                          "trainer_name", "inference_allowed_mirroring_axes"}) {
    EXPECT_TRUE(values.contains(key)) << key;
  }
  EXPECT_EQ(values["trainer_name"], "nnUNetTrainer");
  EXPECT_EQ(values["inference_allowed_mirroring_axes"], nlohmann::json::array({0, 1, 2}));
  // NumPy scalars (pickled as numpy.core.multiarray.scalar of a dtype and latin-1 bytes) as numbers.
  EXPECT_DOUBLE_EQ(values["_best_ema"].get<double>(), 0.525);
  EXPECT_EQ(values["current_epoch"].get<std::int64_t>(), 1000);
  EXPECT_DOUBLE_EQ(values["logging"]["mean_fg_dice"][1].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(values["logging"]["train_losses"][1].get<double>(), -0.5);
  EXPECT_EQ(values["init_args"]["device"], "cuda:0");
  EXPECT_EQ(values["init_args"]["configuration"], "3d_fullres");
  EXPECT_EQ(values["init_args"]["plans"]["configurations"]["3d_fullres"]["patch_size"],
            nlohmann::json::array({16, 32, 32}));
  std::set<std::string> names;
  for (const auto& [name, tensor] : checkpoint.tensors) names.insert(name);
  EXPECT_TRUE(names.count("encoder.stem.convs.0.conv.weight"));
  EXPECT_TRUE(names.count("decoder.encoder.stem.convs.0.conv.weight"));
  EXPECT_TRUE(names.count("encoder.stem.convs.0.all_modules.0.weight"));
}

TEST(NnUNet, ACheckpointReferencingAnotherClassIsRefusedNamingIt) {
  if (graft::testing::python_with("torch").empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string path = graft::testing::temp_dir() + "/foreign.pth";
  std::string output;
  ASSERT_EQ(graft::testing::run_nnunet_reference(path + " foreign", &output),
            0)
      << output;
  const std::string message = graft::testing::error_message([&] { graft::backbones::read_checkpoint(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("argparse.Namespace"), std::string::npos) << message;
}

TEST(NnUNet, OlderPlansFormatGivesTheSameArchitectureAsArchKwargs) {
  const nlohmann::json old_plans = {
      {"configurations",
       {{"3d_fullres",
         {{"patch_size", {16, 32, 32}},
          {"UNet_class_name", "PlainConvUNet"},
          {"UNet_base_num_features", 32},
          {"unet_max_num_features", 64},
          {"n_conv_per_stage_encoder", {2, 2, 2, 2}},
          {"n_conv_per_stage_decoder", {2, 2, 2}},
          {"num_pool_per_axis", {2, 3, 3}},
          {"pool_op_kernel_sizes", {{1, 1, 1}, {1, 2, 2}, {2, 2, 2}, {2, 2, 2}}},
          {"conv_kernel_sizes", {{1, 3, 3}, {3, 3, 3}, {3, 3, 3}, {3, 3, 3}}}}},
        {"3d_cascade_fullres", {{"inherits_from", "3d_fullres"}, {"previous_stage", "3d_lowres"}}}}}};
  const auto old_architecture =
      graft::backbones::nnunet_architecture_from_plans(old_plans, "3d_cascade_fullres", 1, 2, "old plans");
  EXPECT_EQ(old_architecture.features_per_stage, (std::vector<int>{32, 64, 64, 64}));
  EXPECT_EQ(old_architecture.strides[1], (std::vector<int>{1, 2, 2}));
  EXPECT_TRUE(old_architecture.conv_bias);
  EXPECT_EQ(old_architecture.norm, graft::backbones::NnUNetNorm::kInstance);
  EXPECT_DOUBLE_EQ(old_architecture.leaky_relu_slope, 0.01);

  nlohmann::json new_plans = old_plans;
  new_plans["configurations"]["3d_fullres"] = {
      {"patch_size", {16, 32, 32}},
      {"architecture",
       {{"network_class_name", "dynamic_network_architectures.architectures.unet.PlainConvUNet"},
        {"arch_kwargs",
         {{"n_stages", 4},
          {"features_per_stage", {32, 64, 64, 64}},
          {"conv_op", "torch.nn.modules.conv.Conv3d"},
          {"kernel_sizes", {{1, 3, 3}, {3, 3, 3}, {3, 3, 3}, {3, 3, 3}}},
          {"strides", {{1, 1, 1}, {1, 2, 2}, {2, 2, 2}, {2, 2, 2}}},
          {"n_conv_per_stage", {2, 2, 2, 2}},
          {"n_conv_per_stage_decoder", {2, 2, 2}},
          {"conv_bias", true},
          {"norm_op", "torch.nn.modules.instancenorm.InstanceNorm3d"},
          {"norm_op_kwargs", {{"eps", 1e-5}, {"affine", true}}},
          {"dropout_op", nullptr},
          {"dropout_op_kwargs", nullptr},
          {"nonlin", "torch.nn.LeakyReLU"},
          {"nonlin_kwargs", {{"inplace", true}}}}}}}};
  const auto new_architecture = graft::backbones::nnunet_architecture_from_plans(new_plans, "3d_fullres", 1, 2, "plans");
  EXPECT_EQ(graft::backbones::to_json(new_architecture), graft::backbones::to_json(old_architecture));

  nlohmann::json unknown = new_plans;
  unknown["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = "my_nets.AttentionUNet";
  const std::string message = graft::testing::error_message(
      [&] { graft::backbones::nnunet_architecture_from_plans(unknown, "3d_fullres", 1, 2, "plans.json"); });
  EXPECT_NE(message.find("plans.json"), std::string::npos) << message;
  EXPECT_NE(message.find("AttentionUNet"), std::string::npos) << message;
}

}  // namespace
